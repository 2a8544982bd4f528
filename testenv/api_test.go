package testenv_test

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/onestack/webhooks/server"

	"github.com/onestack/webhooks/testenv"
)

// countLocally holds the rate limiter's clock at at and counts in this
// replica's memory. Through NATS a request the counter does not answer
// within 500 ms is counted locally (failing open, by design), and a burst of
// hundreds at once on a loaded machine waits that long: exact counts
// through the API are tested here, the NATS store's in package limiter
// and across two processes in cmd/webhookd.
func countLocally(at time.Time) func(*server.Config) {
	return func(c *server.Config) {
		c.Clock = func() time.Time { return at }
		c.RateLimiter = "local"
	}
}

func TestRateLimitThroughTheAPI(t *testing.T) {
	t.Parallel()
	// A clock held still: the counts below cannot straddle a window reset.
	at := time.Now()
	env := testenv.Start(t, testenv.Options{Server: countLocally(at)})
	ten, err := env.CreateTenant("limited", 0)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := env.CreateTenant("other", 0)
	r, _ := env.Do("POST", "/admin/tenants/"+ten.ID+"/keys", env.AdminToken, nil)
	var second struct{ Key string }
	json.Unmarshal(r.Body, &second)

	// 150 conditional GETs answered 304 are not counted.
	first, _ := env.Do("GET", "/api/event-types", ten.APIKey, nil)
	etag := first.Header.Get("ETag")
	if first.Status != 200 || etag == "" || first.Header.Get("X-RateLimit-Remaining") != "99" {
		t.Fatalf("first GET = %d, ETag %q, Remaining %q", first.Status, etag, first.Header.Get("X-RateLimit-Remaining"))
	}
	for range 150 {
		r, _ := env.Do("GET", "/api/event-types", ten.APIKey, nil, "If-None-Match", etag)
		if r.Status != http.StatusNotModified || r.Header.Get("X-RateLimit-Remaining") != "99" {
			t.Fatalf("304 = %d, Remaining %q; want 304 with 99", r.Status, r.Header.Get("X-RateLimit-Remaining"))
		}
	}
	// Two keys, 200 concurrent requests: exactly 99 more pass.
	var mu sync.Mutex
	codes := map[int]int{}
	var wg sync.WaitGroup
	for i := range 200 {
		key := ten.APIKey
		if i%2 == 1 {
			key = second.Key
		}
		wg.Go(func() {
			r, err := env.Do("GET", "/api/subscriptions", key, nil)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			codes[r.Status]++
			mu.Unlock()
		})
	}
	wg.Wait()
	if codes[200] != 99 || codes[429] != 101 {
		t.Errorf("codes = %v, want 99 × 200 and 101 × 429", codes)
	}
	r, _ = env.Do("GET", "/api/subscriptions", second.Key, nil)
	var body struct {
		Error   string
		Code    string
		Details map[string]any
	}
	json.Unmarshal(r.Body, &body)
	ra, _ := strconv.Atoi(r.Header.Get("Retry-After"))
	if r.Status != 429 || body.Error != "Rate limit exceeded" || body.Code != "RATE_LIMIT_EXCEEDED" ||
		body.Details["limit"] != float64(100) || body.Details["window"] != "1m" || body.Details["retryAfter"] != float64(ra) || ra < 1 || ra > 60 {
		t.Errorf("429 = %d %s, Retry-After %q", r.Status, r.Body, r.Header.Get("Retry-After"))
	}
	for _, h := range []string{"X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset", "RateLimit-Policy", "RateLimit"} {
		if r.Header.Get(h) == "" {
			t.Errorf("429 lacks %s", h)
		}
	}
	// Another tenant is untouched; a raised limit applies on the next request.
	if r, _ := env.Do("GET", "/api/subscriptions", other.APIKey, nil); r.Status != 200 || r.Header.Get("X-RateLimit-Remaining") != "99" {
		t.Errorf("other tenant = %d, Remaining %q", r.Status, r.Header.Get("X-RateLimit-Remaining"))
	}
	if r, _ := env.Do("PATCH", "/admin/tenants/"+ten.ID, env.AdminToken, map[string]any{"rateLimit": 500}); r.Status != 200 {
		t.Fatalf("PATCH tenant = %d %s", r.Status, r.Body)
	}
	r, _ = env.Do("GET", "/api/subscriptions", ten.APIKey, nil)
	if r.Status != 200 || r.Header.Get("X-RateLimit-Limit") != "500" {
		t.Errorf("after raising to 500: %d, Limit %q", r.Status, r.Header.Get("X-RateLimit-Limit"))
	}
}

