package deliverylog_test

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/onestack/webhooks/deliverylog"
	"github.com/onestack/webhooks/internal/natstest"
	"github.com/onestack/webhooks/internal/poll"
)

// TestWriterSurvivesServerRestart stops the NATS server while records
// flow, starts a new one on the same storage and port, and checks that
// every record is stored exactly once, every done called once with nil,
// and the index follows the new server.
func TestWriterSurvivesServerRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := startStack(t, natstest.Options{Dir: dir})
	port := s.srv.Addr().(*net.TCPAddr).Port
	logger := slog.New(slog.NewTextHandler(t.Output(), nil))
	w := deliverylog.NewWriter(s.js, deliverylog.WriterConfig{AckTimeout: time.Second, RetryWait: 10 * time.Millisecond, MaxRetryWait: 100 * time.Millisecond}, logger)
	t.Cleanup(func() { _ = w.Close(context.Background()) })
	ix, err := deliverylog.OpenIndex(t.Context(), s.js, deliverylog.IndexConfig{Dir: t.TempDir()}, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ix.Close(context.Background()) })

	const n = 3000
	tenant := newTenant()
	subs := []string{newSub(), newSub(), newSub()}
	ids := make([]string, n)
	var st jetstream.Stream
	c := newDoneCounter()
	var appended atomic.Int64
	produced := make(chan error, 1)
	go func() {
		// A steady flow, so that the restart falls in the middle of it.
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for i := range n {
			h := makeDelivery(tenant, subs[i%len(subs)], "evt", uint64(i), time.Now(), succeeded)
			ids[i] = h.want.ID
			if err := w.Append(context.Background(), h.recs[0], c.done(h.want.ID)); err != nil {
				produced <- err
				return
			}
			appended.Add(1)
			if i%10 == 0 {
				<-tick.C
			}
		}
		produced <- nil
	}()

	poll.Until(t, waitLimit, "a third appended", func() bool { return appended.Load() >= n/3 })
	s.srv.Shutdown()
	s.srv.WaitForShutdown()
	poll.Until(t, waitLimit, "half appended while the server is down", func() bool { return appended.Load() >= n/2 })
	natstest.Start(t, natstest.Options{Dir: dir, Port: port})
	if err := <-produced; err != nil {
		t.Fatalf("Append: %v", err)
	}
	poll.Until(t, waitLimit, "every done called", func() bool { return c.n.Load() >= n })

	c.mu.Lock()
	if len(c.errs) > 0 || len(c.calls) != n {
		t.Errorf("done: %d records called back, errors %v; want %d, none", len(c.calls), c.errs, n)
	}
	for id, calls := range c.calls {
		if calls != 1 {
			t.Errorf("done for %s called %d times, want once", id, calls)
		}
	}
	c.mu.Unlock()

	// The stream holds each record once: a batch published again after the
	// restart was recognised by its message id.
	stored := map[string]int{}
	st, err = s.js.Stream(t.Context(), deliverylog.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := st.GetMsg(t.Context(), seq)
		if err != nil {
			t.Fatalf("GetMsg(%d): %v", seq, err)
		}
		recs, err := deliverylog.DecodeBatch(strings.TrimPrefix(m.Subject, "dlog."), m.Data)
		if err != nil {
			t.Fatalf("message %d: %v", seq, err)
		}
		for _, r := range recs {
			stored[r.DeliveryID]++
		}
	}
	for _, id := range ids {
		if stored[id] != 1 {
			t.Errorf("record of %s stored %d times, want once", id, stored[id])
		}
	}
	if len(stored) != n {
		t.Errorf("stream holds records of %d deliveries, want %d", len(stored), n)
	}

	syncIndex(t, ix)
	for _, id := range ids {
		d, err := ix.Delivery(t.Context(), tenant, id)
		if err != nil {
			t.Fatalf("Delivery(%s): %v", id, err)
		}
		if len(d.Attempts) != 1 || d.Status != deliverylog.StatusSucceeded {
			t.Fatalf("Delivery(%s) = %s with %d attempts, want succeeded with 1", id, d.Status, len(d.Attempts))
		}
	}
	t.Logf("%d records in %d messages; index applied %d messages", n, info.State.Msgs, ix.MessagesApplied())
}
