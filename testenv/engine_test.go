package testenv_test

import (
	"bufio"
	"bytes"
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/onestack/webhooks/deliverylog"
	"github.com/onestack/webhooks/dispatcher"
	"github.com/onestack/webhooks/events"
	"github.com/onestack/webhooks/internal/natstest"
	"github.com/onestack/webhooks/internal/poll"
	"github.com/onestack/webhooks/server"
	"github.com/onestack/webhooks/testenv"
)

// metric reads one sample of the metrics page, by its full name with
// labels as the page prints them.
func metric(t *testing.T, env *testenv.Env, name string) float64 {
	t.Helper()
	r, err := env.Do("GET", "/metrics", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(bytes.NewReader(r.Body))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("metric %s = %q", name, v)
			}
			return f
		}
	}
	t.Fatalf("metric %s not on the page", name)
	return 0
}

// TestManualRetrySupersedesTheSchedule: a delivery failed once and waits
// for its scheduled retry; a manual retry makes exactly one more attempt
// at once, cancels the schedule (nothing of it is left in the stream, so
// no later attempt can follow), and the history keeps both attempts.
func TestManualRetrySupersedesTheSchedule(t *testing.T) {
	t.Parallel()
	env, ten := setup(t, testenv.Options{Schedule: []time.Duration{time.Hour}})
	rc, failing := failingReceiver(t, http.StatusInternalServerError)
	sub := subscribe(t, env, ten, rc, "ticket.*")
	publish(t, env, ten, "ticket.updated")
	d := pollDeliveries(t, env, ten, sub.ID, "?status=pending", func(d []deliveryJSON) bool { return len(d) == 1 && len(d[0].Attempts) == 1 })[0]
	_, js := env.JetStream()
	ctx := context.Background()
	stream, err := js.Stream(ctx, dispatcher.DeliveriesStream)
	if err != nil {
		t.Fatal(err)
	}
	schedules := func() uint64 {
		info, err := stream.Info(ctx, jetstream.WithSubjectFilter("sched."+d.ID+".>"))
		if err != nil {
			t.Fatal(err)
		}
		return info.State.Msgs
	}
	// The schedule is stored beside the attempt's record, not before it:
	// the log can show the attempt first. Waiting for it to leave 0 and
	// then asserting 1 still fails on a lost or a doubled schedule.
	var n uint64
	poll.Within(30*time.Second, func() bool { n = schedules(); return n != 0 })
	if n != 1 {
		t.Fatalf("%d schedules wait for the failed delivery, want 1", n)
	}

	failing.Store(false)
	if r, _ := env.Do("POST", "/api/deliveries/"+d.ID+"/retry", ten.APIKey, nil); r.Status != http.StatusAccepted {
		t.Fatalf("retry = %d %s", r.Status, r.Body)
	}
	after := pollDeliveries(t, env, ten, sub.ID, "", func(d []deliveryJSON) bool { return len(d) == 1 && d[0].Status == "succeeded" })[0]
	if len(after.Attempts) != 2 || rc.Count() != 2 {
		t.Errorf("after a manual retry: %d attempts logged, %d received; want 2 and 2", len(after.Attempts), rc.Count())
	}
	if after.NextAttemptAt != nil {
		t.Errorf("next attempt at %v after a manual retry succeeded, want none", after.NextAttemptAt)
	}
	if n := schedules(); n != 0 {
		t.Errorf("%d schedules left after the manual retry, want 0: the scheduled attempt would follow", n)
	}
}

