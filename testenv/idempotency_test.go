package testenv_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/onestack/webhooks/idempotency"
	"github.com/onestack/webhooks/server"
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

// TestIdempotentCreateSurvivesADisconnect: a client sends an idempotent
// create and hangs up without reading the answer; its retry with the same
// key gets one answer and the tenant has exactly one subscription, however
// far the first request had got when the client left.
func TestIdempotentCreateSurvivesADisconnect(t *testing.T) {
	t.Parallel()
	env, ten := setup(t, testenv.Options{})
	body := []byte(`{"url":"https://example.com/h","eventTypes":["ticket.*"]}`)
	const tries = 10
	for i := range tries {
		key := "gone-" + strconv.Itoa(i)
		conn, err := net.Dial("tcp", strings.TrimPrefix(env.URL(), "http://"))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "POST /api/subscriptions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nIdempotency-Key: %s\r\nContent-Length: %d\r\n\r\n%s",
			ten.APIKey, key, len(body), body)
		conn.Close() // gone before the answer
		r, err := env.Do("POST", "/api/subscriptions", ten.APIKey, body, "Idempotency-Key", key)
		if err != nil {
			t.Fatal(err)
		}
		if r.Status != http.StatusCreated {
			t.Fatalf("retry after a disconnect = %d %s, want 201", r.Status, r.Body)
		}
	}
	r, _ := env.Do("GET", "/api/subscriptions?limit=100", ten.APIKey, nil)
	var page struct{ Data []any }
	r.JSON(&page)
	if len(page.Data) != tries {
		t.Errorf("%d subscriptions after %d disconnected creates and their retries, want %d", len(page.Data), tries, tries)
	}
}

// TestIdempotencyKeyInUse: a duplicate of a request still running (here a
// claim held as another replica would hold it) waits, then gets 409
// IDEMPOTENCY_KEY_IN_USE with Retry-After: 1; once the first request
// releases its claim without an answer (it failed), the repeat runs.
func TestIdempotencyKeyInUse(t *testing.T) {
	t.Parallel()
	env, ten := setup(t, testenv.Options{Server: func(c *server.Config) { c.Idempotency.Wait = 200 * time.Millisecond }})
	_, js := env.JetStream()
	other, err := idempotency.Open(context.Background(), js, idempotency.Config{})
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"url":"https://example.com/h","eventTypes":["ticket.*"]}`)
	fp := idempotency.Fingerprint([]byte("POST"), []byte("/api/subscriptions"), body)
	_, claim, err := other.Begin(context.Background(), ten.ID, "busy", fp)
	if err != nil || claim == nil {
		t.Fatalf("hold a claim: %v", err)
	}
	r, err := env.Do("POST", "/api/subscriptions", ten.APIKey, body, "Idempotency-Key", "busy")
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != http.StatusConflict || !strings.Contains(string(r.Body), `"code":"IDEMPOTENCY_KEY_IN_USE"`) || r.Header.Get("Retry-After") != "1" {
		t.Fatalf("duplicate in flight = %d %s (Retry-After %q), want 409 IDEMPOTENCY_KEY_IN_USE with Retry-After: 1", r.Status, r.Body, r.Header.Get("Retry-After"))
	}
	if err := claim.Abandon(context.Background()); err != nil {
		t.Fatal(err)
	}
	r, _ = env.Do("POST", "/api/subscriptions", ten.APIKey, body, "Idempotency-Key", "busy")
	again, _ := env.Do("POST", "/api/subscriptions", ten.APIKey, body, "Idempotency-Key", "busy")
	if r.Status != http.StatusCreated || again.Status != http.StatusCreated || string(again.Body) != string(r.Body) {
		t.Errorf("repeats after the first was released = %d, then %d; want it run once (201) and replayed", r.Status, again.Status)
	}
}
