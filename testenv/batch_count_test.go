package testenv_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/onestack/webhooks/testenv"
)

// TestEventBatchIsOneRequest: POST /api/events/batch is one counted request
// whatever its size: a batch of 100 events takes exactly 1 from
// X-RateLimit-Remaining, and a tenant whose budget is 100 a minute can
// send a second one. The clock is held still and counted in memory, as the
// other exact counts are, so no window turns between the calls.
func TestEventBatchIsOneRequest(t *testing.T) {
	t.Parallel()
	env, ten := setup(t, testenv.Options{Server: countLocally(time.Now())})
	evts := make([]map[string]any, 100)
	for i := range evts {
		evts[i] = map[string]any{"type": "ticket.updated", "data": map[string]any{"n": i}}
	}
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
	r0, r1, r2 := remaining(t, before), remaining(t, after[0]), remaining(t, after[1])
	if r1 != r0-1 || r2 != r0-2 {
		t.Errorf("X-RateLimit-Remaining %d, then %d and %d after two batches of 100 events; want %d and %d: one request each", r0, r1, r2, r0-1, r0-2)
	}
}