func TestAPIErrors(t *testing.T) {
	t.Parallel()
	env, ten := setup(t, testenv.Options{Strict: true})
	tests := []struct {
		name, method, path string
		body               any
		header             []string
		status             int
		code               string
	}{
		{"no key", "GET", "/api/subscriptions", nil, nil, 401, "UNAUTHORIZED"},
		{"bad json", "POST", "/api/subscriptions", []byte("{"), nil, 400, "INVALID_JSON"},
		{"unknown field", "POST", "/api/subscriptions", map[string]any{"url": "https://example.com", "eventTypes": []string{"*"}, "nope": 1}, nil, 400, "INVALID_JSON"},
		{"bad type", "POST", "/api/subscriptions", map[string]any{"url": "https://example.com", "eventTypes": []string{"ticket.nope"}}, nil, 400, "VALIDATION_FAILED"},
		{"loopback url", "POST", "/api/subscriptions", map[string]any{"url": "https://127.0.0.1/x", "eventTypes": []string{"*"}}, nil, 400, "VALIDATION_FAILED"},
		{"unknown sub", "GET", "/api/subscriptions/sub_nope", nil, nil, 404, "NOT_FOUND"},
		{"method", "PUT", "/api/subscriptions", []byte("{}"), nil, 405, "METHOD_NOT_ALLOWED"},
		{"limit", "GET", "/api/subscriptions?limit=101", nil, nil, 400, "VALIDATION_FAILED"},
		{"event type", "POST", "/api/events", map[string]any{"type": "nope", "data": map[string]any{}}, nil, 400, "VALIDATION_FAILED"},
		{"batch item", "POST", "/api/events/batch", map[string]any{"events": []any{map[string]any{"type": "ticket.updated", "data": map[string]any{}}, map[string]any{"type": "x", "data": map[string]any{}}}}, nil, 400, "VALIDATION_FAILED"},
		{"body over 1 MiB", "POST", "/api/subscriptions", []byte(`{"description":"` + strings.Repeat("x", 1<<20) + `"}`), nil, 413, "PAYLOAD_TOO_LARGE"},
		{"event data over 256 KiB", "POST", "/api/events", []byte(`{"type":"ticket.updated","data":{"x":"` + strings.Repeat("x", 256<<10) + `"}}`), nil, 413, "PAYLOAD_TOO_LARGE"},
		{"event data not an object", "POST", "/api/events", map[string]any{"type": "ticket.updated", "data": []int{1}}, nil, 400, "VALIDATION_FAILED"},
		{"not json", "POST", "/api/subscriptions", []byte(`url=x`), []string{"Content-Type", "application/x-www-form-urlencoded"}, 415, "UNSUPPORTED_MEDIA_TYPE"},
	}
	for _, tt := range tests {
		key := ten.APIKey
		if tt.name == "no key" {
			key = ""
		}
		r, err := env.Do(tt.method, tt.path, key, tt.body, tt.header...)
		if err != nil {
			t.Fatal(err)
		}
		var e map[string]any
		json.Unmarshal(r.Body, &e)
		if r.Status != tt.status || e["code"] != tt.code || e["error"] == "" {
			t.Errorf("%s: %d %s, want %d %s", tt.name, r.Status, r.Body, tt.status, tt.code)
		}
		for k := range e {
			if k != "error" && k != "code" && k != "details" {
				t.Errorf("%s: unexpected key %q in error body", tt.name, k)
			}
		}
		if strings.Contains(string(r.Body), "nats") || strings.Contains(string(r.Body), "goroutine") {
			t.Errorf("%s: internal detail in the answer: %s", tt.name, r.Body)
		}
		if tt.code == "METHOD_NOT_ALLOWED" && r.Header.Get("Allow") == "" {
			t.Errorf("%s: no Allow header", tt.name)
		}
		if tt.name == "batch item" && !json.Valid(r.Body) || (tt.name == "batch item" && !strings.Contains(string(r.Body), "events[1].type")) {
			t.Errorf("batch error does not name events[1].type: %s", r.Body)
		}
	}
}

