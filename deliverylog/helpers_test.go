package deliverylog_test

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/oklog/ulid/v2"

	"github.com/onestack/webhooks/deliverylog"
	"github.com/onestack/webhooks/internal/natstest"
	"github.com/onestack/webhooks/internal/poll"
)

// waitLimit bounds every wait of these tests; none should come near it.
const waitLimit = 30 * time.Second

// stack is an embedded JetStream with the DELIVERYLOG stream.
type stack struct {
	srv *natstest.Server
	js  jetstream.JetStream
}

func startStack(t *testing.T, o natstest.Options) *stack {
	t.Helper()
	srv := natstest.Start(t, o)
	_, js := srv.Connect(t, nats.ReconnectWait(20*time.Millisecond), nats.MaxReconnects(-1))
	if _, err := deliverylog.EnsureStream(t.Context(), js, deliverylog.StreamConfig{}); err != nil {
		t.Fatalf("EnsureStream: %v", err)
	}
	return &stack{srv: srv, js: js}
}

func (s *stack) writer(t *testing.T, cfg deliverylog.WriterConfig) *deliverylog.Writer {
	t.Helper()
	w := deliverylog.NewWriter(s.js, cfg, nil)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		defer cancel()
		_ = w.Close(ctx)
	})
	return w
}

func (s *stack) index(t *testing.T, cfg deliverylog.IndexConfig) *deliverylog.Index {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	ix, err := deliverylog.OpenIndex(t.Context(), s.js, cfg, nil)
	if err != nil {
		t.Fatalf("OpenIndex: %v", err)
	}
	t.Cleanup(func() { _ = ix.Close(context.Background()) })
	return ix
}

func syncIndex(t *testing.T, ix *deliverylog.Index) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitLimit)
	defer cancel()
	if err := ix.Sync(ctx); err != nil {
		t.Fatalf("Sync: %v", err)
	}
}

func newTenant() string { return "ten_" + ulid.Make().String() }
func newSub() string    { return "sub_" + ulid.Make().String() }

func newDeliveryID(sub string) string {
	return "dlv_" + ulid.Make().String() + strings.TrimPrefix(sub, "sub_")
}

// history builds a delivery's records and the delivery the index should
// then hold.
type history struct {
	recs []deliverylog.Record
	want deliverylog.Delivery
}

// outcome is how a made-up delivery ends.
type outcome int

const (
	succeeded outcome = iota // one attempt, 200
	retrying                 // one attempt, 503, next attempt scheduled
	failed                   // two attempts, both 500
	skipped                  // no attempt
)

func makeDelivery(tenant, sub, event string, seq uint64, created time.Time, o outcome) history {
	created = created.UTC()
	id := newDeliveryID(sub)
	base := deliverylog.Record{
		DeliveryID: id, TenantID: tenant, SubscriptionID: sub,
		EventID: event, EventType: "ticket.updated", EventSeq: seq, CreatedAt: created,
	}
	want := deliverylog.Delivery{
		ID: id, TenantID: tenant, SubscriptionID: sub,
		EventID: event, EventType: "ticket.updated", EventSeq: seq, CreatedAt: created,
		Attempts: []deliverylog.Attempt{},
	}
	attempt := func(n, code int) deliverylog.Attempt {
		a := deliverylog.Attempt{N: n, At: created.Add(time.Duration(n) * time.Millisecond), StatusCode: code, DurationMs: int64(10 * n)}
		if code >= 500 {
			a.Error = "HTTP " + strconv.Itoa(code)
			a.ResponseBody = "unavailable"
		} else {
			a.ResponseBody = `{"ok":true}`
		}
		return a
	}
	var h history
	add := func(status string, a *deliverylog.Attempt, next *time.Time) {
		r := base
		r.Status, r.Attempt, r.NextAttemptAt = status, a, next
		h.recs = append(h.recs, r)
		want.Status, want.NextAttemptAt = status, next
		if a != nil {
			want.Attempts = append(want.Attempts, *a)
		}
	}
	switch o {
	case succeeded:
		a := attempt(1, 200)
		add(deliverylog.StatusSucceeded, &a, nil)
	case retrying:
		a := attempt(1, 503)
		next := created.Add(time.Minute)
		add(deliverylog.StatusPending, &a, &next)
	case failed:
		a1, a2 := attempt(1, 500), attempt(2, 500)
		next := created.Add(time.Second)
		add(deliverylog.StatusPending, &a1, &next)
		add(deliverylog.StatusFailed, &a2, nil)
	case skipped:
		add(deliverylog.StatusSkipped, nil, nil)
	}
	h.want = want
	return h
}

// doneCounter counts the done calls of appended records.
type doneCounter struct {
	mu    sync.Mutex
	calls map[string]int // by record
	errs  []error
	n     atomic.Int64
}

func newDoneCounter() *doneCounter { return &doneCounter{calls: map[string]int{}} }

func (c *doneCounter) done(key string) func(error) {
	return func(err error) {
		c.mu.Lock()
		c.calls[key]++
		if err != nil {
			c.errs = append(c.errs, err)
		}
		c.mu.Unlock()
		c.n.Add(1)
	}
}

// appendAll appends recs in order and waits until every done was called.
func appendAll(t *testing.T, w *deliverylog.Writer, recs []deliverylog.Record) {
	t.Helper()
	c := newDoneCounter()
	for i, r := range recs {
		if err := w.Append(t.Context(), r, c.done(strconv.Itoa(i))); err != nil {
			t.Fatalf("Append(%s): %v", r.DeliveryID, err)
		}
	}
	poll.Until(t, waitLimit, "every done called", func() bool { return c.n.Load() == int64(len(recs)) })
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.errs) > 0 {
		t.Fatalf("done errors: %v", c.errs)
	}
}