// TestSkippedDeliveryIsOneRecord: an event that matches a disabled
// subscription is kept as one skipped delivery, however often it is fanned
// out (here: the fan-out consumer is deleted while no webhookd runs, and
// the next start reads every retained event again, as after a NATS that
// lost its consumer's state). The active subscription's delivery, which
// the attempt log shows made, is not made again.
func TestSkippedDeliveryIsOneRecord(t *testing.T) {
	t.Parallel()
	ns := natstest.Start(t, natstest.Options{})
	_, js := ns.Connect(t)
	dir := t.TempDir()
	env := testenv.Start(t, testenv.Options{DataDir: dir, NATSURL: ns.ClientURL()})
	ten, err := env.CreateTenant("acme", 0)
	if err != nil {
		t.Fatal(err)
	}
	off, on := receiver(t), receiver(t)
	disabled := subscribe(t, env, ten, off, "ticket.*")
	subscribe(t, env, ten, on, "ticket.*")
	if r, _ := env.Do("PATCH", "/api/subscriptions/"+disabled.ID, ten.APIKey, map[string]any{"active": false}); r.Status != 200 {
		t.Fatalf("disable = %d %s", r.Status, r.Body)
	}
	evt := publish(t, env, ten, "ticket.updated")
	on.WaitFor(1, 30*time.Second)
	pollDeliveries(t, env, ten, disabled.ID, "?status=skipped", func(d []deliveryJSON) bool { return len(d) == 1 })

	env.Close()
	if err := js.DeleteConsumer(context.Background(), events.StreamName, "fanout"); err != nil {
		t.Fatal(err)
	}
	env = testenv.Start(t, testenv.Options{DataDir: dir, NATSURL: ns.ClientURL()})
	if !poll.Within(30*time.Second, func() bool { return metric(t, env, "webhooks_redeliveries_already_made_total") >= 1 }) {
		t.Fatalf("the fan-out did not read the event anew and find its delivery made (webhooks_redeliveries_already_made_total %v, want 1)",
			metric(t, env, "webhooks_redeliveries_already_made_total"))
	}
	fanoutSettled(t, js)
	skipped := pollDeliveries(t, env, ten, disabled.ID, "", func(d []deliveryJSON) bool { return len(d) >= 1 })
	if len(skipped) != 1 || skipped[0].Status != "skipped" || skipped[0].EventID != evt {
		t.Errorf("disabled subscription's deliveries after a second fan-out = %+v, want one skipped record of %s", skipped, evt)
	}
	if got := on.Received(); len(got) != 1 {
		t.Errorf("the active endpoint got %d webhooks, want 1: its delivery was made before the second fan-out", len(got))
	}
}

// fanoutSettled waits until the fan-out consumer has nothing left to
// deliver or settle: a delivery made again would have been sent by then.
func fanoutSettled(t *testing.T, js jetstream.JetStream) {
	t.Helper()
	var info *jetstream.ConsumerInfo
	if !poll.Within(30*time.Second, func() bool {
		cons, err := js.Consumer(t.Context(), events.StreamName, "fanout")
		if err != nil {
			return false
		}
		info, err = cons.Info(t.Context())
		return err == nil && info.NumPending == 0 && info.NumAckPending == 0
	}) {
		t.Fatalf("the fan-out consumer did not settle: %+v", info)
	}
}

// TestFanoutReadingAgainRepeatsNothing: while webhookd runs, its fan-out
// consumer is replaced by one that starts at the stream's beginning, as
// when a NATS server killed comes back with its consumer's state from
// before its last acknowledgements: the fan-out reads delivered events
// again, as new, and makes none of their deliveries a second time.
func TestFanoutReadingAgainRepeatsNothing(t *testing.T) {
	t.Parallel()
	ns := natstest.Start(t, natstest.Options{})
	_, js := ns.Connect(t)
	env := testenv.Start(t, testenv.Options{NATSURL: ns.ClientURL()})
	ten, err := env.CreateTenant("acme", 0)
	if err != nil {
		t.Fatal(err)
	}
	rc := receiver(t)
	subscribe(t, env, ten, rc, "ticket.*")
	const n = 5
	for range n {
		publish(t, env, ten, "ticket.updated")
	}
	rc.WaitFor(n, 30*time.Second)

	ctx := context.Background()
	if err := js.DeleteConsumer(ctx, events.StreamName, "fanout"); err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateConsumer(ctx, events.StreamName, jetstream.ConsumerConfig{
		Durable: "fanout", FilterSubject: events.SubjectAll, AckPolicy: jetstream.AckExplicitPolicy,
		AckWait: 10 * time.Second, MaxAckPending: 1000, MaxDeliver: -1, DeliverPolicy: jetstream.DeliverAllPolicy,
	}); err != nil {
		t.Fatal(err)
	}
	if !poll.Within(30*time.Second, func() bool { return metric(t, env, "webhooks_redeliveries_already_made_total") >= n }) {
		t.Fatalf("webhooks_redeliveries_already_made_total = %v, want %d: the fan-out did not read the events again, or made them again",
			metric(t, env, "webhooks_redeliveries_already_made_total"), n)
	}
	fanoutSettled(t, js)
	if got := rc.Count(); got != n {
		t.Errorf("the endpoint got %d webhooks, want %d: deliveries made again", got, n)
	}
}

