package eventindex

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/onestack/webhooks/events"
	"github.com/onestack/webhooks/internal/natstest"
	"github.com/onestack/webhooks/internal/poll"
	"github.com/onestack/webhooks/problem"
)

type stack struct {
	js  jetstream.JetStream
	pub *events.Publisher
}

func start(t testing.TB) stack {
	t.Helper()
	_, js := natstest.Start(t, natstest.Options{}).Connect(t)
	if _, err := events.EnsureStream(context.Background(), js, events.StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	return stack{js: js, pub: events.NewPublisher(js, events.PublisherConfig{})}
}

func (s stack) open(t *testing.T, cfg Config) *Index {
	t.Helper()
	ix, err := Open(context.Background(), s.js, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ix.Close(context.Background()) })
	return ix
}

// publish stores events of tenant, one a minute from base, with the types
// given in turn; it returns them as the index should list them (newest
// first).
func (s stack) publish(t testing.TB, tenant string, base time.Time, types ...string) []Event {
	t.Helper()
	var out []Event
	for i, typ := range types {
		e := events.Event{ID: events.NewID(), Type: typ, TenantID: tenant, OccurredAt: base.Add(time.Duration(i) * time.Minute), Data: []byte(`{}`)}
		if err := s.pub.PublishEvents(context.Background(), true, e); err != nil {
			t.Fatal(err)
		}
		out = append(out, Event{ID: e.ID, Type: typ, OccurredAt: e.OccurredAt})
	}
	slices.Reverse(out)
	return out
}

func strip(es []Event) []Event {
	out := make([]Event, len(es))
	for i, e := range es {
		out[i] = Event{ID: e.ID, Type: e.Type, OccurredAt: e.OccurredAt}
	}
	return out
}

func listAll(t *testing.T, ix *Index, tenant string, q Query) ([]Event, int) {
	t.Helper()
	var all []Event
	pages := 0
	for {
		page, next, err := ix.List(context.Background(), tenant, q)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		all = append(all, page...)
		if next == "" {
			return strip(all), pages
		}
		q.Cursor = next
	}
}

func TestListAndLookup(t *testing.T) {
	t.Parallel()
	s := start(t)
	ix := s.open(t, Config{Dir: t.TempDir()})
	base := time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)
	types := []string{"ticket.created", "ticket.updated", "board.updated", "ticket.updated", "ticket.updated", "account.created", "ticket.updated"}
	a := s.publish(t, "ten_a", base, types...)
	b := s.publish(t, "ten_b", base, "ticket.updated", "ticket.updated")
	ctx := context.Background()
	if err := ix.Sync(ctx); err != nil {
		t.Fatal(err)
	}

	got, pages := listAll(t, ix, "ten_a", Query{Limit: 3})
	if diff := cmp.Diff(a, got); diff != "" || pages != 3 {
		t.Errorf("all of ten_a in %d pages (-want +got):\n%s", pages, diff)
	}
	var updated []Event
	for _, e := range a {
		if e.Type == "ticket.updated" {
			updated = append(updated, e)
		}
	}
	got, _ = listAll(t, ix, "ten_a", Query{Type: "ticket.updated", Limit: 2})
	if diff := cmp.Diff(updated, got); diff != "" {
		t.Errorf("ten_a's ticket.updated (-want +got):\n%s", diff)
	}
	got, _ = listAll(t, ix, "ten_a", Query{Since: base.Add(2 * time.Minute), Until: base.Add(4 * time.Minute), Limit: 10})
	if diff := cmp.Diff(a[2:5], got); diff != "" {
		t.Errorf("ten_a from minute 2 to 4, both included (-want +got):\n%s", diff)
	}
	got, _ = listAll(t, ix, "ten_a", Query{Type: "ticket.updated", Since: base.Add(4 * time.Minute), Limit: 10})
	if diff := cmp.Diff(updated[:2], got); diff != "" {
		t.Errorf("ten_a's ticket.updated from minute 4 (-want +got):\n%s", diff)
	}
	got, _ = listAll(t, ix, "ten_b", Query{Limit: 10})
	if diff := cmp.Diff(b, got); diff != "" {
		t.Errorf("ten_b (-want +got):\n%s", diff)
	}
	if got, _ := listAll(t, ix, "ten_c", Query{Limit: 10}); len(got) != 0 {
		t.Errorf("a tenant without events lists %v", got)
	}
	if got, _ := listAll(t, ix, "ten_a", Query{Since: base.Add(time.Hour), Until: base, Limit: 10}); len(got) != 0 {
		t.Errorf("an empty range lists %v", got)
	}

	e, err := ix.Lookup(ctx, "ten_a", a[0].ID)
	if err != nil || e.Type != a[0].Type || !e.OccurredAt.Equal(a[0].OccurredAt) || e.Seq == 0 {
		t.Errorf("Lookup(%s) = %+v, %v", a[0].ID, e, err)
	}
	if _, err := ix.Lookup(ctx, "ten_b", a[0].ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("Lookup of another tenant's event = %v, want ErrNotFound", err)
	}
	if _, _, err := ix.List(ctx, "ten_a", Query{Cursor: "not-a-cursor", Limit: 1}); !errors.Is(err, ErrInvalid) {
		t.Errorf("List with a foreign cursor = %v, want ErrInvalid", err)
	}
	if _, _, err := ix.List(ctx, "ten_a", Query{Cursor: "not-a-cursor", Limit: 1}); !errors.Is(err, problem.ErrInvalidCursor) {
		t.Errorf("List with a foreign cursor = %v, want problem.ErrInvalidCursor", err)
	}
}

