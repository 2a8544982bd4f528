package testenv_test

import (
	"strings"
	"sync"
	"testing"

	"github.com/onestack/webhooks/testenv"
)

func TestIdempotencyKeys(t *testing.T) {
	t.Parallel()
	env, ten := setup(t, testenv.Options{})
	other, _ := env.CreateTenant("other", 0)
	body := map[string]any{"url": "https://example.com/h", "eventTypes": []string{"ticket.*"}}
	post := func(key string, tn testenv.Tenant, b any) *testenv.Response {
		t.Helper()
		r, err := env.Do("POST", "/api/subscriptions", tn.APIKey, b, "Idempotency-Key", key)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	count := func(tn testenv.Tenant) int {
		r, _ := env.Do("GET", "/api/subscriptions", tn.APIKey, nil)
		var page struct{ Data []any }
		r.JSON(&page)
		return len(page.Data)
	}

	first := post("k1", ten, body)
	again := post("k1", ten, body)
	if first.Status != 201 || again.Status != 201 || string(first.Body) != string(again.Body) {
		t.Fatalf("repeat = %d %s, want the first answer %d %s", again.Status, again.Body, first.Status, first.Body)
	}
	if again.Header.Get("Location") != first.Header.Get("Location") || again.Header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("repeat headers: Location %q (first %q), Idempotent-Replayed %q", again.Header.Get("Location"), first.Header.Get("Location"), again.Header.Get("Idempotent-Replayed"))
	}
	if n := count(ten); n != 1 {
		t.Errorf("%d subscriptions after a repeated create, want 1", n)
	}

	changed := map[string]any{"url": "https://example.com/other", "eventTypes": []string{"ticket.*"}}
	if r := post("k1", ten, changed); r.Status != 409 || !strings.Contains(string(r.Body), `"code":"CONFLICT"`) {
		t.Errorf("same key, different body = %d %s, want 409 CONFLICT", r.Status, r.Body)
	}
	if r := post("k1", other, body); r.Status != 201 || string(r.Body) == string(first.Body) {
		t.Errorf("another tenant's same key = %d %s, want its own 201", r.Status, r.Body)
	}

	// Concurrent duplicates: one resource, every answer the same.
	var wg sync.WaitGroup
	answers := make([]*testenv.Response, 20)
	for i := range answers {
		wg.Go(func() { answers[i] = post("k2", ten, body) })
	}
	wg.Wait()
	for i, r := range answers {
		if r.Status != 201 || string(r.Body) != string(answers[0].Body) {
			t.Errorf("concurrent duplicate %d = %d %s, want the same 201 as the others", i, r.Status, r.Body)
		}
	}
	if n := count(ten); n != 2 {
		t.Errorf("%d subscriptions after 20 concurrent duplicates of a second create, want 2", n)
	}

	bad := map[string]any{"url": "https://example.com/h", "eventTypes": []string{"nope"}}
	b1, b2 := post("k3", ten, bad), post("k3", ten, bad)
	if b1.Status != 400 || b2.Status != 400 || string(b1.Body) != string(b2.Body) {
		t.Errorf("repeated invalid request = %d then %d, want the same 400", b1.Status, b2.Status)
	}
}
