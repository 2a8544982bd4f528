package dispatcher

import (
	"testing"
	"time"
)

// TestReplayDeliveryID: a replay's delivery id is the same for the same
// job, batch and event (so a batch sent again makes the same deliveries),
// differs between jobs and events, names its subscription, and never
// equals the fan-out's id of the same event.
func TestReplayDeliveryID(t *testing.T) {
	at := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	const sub = "sub_01M8KA4WF0RHYRVHZQ23M1EEFH"
	a := replayDeliveryID("job_A", at, 42, sub)
	if b := replayDeliveryID("job_A", at, 42, sub); a != b {
		t.Errorf("same job, batch and event: %s and %s", a, b)
	}
	for name, other := range map[string]string{
		"another job":   replayDeliveryID("job_B", at, 42, sub),
		"another event": replayDeliveryID("job_A", at, 43, sub),
		"the fan-out":   DeliveryID(at, 42, sub),
	} {
		if other == a {
			t.Errorf("%s gives the same id %s", name, a)
		}
	}
	if got, ok := SubscriptionOf(a); !ok || got != sub {
		t.Errorf("SubscriptionOf(%s) = %q, %v; want %s", a, got, ok, sub)
	}
}
