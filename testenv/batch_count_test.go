package testenv_test

import (
	"net/http"
	"strconv"
	"testing"

	"github.com/onestack/webhooks/testenv"
)

// TestEventBatchIsOneRequest: POST /api/events/batch is one counted request
// whatever its size: a batch of 100 events takes exactly 1 from
// X-RateLimit-Remaining, and a tenant whose budget is 100 a minute can
// send a second one.
func TestEventBatchIsOneRequest(t *testing.T) {
	t.Parallel()
	env, ten := setup(t, testenv.Options{})
	evts := make([]map[string]any, 100)
	for i := range evts {
		evts[i] = map[string]any{"type": "ticket.updated", "data": map[string]any{"n": i}}
	}
	budget := func(r *testenv.Response) (remaining int, reset string) {
		t.Helper()
		n, err := strconv.Atoi(r.Header.Get("X-RateLimit-Remaining"))
		if err != nil {
			t.Fatalf("X-RateLimit-Remaining = %q: %v", r.Header.Get("X-RateLimit-Remaining"), err)
		}
		return n, r.Header.Get("X-RateLimit-Reset")
	}
	// Each pair of calls is in one window unless the clock minute turned
	// between them; then the pair is made again.
	for try := 0; ; try++ {
		before, err := env.Do("GET", "/api/subscriptions", ten.APIKey, nil)
		if err != nil || before.Status != http.StatusOK {
			t.Fatalf("GET /api/subscriptions = %v, %v", before, err)
		}
		var after [2]*testenv.Response
		for i := range after {
			after[i], err = env.Do("POST", "/api/events/batch", ten.APIKey, map[string]any{"events": evts})
			if err != nil || after[i].Status != http.StatusAccepted {
				t.Fatalf("batch %d of 100 events = %v, %v; want 202", i+1, after[i], err)
			}
		}
		r0, w0 := budget(before)
		r1, w1 := budget(after[0])
		r2, w2 := budget(after[1])
		if (w0 != w1 || w1 != w2) && try < 3 {
			continue // a new window began between the calls
		}
		if r1 != r0-1 || r2 != r0-2 {
			t.Errorf("X-RateLimit-Remaining %d, then %d and %d after two batches of 100 events; want %d and %d: one request each", r0, r1, r2, r0-1, r0-2)
		}
		return
	}
}