func TestSubscriptionConditionalRequests(t *testing.T) {
	t.Parallel()
	env, ten := setup(t, testenv.Options{})
	r, _ := env.Do("POST", "/api/subscriptions", ten.APIKey, map[string]any{"url": "https://example.com/h", "eventTypes": []string{"ticket.*"}})
	if r.Status != 201 || r.Header.Get("Location") == "" {
		t.Fatalf("create = %d %s (Location %q)", r.Status, r.Body, r.Header.Get("Location"))
	}
	var sub struct{ ID string }
	r.JSON(&sub)
	path := "/api/subscriptions/" + sub.ID
	get, _ := env.Do("GET", path, ten.APIKey, nil)
	etag := get.Header.Get("ETag")
	if get.Status != 200 || etag == "" || strings.HasPrefix(etag, "W/") {
		t.Fatalf("GET = %d, ETag %q; want 200 with a strong ETag", get.Status, etag)
	}
	if r, _ := env.Do("GET", path, ten.APIKey, nil, "If-None-Match", etag); r.Status != 304 || len(r.Body) != 0 {
		t.Errorf("GET If-None-Match = %d %q, want 304 with no body", r.Status, r.Body)
	}
	patch := map[string]any{"description": "changed"}
	for _, bad := range []string{`"999999"`, "W/" + etag} {
		r, _ := env.Do("PATCH", path, ten.APIKey, patch, "If-Match", bad)
		if r.Status != 412 || !strings.Contains(string(r.Body), "PRECONDITION_FAILED") {
			t.Errorf("PATCH If-Match %s = %d %s, want 412 PRECONDITION_FAILED", bad, r.Status, r.Body)
		}
	}
	r, _ = env.Do("PATCH", path, ten.APIKey, patch, "If-Match", etag)
	newTag := r.Header.Get("ETag")
	if r.Status != 200 || newTag == "" || newTag == etag || !strings.Contains(string(r.Body), `"description":"changed"`) {
		t.Fatalf("PATCH with the current ETag = %d %s (ETag %q)", r.Status, r.Body, newTag)
	}
	if r, _ := env.Do("PATCH", path, ten.APIKey, patch, "If-Match", etag); r.Status != 412 {
		t.Errorf("PATCH with the replaced ETag = %d, want 412", r.Status)
	}
	if r, _ := env.Do("PATCH", path, ten.APIKey, map[string]any{"active": false}, "If-Match", "*"); r.Status != 200 {
		t.Errorf("PATCH If-Match * = %d %s, want 200", r.Status, r.Body)
	}
	if r, _ := env.Do("PATCH", path, ten.APIKey, patch); r.Status != 200 {
		t.Errorf("PATCH without If-Match = %d %s, want 200", r.Status, r.Body)
	}
}

