package testenv_test

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/onestack/webhooks/limiter"
	"github.com/onestack/webhooks/server"
	"github.com/onestack/webhooks/testenv"
)

// unknownKey is a well-formed key no tenant has: k with another id.
func unknownKey(k string) string {
	return k[:len("sk_")] + "01ARZ3NDEKTSV4RRFFQ69G5FAV" + k[len("sk_")+26:]
}

// TestUnknownKeysAreRefusedFromMemory: an unknown, well-formed key is read
// from the keys bucket once; repeated, it is refused from memory, and a key
// made after is accepted at once.
func TestUnknownKeysAreRefusedFromMemory(t *testing.T) {
	t.Parallel()
	env, ten := setup(t, testenv.Options{})
	bad := unknownKey(ten.APIKey)
	const cached = "webhooks_auth_unknown_keys_cached_total"
	before := metric(t, env, cached)
	for i := range 5 {
		r, err := env.Do("GET", "/api/subscriptions", bad, nil)
		if err != nil || r.Status != http.StatusUnauthorized {
			t.Fatalf("unknown key, request %d: %v %v, want 401", i, r, err)
		}
	}
	if got := metric(t, env, cached) - before; got != 4 {
		t.Errorf("%s went up by %v for 5 requests with one unknown key, want 4 (the first reads the bucket)", cached, got)
	}
	if got := metric(t, env, `webhooks_auth_refused_total{reason="bad_credentials"}`); got != 5 {
		t.Errorf(`webhooks_auth_refused_total{reason="bad_credentials"} = %v, want 5`, got)
	}
	// A key made now is not refused by what was remembered.
	r, err := env.Do("POST", "/admin/tenants/"+ten.ID+"/keys", env.AdminToken, nil)
	if err != nil || r.Status != http.StatusCreated {
		t.Fatalf("create key: %v %v", r, err)
	}
	var k struct{ Key string }
	r.JSON(&k)
	if r, _ := env.Do("GET", "/api/subscriptions", k.Key, nil); r.Status != http.StatusOK {
		t.Errorf("new key = %d %s, want 200", r.Status, r.Body)
	}
}

// TestAuthFailuresAreLimitedPerAddress: past its failures a minute an
// address's unauthenticated requests are answered 429 with the contract's
// body and Retry-After, while a valid key or the admin token from it still
// works. (The operator API's 401s are counted, not limited: it documents no
// 429.)
func TestAuthFailuresAreLimitedPerAddress(t *testing.T) {
	t.Parallel()
	const limit = 5
	env, ten := setup(t, testenv.Options{Server: func(c *server.Config) {
		c.AuthFailures = limiter.FailuresConfig{Limit: limit}
	}})
	bad := unknownKey(ten.APIKey)
	for i := range limit {
		token := bad
		if i%2 == 1 {
			token = "" // no credentials count too
		}
		if r, _ := env.Do("GET", "/api/subscriptions", token, nil); r.Status != http.StatusUnauthorized {
			t.Fatalf("failure %d = %d %s, want 401", i, r.Status, r.Body)
		}
	}
	for _, req := range []struct{ path, token string }{
		{"/api/subscriptions", bad},
		{"/api/subscriptions", ""},
		{"/api/subscriptions", "sk_malformed"},
	} {
		r, err := env.Do("GET", req.path, req.token, nil)
		if err != nil {
			t.Fatal(err)
		}
		var body struct {
			Error, Code string
			Details     struct {
				Limit      int
				Window     string
				RetryAfter int
			}
		}
		r.JSON(&body)
		retry, _ := strconv.Atoi(r.Header.Get("Retry-After"))
		if r.Status != http.StatusTooManyRequests || body.Code != "RATE_LIMIT_EXCEEDED" || body.Error != "Rate limit exceeded" ||
			body.Details.Limit != limit || body.Details.Window != "1m" || retry < 1 || retry > 60 || body.Details.RetryAfter != retry {
			t.Errorf("GET %s with %q past the failures = %d (Retry-After %q) %s, want 429 RATE_LIMIT_EXCEEDED with limit %d and Retry-After", req.path, req.token, r.Status, r.Header.Get("Retry-After"), r.Body, limit)
		}
	}
	if r, _ := env.Do("GET", "/api/subscriptions", ten.APIKey, nil); r.Status != http.StatusOK {
		t.Errorf("a valid key from the same address = %d %s, want 200", r.Status, r.Body)
	}
	if r, _ := env.Do("GET", "/admin/tenants", env.AdminToken, nil); r.Status != http.StatusOK {
		t.Errorf("the admin token from the same address = %d %s, want 200", r.Status, r.Body)
	}
	if got := metric(t, env, `webhooks_auth_refused_total{reason="too_many_failures"}`); got != 3 {
		t.Errorf(`webhooks_auth_refused_total{reason="too_many_failures"} = %v, want 3`, got)
	}
}

// TestIfNoneMatchWildcardIsCounted: a 304 for the ETag a client holds is
// not counted, as the contract says; a 304 for If-None-Match: *, which
// matches whatever the server has, is.
func TestIfNoneMatchWildcardIsCounted(t *testing.T) {
	t.Parallel()
	env := testenv.Start(t, testenv.Options{Server: countLocally(time.Now())})
	ten, err := env.CreateTenant("wildcard", 0)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := env.Subscribe(ten, "https://example.com/h", "ticket.*")
	if err != nil {
		t.Fatal(err)
	}
	path := "/api/subscriptions/" + sub.ID
	get, _ := env.Do("GET", path, ten.APIKey, nil)
	etag := get.Header.Get("ETag")
	remaining := func(r *testenv.Response) int {
		n, err := strconv.Atoi(r.Header.Get("X-RateLimit-Remaining"))
		if err != nil {
			t.Fatalf("X-RateLimit-Remaining %q", r.Header.Get("X-RateLimit-Remaining"))
		}
		return n
	}
	left := remaining(get)
	for range 3 {
		r, _ := env.Do("GET", path, ten.APIKey, nil, "If-None-Match", etag)
		if r.Status != http.StatusNotModified || remaining(r) != left {
			t.Fatalf("If-None-Match %s = %d, %d remaining; want 304 uncounted (%d)", etag, r.Status, remaining(r), left)
		}
	}
	for i := range 3 {
		r, _ := env.Do("GET", path, ten.APIKey, nil, "If-None-Match", "*")
		if r.Status != http.StatusNotModified || remaining(r) != left-1-i {
			t.Fatalf("If-None-Match * = %d, %d remaining; want 304 counted (%d)", r.Status, remaining(r), left-1-i)
		}
	}
	r, _ := env.Do("GET", "/api/event-types", ten.APIKey, nil)
	if r2, _ := env.Do("GET", "/api/event-types", ten.APIKey, nil, "If-None-Match", "*"); r2.Status != http.StatusNotModified || remaining(r2) != remaining(r)-1 {
		t.Errorf("event types If-None-Match * = %d, %d remaining; want 304 counted (%d)", r2.Status, remaining(r2), remaining(r)-1)
	}
	if strings.Contains(r.Header.Get("ETag"), "*") {
		t.Fatalf("ETag %q", r.Header.Get("ETag"))
	}
}
