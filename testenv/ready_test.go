package testenv_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/onestack/webhooks/deliverylog"
	"github.com/onestack/webhooks/dispatcher"
	"github.com/onestack/webhooks/events"
	"github.com/onestack/webhooks/idempotency"
	"github.com/onestack/webhooks/internal/poll"
	"github.com/onestack/webhooks/testenv"
)

// TestReadinessNamesWhatIsMissing: /readyz is 503 while a bucket the
// process uses is gone, and names it; it is ready again once the bucket is
// back.
func TestReadinessNamesWhatIsMissing(t *testing.T) {
	t.Parallel()
	env := testenv.Start(t, testenv.Options{})
	ready := func() (int, []string) {
		t.Helper()
		r, err := env.Do("GET", "/readyz", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		var body struct {
			Code    string
			Details struct{ Missing []string }
		}
		r.JSON(&body)
		return r.Status, body.Details.Missing
	}
	if status, missing := ready(); status != http.StatusOK {
		t.Fatalf("readyz of a fresh stack = %d %v, want 200", status, missing)
	}
	_, js := env.JetStream()
	ctx := context.Background()
	if err := js.DeleteKeyValue(ctx, idempotency.Bucket); err != nil {
		t.Fatal(err)
	}
	status, missing := ready()
	if status != http.StatusServiceUnavailable || len(missing) != 1 || missing[0] != "bucket "+idempotency.Bucket {
		t.Errorf("readyz without the idempotency bucket = %d %v, want 503 naming it", status, missing)
	}
	if _, err := idempotency.Open(ctx, js, idempotency.Config{}); err != nil {
		t.Fatal(err)
	}
	if status, missing := ready(); status != http.StatusOK {
		t.Errorf("readyz with the bucket back = %d %v, want 200", status, missing)
	}
}

// TestReadinessReportsAStalledDispatcher: with the attempt log's stream
// gone, outcomes cannot be stored; past StallAfter /readyz says the
// dispatcher is stuck (not only that a stream is missing), and once the
// stream is back everything stored flows again and it is ready.
func TestReadinessReportsAStalledDispatcher(t *testing.T) {
	t.Parallel()
	env, ten := setup(t, testenv.Options{Dispatcher: dispatcher.Config{StallAfter: 200 * time.Millisecond}})
	rc := receiver(t)
	subscribe(t, env, ten, rc, "ticket.*")
	_, js := env.JetStream()
	ctx := context.Background()
	if err := js.DeleteStream(ctx, deliverylog.StreamName); err != nil {
		t.Fatal(err)
	}
	publish(t, env, ten, "ticket.updated")
	rc.WaitFor(1, 30*time.Second)
	var missing []string
	if !poll.Within(30*time.Second, func() bool {
		r, _ := env.Do("GET", "/readyz", "", nil)
		var body struct{ Details struct{ Missing []string } }
		r.JSON(&body)
		missing = body.Details.Missing
		return slices.ContainsFunc(missing, func(m string) bool { return strings.Contains(m, "outcomes not stored") })
	}) {
		t.Fatalf("readyz never reported the stalled dispatcher: %v", missing)
	}
	if _, err := deliverylog.EnsureStream(ctx, js, deliverylog.StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	var r *testenv.Response
	if !poll.Within(30*time.Second, func() bool {
		r, _ = env.Do("GET", "/readyz", "", nil)
		return r.Status == http.StatusOK
	}) {
		t.Fatalf("readyz still %d %s after the stream came back", r.Status, r.Body)
	}
}

// TestFanoutConsumerLostIsMadeAgain: the fan-out's durable consumer
// deleted under a running stack is made again from where it was, events
// keep flowing, and the next start takes the consumer as it is.
func TestFanoutConsumerLostIsMadeAgain(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	env, ten := setup(t, testenv.Options{DataDir: dir})
	rc := receiver(t)
	subscribe(t, env, ten, rc, "ticket.*")
	publish(t, env, ten, "ticket.updated")
	rc.WaitFor(1, 30*time.Second)
	_, js := env.JetStream()
	ctx := context.Background()
	// Once the first event is settled (acknowledged), losing the consumer
	// must not send it again.
	poll.Until(t, 30*time.Second, "the first event settled", func() bool {
		c, err := js.Consumer(ctx, events.StreamName, "fanout")
		if err != nil {
			t.Fatal(err)
		}
		info, err := c.Info(ctx)
		return err == nil && info.NumAckPending == 0 && info.NumPending == 0
	})
	if err := js.DeleteConsumer(ctx, events.StreamName, "fanout"); err != nil {
		t.Fatal(err)
	}
	after := publish(t, env, ten, "ticket.updated")
	got := rc.WaitFor(2, 30*time.Second)
	if len(got) < 2 || got[len(got)-1].ID != after {
		t.Fatalf("receiver got %d webhooks after the fan-out consumer was deleted, want the next event", len(got))
	}
	env.Close()
	env = testenv.Start(t, testenv.Options{DataDir: dir})
	last := publish(t, env, ten, "ticket.updated")
	if got := rc.WaitFor(3, 30*time.Second); len(got) != 3 || got[2].ID != last {
		var ids []string
		for _, g := range rc.Received() {
			ids = append(ids, g.ID)
		}
		t.Fatalf("after a restart the receiver got %v, want the next event (%s) alone", ids, last)
	}
}
