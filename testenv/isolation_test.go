package testenv_test

import (
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/onestack/webhooks/dispatcher"
	"github.com/onestack/webhooks/testenv"
)

// TestSlowEndpointDoesNotDelayOthers holds every request to one endpoint
// until the end of the test: the other endpoint must get all its webhooks
// meanwhile, and the stuck one never holds more than its in-flight cap.
// It asserts order, not timing.
func TestSlowEndpointDoesNotDelayOthers(t *testing.T) {
	t.Parallel()
	const perSub = 4
	env, ten := setup(t, testenv.Options{Timeout: time.Minute, Dispatcher: dispatcher.Config{PerSubscription: perSub}})
	release := make(chan struct{})
	var inFlight, peak atomic.Int64
	stuck := receiver(t)
	stuck.Respond(func(int, *http.Request) int {
		n := inFlight.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		<-release
		inFlight.Add(-1)
		return http.StatusOK
	})
	healthy := receiver(t)
	subscribe(t, env, ten, stuck, "ticket.*")
	subscribe(t, env, ten, healthy, "ticket.*")
	defer close(release)

	const n = 200
	publishBatches(t, env, ten, n)
	if got := len(healthy.WaitFor(n, 30*time.Second)); got != n {
		t.Fatalf("healthy endpoint got %d of %d while the other was stuck", got, n)
	}
	if p := peak.Load(); p > perSub {
		t.Errorf("stuck endpoint had %d requests in flight, want at most %d", p, perSub)
	}
	if stuck.Count() > perSub {
		t.Errorf("stuck endpoint got %d requests while none finished, want at most %d", stuck.Count(), perSub)
	}
}