// TestNotModifiedInterleavedWithCountedRequests sends 200 revalidations
// (answered 304) and 200 counted requests at once: counted successes never
// exceed the budget, and once the burst is over every 304's unit has come
// back, so filling the window one request at a time reaches exactly 100.
func TestNotModifiedInterleavedWithCountedRequests(t *testing.T) {
	t.Parallel()
	at := time.Now()
	env := testenv.Start(t, testenv.Options{Server: countLocally(at)})
	ten, err := env.CreateTenant("interleaved", 0)
	if err != nil {
		t.Fatal(err)
	}
	first, _ := env.Do("GET", "/api/event-types", ten.APIKey, nil) // counted: 1
	etag := first.Header.Get("ETag")
	var mu sync.Mutex
	counted, conditional := map[int]int{}, map[int]int{}
	var wg sync.WaitGroup
	for i := range 400 {
		wg.Go(func() {
			var r *testenv.Response
			var err error
			if i%2 == 0 {
				r, err = env.Do("GET", "/api/event-types", ten.APIKey, nil, "If-None-Match", etag)
			} else {
				r, err = env.Do("GET", "/api/subscriptions", ten.APIKey, nil)
			}
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			if i%2 == 0 {
				conditional[r.Status]++
			} else {
				counted[r.Status]++
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	if conditional[200] != 0 || conditional[304]+conditional[429] != 200 {
		t.Errorf("revalidations answered %v, want only 304s and 429s", conditional)
	}
	if counted[200] > 99 {
		t.Errorf("%d counted requests passed besides the first, want at most 99", counted[200])
	}
	total := 1 + counted[200]
	for range 100 {
		r, _ := env.Do("GET", "/api/subscriptions", ten.APIKey, nil)
		if r.Status == 429 {
			break
		}
		total++
	}
	if total != 100 {
		t.Errorf("%d counted requests passed in the window, want exactly 100 (a 304's unit leaked or was refunded twice)", total)
	}
}

// TestAuthenticatedErrorsAreCounted: a valid key on an unknown /api path or
// with a wrong method is counted and carries the headers; without a key
// nothing is counted.
func TestAuthenticatedErrorsAreCounted(t *testing.T) {
	t.Parallel()
	at := time.Now()
	env := testenv.Start(t, testenv.Options{Server: countLocally(at)})
	ten, err := env.CreateTenant("errors", 0)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		method, path, key string
		status            int
		remaining         string
	}{
		{"GET", "/api/nope", ten.APIKey, 404, "99"},
		{"PUT", "/api/subscriptions", ten.APIKey, 405, "98"},
		{"GET", "/api/nope", "", 401, ""},
		{"PUT", "/api/subscriptions", "", 401, ""},
		{"GET", "/nope", ten.APIKey, 404, ""},
		{"GET", "/api/subscriptions", ten.APIKey, 200, "97"},
	}
	for _, tt := range tests {
		r, err := env.Do(tt.method, tt.path, tt.key, nil)
		if err != nil {
			t.Fatal(err)
		}
		if r.Status != tt.status || r.Header.Get("X-RateLimit-Remaining") != tt.remaining {
			t.Errorf("%s %s (key %v) = %d, Remaining %q; want %d, %q", tt.method, tt.path, tt.key != "", r.Status, r.Header.Get("X-RateLimit-Remaining"), tt.status, tt.remaining)
		}
	}
}

func TestKeyRevocation(t *testing.T) {
	t.Parallel()
	env, ten := setup(t, testenv.Options{})
	other, _ := env.CreateTenant("other", 0)
	r, _ := env.Do("POST", "/admin/tenants/"+ten.ID+"/keys", env.AdminToken, nil)
	var k struct{ ID, Key string }
	r.JSON(&k)
	if r.Status != 201 || !strings.HasPrefix(k.Key, "sk_") || !strings.HasPrefix(k.ID, "key_") {
		t.Fatalf("new key = %d %s", r.Status, r.Body)
	}
	if r, _ := env.Do("GET", "/api/subscriptions", k.Key, nil); r.Status != 200 {
		t.Fatalf("new key = %d, want 200", r.Status)
	}
	if r, _ := env.Do("DELETE", "/admin/tenants/"+other.ID+"/keys/"+k.ID, env.AdminToken, nil); r.Status != 404 {
		t.Errorf("revoking through another tenant = %d, want 404", r.Status)
	}
	if r, _ := env.Do("DELETE", "/admin/tenants/"+ten.ID+"/keys/"+k.ID, env.AdminToken, nil); r.Status != 204 {
		t.Fatalf("revoke = %d %s, want 204", r.Status, r.Body)
	}
	if r, _ := env.Do("GET", "/api/subscriptions", k.Key, nil); r.Status != 401 || r.Header.Get("X-RateLimit-Remaining") != "" {
		t.Errorf("revoked key = %d (Remaining %q), want 401 uncounted", r.Status, r.Header.Get("X-RateLimit-Remaining"))
	}
	if r, _ := env.Do("GET", "/api/subscriptions", ten.APIKey, nil); r.Status != 200 {
		t.Errorf("the tenant's first key = %d after revoking the second, want 200", r.Status)
	}
	if r, _ := env.Do("GET", "/admin/tenants/"+ten.ID, "wrong-token", nil); r.Status != 401 {
		t.Errorf("operator API with a wrong token = %d, want 401", r.Status)
	}
}