// TestResumeAndRetention: reopened, the index goes on from where it was;
// events past retention are forgotten.
func TestResumeAndRetention(t *testing.T) {
	t.Parallel()
	s := start(t)
	dir := t.TempDir()
	ix := s.open(t, Config{Dir: dir})
	base := time.Now().UTC().Truncate(time.Minute)
	first := s.publish(t, "ten_a", base, "ticket.created", "ticket.updated")
	if err := ix.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	applied := ix.Applied()
	if err := ix.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	second := s.publish(t, "ten_a", base.Add(time.Hour), "ticket.deleted")
	clock := newClock(time.Now())
	ix = s.open(t, Config{Dir: dir, Now: clock.Now, RetentionEvery: time.Hour})
	if err := ix.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	if ix.Applied() != applied+1 {
		t.Errorf("reopened index applied %d, want %d", ix.Applied(), applied+1)
	}
	got, _ := listAll(t, ix, "ten_a", Query{Limit: 10})
	if diff := cmp.Diff(append(second, first...), got); diff != "" {
		t.Errorf("after reopening (-want +got):\n%s", diff)
	}
	clock.Set(time.Now().Add(15 * 24 * time.Hour))
	if n, err := ix.store.Expire(); err != nil || n != 3 {
		t.Errorf("expire 15 days later = %d, %v; want 3 forgotten", n, err)
	}
	poll.Until(t, 30*time.Second, "nothing listed after retention", func() bool {
		got, _ := listAll(t, ix, "ten_a", Query{Limit: 10})
		return len(got) == 0
	})
	if _, err := ix.Lookup(context.Background(), "ten_a", first[0].ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("Lookup after retention = %v, want ErrNotFound", err)
	}
}

// FuzzList: whatever the cursor, type and times, listing never panics and
// pages stay within the query.
func FuzzList(f *testing.F) {
	f.Add("", "ticket.updated", int64(0), int64(0))
	f.Add("p00000000000000000000000000000000", "", int64(-1), int64(1<<62))
	f.Add("pffffffffffffffffffffffffffffffff", "a", int64(1e18), int64(-1e18))
	s := start(f)
	ix, err := Open(context.Background(), s.js, Config{Dir: f.TempDir()}, nil)
	if err != nil {
		f.Fatal(err)
	}
	defer ix.Close(context.Background())
	s.publish(f, "ten_a", time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), "ticket.updated", "ticket.created")
	f.Fuzz(func(t *testing.T, cursor, typ string, since, until int64) {
		q := Query{Cursor: cursor, Type: typ, Since: time.Unix(0, since), Until: time.Unix(0, until), Limit: 5}
		page, _, err := ix.List(context.Background(), "ten_a", q)
		if err != nil && !errors.Is(err, ErrInvalid) {
			t.Fatalf("List(%+v) = %v", q, err)
		}
		if len(page) > 5 {
			t.Fatalf("List(%+v) = %d events, over the limit", q, len(page))
		}
	})
}

// testClock is a clock a test moves while the index's goroutines read it.
type testClock struct{ unixNano atomic.Int64 }

func newClock(at time.Time) *testClock {
	c := &testClock{}
	c.Set(at)
	return c
}

// Now is the time last set.
func (c *testClock) Now() time.Time { return time.Unix(0, c.unixNano.Load()) }

// Set moves the clock to at.
func (c *testClock) Set(at time.Time) { c.unixNano.Store(at.UnixNano()) }
