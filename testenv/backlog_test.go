package testenv_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/onestack/webhooks/dispatcher"
	"github.com/onestack/webhooks/events"
	"github.com/onestack/webhooks/internal/poll"
	"github.com/onestack/webhooks/testenv"
)

// TestDeadEndpointBacklogDoesNotStallOthers makes 5,000 deliveries fail at
// a dead endpoint, whose retries wait an hour, while the fan-out may hold
// only 500 events unacknowledged. Were the retries held in memory or in
// the consumer's pending set, the healthy endpoint would stop after 500. It
// gets all 5,000, every event is settled, and the retries wait as one
// schedule each in the stream.
func TestDeadEndpointBacklogDoesNotStallOthers(t *testing.T) {
	if testing.Short() {
		t.Skip("10,000 deliveries")
	}
	t.Parallel()
	env := testenv.Start(t, testenv.Options{Schedule: []time.Duration{time.Hour}, Dispatcher: dispatcher.Config{FanoutPending: 500}})
	ten, err := env.CreateTenant("backlog", 1_000_000)
	if err != nil {
		t.Fatal(err)
	}
	dead, healthy := receiver(t), receiver(t)
	dead.Respond(func(int, *http.Request) int { return http.StatusInternalServerError })
	subscribe(t, env, ten, dead, "ticket.*")
	subscribe(t, env, ten, healthy, "ticket.*")

	const n = 5000
	publishBatches(t, env, ten, n)
	// At least once: count events, not requests (a machine overloaded
	// enough to miss an acknowledgement repeats a delivery), and wait for
	// them too, not for as many requests.
	if got := distinctIDs(waitDistinct(healthy, n, 2*time.Minute)); got != n {
		t.Fatalf("healthy endpoint got %d of %d events with a dead endpoint's backlog", got, n)
	}
	if got := distinctIDs(waitDistinct(dead, n, 2*time.Minute)); got != n {
		t.Fatalf("dead endpoint got %d of %d events", got, n)
	}

	js, _ := jetstream.New(env.Conn())
	ctx := context.Background()
	var schedules, other, unsettled int
	if !poll.Within(60*time.Second, func() bool {
		st, _ := js.Stream(ctx, dispatcher.DeliveriesStream)
		info, _ := st.Info(ctx, jetstream.WithSubjectFilter(">"))
		c, _ := js.Consumer(ctx, events.StreamName, "fanout")
		ci, _ := c.Info(ctx)
		schedules, other = 0, 0
		for subj, msgs := range info.State.Subjects {
			if strings.HasPrefix(subj, "sched.") && msgs == 1 {
				schedules++
			} else {
				other++
			}
		}
		unsettled = ci.NumAckPending + int(ci.NumPending)
		return schedules == n && other == 0 && unsettled == 0
	}) {
		t.Fatalf("%d retries waiting as one schedule each (want %d), %d other subjects (want 0), %d events unsettled (want 0)", schedules, n, other, unsettled)
	}
}