// TestIndexResumesAfterRestart: a restarted stack serves the deliveries it
// logged before from its local index, which resumed at the sequence it had
// applied instead of being rebuilt from the stream.
func TestIndexResumesAfterRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	env := testenv.Start(t, testenv.Options{DataDir: dir})
	ten, err := env.CreateTenant("acme", 0)
	if err != nil {
		t.Fatal(err)
	}
	rc := receiver(t)
	sub := subscribe(t, env, ten, rc, "ticket.*")
	publishBatches(t, env, ten, 20)
	pollDeliveries(t, env, ten, sub.ID, "?status=succeeded", func(d []deliveryJSON) bool { return len(d) == 20 })
	applied := metric(t, env, "webhooks_deliverylog_applied_sequence")
	if applied == 0 || metric(t, env, "webhooks_deliverylog_messages_applied_total") == 0 {
		t.Fatalf("index applied sequence %v before the restart, want some", applied)
	}
	env.Close()

	env = testenv.Start(t, testenv.Options{DataDir: dir})
	if got := metric(t, env, "webhooks_deliverylog_applied_sequence"); got != applied {
		t.Errorf("index resumed at sequence %v, want %v where it stopped", got, applied)
	}
	if got := metric(t, env, "webhooks_deliverylog_messages_applied_total"); got != 0 {
		t.Errorf("index applied %v messages at start, want 0: it resumed, nothing to rebuild", got)
	}
	r, _ := env.Do("GET", "/api/subscriptions/"+sub.ID+"/deliveries?limit=100", ten.APIKey, nil)
	var page struct{ Data []deliveryJSON }
	r.JSON(&page)
	if len(page.Data) != 20 {
		t.Errorf("after a restart the subscription lists %d deliveries, want the 20 logged before", len(page.Data))
	}
}

// TestRetentionRemovesOldDeliveries: with the index's clock moved past the
// retention of the first deliveries, they are gone (by id and from lists),
// and the younger ones stay.
func TestRetentionRemovesOldDeliveries(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var now time.Time // zero: the real clock
	clock := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		if now.IsZero() {
			return time.Now()
		}
		return now
	}
	env, ten := setup(t, testenv.Options{Server: func(c *server.Config) {
		c.DeliveryLog = deliverylog.IndexConfig{Now: clock, RetentionEvery: 20 * time.Millisecond}
	}})
	rc := receiver(t)
	sub := subscribe(t, env, ten, rc, "ticket.*")
	publishBatches(t, env, ten, 3)
	old := pollDeliveries(t, env, ten, sub.ID, "?status=succeeded", func(d []deliveryJSON) bool { return len(d) == 3 })
	newestOld := old[0].CreatedAt
	// The next deliveries are created strictly later.
	poll.Until(t, time.Minute, "the clock past the first deliveries", func() bool { return time.Now().After(newestOld.Add(5 * time.Millisecond)) })
	publishBatches(t, env, ten, 2)
	all := pollDeliveries(t, env, ten, sub.ID, "?status=succeeded", func(d []deliveryJSON) bool { return len(d) == 5 })

	mu.Lock()
	now = newestOld.Add(30*24*time.Hour + time.Millisecond)
	mu.Unlock()
	young := pollDeliveries(t, env, ten, sub.ID, "", func(d []deliveryJSON) bool { return len(d) == 2 })
	if young[0].ID != all[0].ID || young[1].ID != all[1].ID {
		t.Errorf("kept %s and %s, want the two youngest %s and %s", young[0].ID, young[1].ID, all[0].ID, all[1].ID)
	}
	for _, d := range old {
		if r, _ := env.Do("GET", "/api/deliveries/"+d.ID, ten.APIKey, nil); r.Status != http.StatusNotFound {
			t.Errorf("expired delivery %s = %d, want 404", d.ID, r.Status)
		}
	}
}

// TestOutcomesNeverChangeTheSubscription: deliveries given up (endpoint
// health counting them) and then a success leave the subscription's ETag
// and updatedAt as they were: health lives in a bucket of its own.
func TestOutcomesNeverChangeTheSubscription(t *testing.T) {
	t.Parallel()
	env, ten := setup(t, testenv.Options{Schedule: []time.Duration{}})
	rc, failing := failingReceiver(t, http.StatusBadGateway)
	sub := subscribe(t, env, ten, rc, "ticket.*")
	before, _ := env.Do("GET", "/api/subscriptions/"+sub.ID, ten.APIKey, nil)
	for range 3 {
		publish(t, env, ten, "ticket.updated")
	}
	pollDeliveries(t, env, ten, sub.ID, "?status=failed", func(d []deliveryJSON) bool { return len(d) == 3 })
	failing.Store(false)
	publish(t, env, ten, "ticket.updated")
	pollDeliveries(t, env, ten, sub.ID, "?status=succeeded", func(d []deliveryJSON) bool { return len(d) == 1 })
	after, _ := env.Do("GET", "/api/subscriptions/"+sub.ID, ten.APIKey, nil)
	if after.Header.Get("ETag") != before.Header.Get("ETag") || string(after.Body) != string(before.Body) {
		t.Errorf("after 3 deliveries given up and 1 success the subscription changed: ETag %s → %s, %s → %s",
			before.Header.Get("ETag"), after.Header.Get("ETag"), before.Body, after.Body)
	}
}
