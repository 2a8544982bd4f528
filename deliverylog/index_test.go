package deliverylog_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/onestack/webhooks/deliverylog"
	"github.com/onestack/webhooks/internal/natstest"
	"github.com/onestack/webhooks/problem"
)

func TestWriterAndIndex(t *testing.T) {
	t.Parallel()
	s := startStack(t, natstest.Options{})
	w := s.writer(t, deliverylog.WriterConfig{})
	ix := s.index(t, deliverylog.IndexConfig{})
	ctx := t.Context()

	tenantA, tenantB := newTenant(), newTenant()
	subA1, subA2, subB1 := newSub(), newSub(), newSub()
	created := time.Now()
	var recs []deliverylog.Record
	var a1, a2, b1 []deliverylog.Delivery // in creation order
	for i := range 60 {
		event := fmt.Sprintf("evt_%02d", i)
		o := succeeded
		switch {
		case i%5 == 0:
			o = failed
		case i%5 == 1:
			o = retrying
		case i%7 == 3:
			o = skipped
		}
		h := makeDelivery(tenantA, subA1, event, uint64(i+1), created, o)
		recs = append(recs, h.recs...)
		a1 = append(a1, h.want)
		if i < 10 {
			h := makeDelivery(tenantA, subA2, event, uint64(i+1), created, succeeded)
			recs = append(recs, h.recs...)
			a2 = append(a2, h.want)
			// Tenant B's events have the same ids: they must not mix.
			h = makeDelivery(tenantB, subB1, event, uint64(i+1), created, failed)
			recs = append(recs, h.recs...)
			b1 = append(b1, h.want)
		}
	}
	appendAll(t, w, recs)
	syncIndex(t, ix)

	t.Run("get", func(t *testing.T) {
		for _, want := range slices.Concat(a1, a2, b1) {
			got, err := ix.Delivery(ctx, want.TenantID, want.ID)
			if err != nil {
				t.Fatalf("Delivery(%s): %v", want.ID, err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Fatalf("Delivery(%s) (-want +got):\n%s", want.ID, diff)
			}
		}
	})
	t.Run("tenant isolation", func(t *testing.T) {
		for _, tc := range []struct{ tenant, id string }{
			{tenantB, a1[0].ID},
			{tenantA, b1[0].ID},
			{tenantA, "dlv_nonsense"},
			{tenantA, newDeliveryID(subA1)},
		} {
			if _, err := ix.Delivery(ctx, tc.tenant, tc.id); !errors.Is(err, deliverylog.ErrNotFound) {
				t.Errorf("Delivery(%s, %s) = %v, want ErrNotFound", tc.tenant, tc.id, err)
			}
		}
		got, more, err := ix.List(ctx, tenantB, subA1, "", "", 10)
		if err != nil || len(got) != 0 || more {
			t.Errorf("List(tenant B, sub of A) = %d deliveries, %v, %v; want none", len(got), more, err)
		}
	})
	t.Run("list newest first with a cursor", func(t *testing.T) {
		want := slices.Clone(a1)
		slices.Reverse(want)
		if diff := cmp.Diff(want, listAll(t, ix, tenantA, subA1, "", 25, []int{25, 25, 10})); diff != "" {
			t.Errorf("List pages (-want +got):\n%s", diff)
		}
	})
	t.Run("list by status", func(t *testing.T) {
		for _, status := range []string{deliverylog.StatusFailed, deliverylog.StatusPending, deliverylog.StatusSkipped, deliverylog.StatusSucceeded} {
			var want []deliverylog.Delivery
			for _, d := range slices.Backward(a1) {
				if d.Status == status {
					want = append(want, d)
				}
			}
			if diff := cmp.Diff(want, listAll(t, ix, tenantA, subA1, status, 5, nil)); diff != "" {
				t.Errorf("List(status %s) (-want +got):\n%s", status, diff)
			}
		}
	})
	t.Run("list refuses malformed arguments", func(t *testing.T) {
		for _, tc := range []struct{ sub, status, before string }{
			{"sub_x", "", ""},
			{subA1, "done", ""},
			{subA1, "", "dlv_x"},
		} {
			if _, _, err := ix.List(ctx, tenantA, tc.sub, tc.status, tc.before, 10); !errors.Is(err, deliverylog.ErrInvalid) {
				t.Errorf("List(%q, %q, %q) = %v, want ErrInvalid", tc.sub, tc.status, tc.before, err)
			}
		}
		if _, _, err := ix.List(ctx, tenantA, subA1, "", "dlv_x", 10); !errors.Is(err, problem.ErrInvalidCursor) {
			t.Errorf("List(cursor %q) = %v, want problem.ErrInvalidCursor", "dlv_x", err)
		}
	})
	t.Run("event lookup", func(t *testing.T) {
		bySub := func(a, b deliverylog.Delivery) int {
			return strings.Compare(a.SubscriptionID+a.ID, b.SubscriptionID+b.ID)
		}
		want := []deliverylog.Delivery{a1[3], a2[3]}
		slices.SortFunc(want, bySub)
		got, err := ix.EventDeliveries(ctx, tenantA, "evt_03")
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("EventDeliveries(A, evt_03) (-want +got):\n%s", diff)
		}
		got, err = ix.EventDeliveries(ctx, tenantB, "evt_03")
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]deliverylog.Delivery{b1[3]}, got); diff != "" {
			t.Errorf("EventDeliveries(B, evt_03) (-want +got):\n%s", diff)
		}
		if got, err := ix.EventDeliveries(ctx, tenantB, "evt_30"); err != nil || len(got) != 0 {
			t.Errorf("EventDeliveries(B, evt_30) = %v, %v; want none", got, err)
		}
	})
}

// listAll pages through a subscription's deliveries; wantSizes, if given,
// are the expected page sizes.
func listAll(t *testing.T, ix *deliverylog.Index, tenant, sub, status string, limit int, wantSizes []int) []deliverylog.Delivery {
	t.Helper()
	var all []deliverylog.Delivery
	var sizes []int
	before := ""
	for {
		page, more, err := ix.List(t.Context(), tenant, sub, status, before, limit)
		if err != nil {
			t.Fatalf("List(%s, %q, before %q): %v", sub, status, before, err)
		}
		all = append(all, page...)
		sizes = append(sizes, len(page))
		if !more {
			break
		}
		if len(page) == 0 || len(sizes) > 1000 {
			t.Fatalf("List: more with page of %d after %d pages", len(page), len(sizes))
		}
		before = page[len(page)-1].ID
	}
	if wantSizes != nil && !slices.Equal(sizes, wantSizes) {
		t.Errorf("List page sizes = %v, want %v", sizes, wantSizes)
	}
	return all
}

func TestIndexResumesWithoutRebuild(t *testing.T) {
	t.Parallel()
	s := startStack(t, natstest.Options{})
	w := s.writer(t, deliverylog.WriterConfig{MaxBatchRecords: 10})
	dir := t.TempDir()
	tenant, sub := newTenant(), newSub()
	var wants []deliverylog.Delivery
	batch := func(n int) []deliverylog.Record {
		var recs []deliverylog.Record
		for i := range n {
			h := makeDelivery(tenant, sub, fmt.Sprint("evt_", len(wants)+i), 1, time.Now(), succeeded)
			recs = append(recs, h.recs...)
			wants = append(wants, h.want)
		}
		return recs
	}

	ix, err := deliverylog.OpenIndex(t.Context(), s.js, deliverylog.IndexConfig{Dir: dir}, nil)
	if err != nil {
		t.Fatal(err)
	}
	appendAll(t, w, batch(50))
	syncIndex(t, ix)
	applied := ix.Applied()
	if applied == 0 || ix.MessagesApplied() != applied {
		t.Fatalf("first open applied %d messages up to seq %d, want all from 1", ix.MessagesApplied(), applied)
	}
	if err := ix.Close(t.Context()); err != nil {
		t.Fatalf("Close: %v", err)
	}

	appendAll(t, w, batch(50))
	ix = s.index(t, deliverylog.IndexConfig{Dir: dir})
	if got := ix.Applied(); got != applied {
		t.Errorf("reopened index starts at seq %d, want %d", got, applied)
	}
	syncIndex(t, ix)
	info, err := s.streamInfo(t)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ix.MessagesApplied(), info.State.LastSeq-applied; got != want {
		t.Errorf("reopened index applied %d messages, want only the %d new ones", got, want)
	}
	for _, want := range wants {
		got, err := ix.Delivery(t.Context(), tenant, want.ID)
		if err != nil {
			t.Fatalf("Delivery(%s) after reopening: %v", want.ID, err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("Delivery(%s) (-want +got):\n%s", want.ID, diff)
		}
	}
}

func (s *stack) streamInfo(t *testing.T) (*jetstream.StreamInfo, error) {
	st, err := s.js.Stream(t.Context(), deliverylog.StreamName)
	if err != nil {
		return nil, err
	}
	return st.Info(t.Context())
}

func TestRetention(t *testing.T) {
	t.Parallel()
	s := startStack(t, natstest.Options{})
	w := s.writer(t, deliverylog.WriterConfig{})
	t0 := time.Now()
	var now atomic.Int64
	now.Store(t0.UnixNano())
	ix := s.index(t, deliverylog.IndexConfig{
		Retention:      30 * 24 * time.Hour,
		RetentionEvery: time.Hour, // the test runs it
		Now:            func() time.Time { return time.Unix(0, now.Load()) },
	})

	tenant, sub := newTenant(), newSub()
	var old, young []deliverylog.Delivery
	var recs []deliverylog.Record
	for i := range 20 {
		o := []outcome{succeeded, failed}[i%2]
		h := makeDelivery(tenant, sub, fmt.Sprint("old_", i), 1, t0.Add(-10*24*time.Hour), o)
		old = append(old, h.want)
		recs = append(recs, h.recs...)
		h = makeDelivery(tenant, sub, fmt.Sprint("young_", i), 1, t0.Add(-time.Hour), o)
		young = append(young, h.want)
		recs = append(recs, h.recs...)
	}
	appendAll(t, w, recs)
	syncIndex(t, ix)
	if n, err := ix.Expire(); err != nil || n != 0 {
		t.Fatalf("Expire at t0 = %d, %v; want 0", n, err)
	}

	now.Store(t0.Add(25 * 24 * time.Hour).UnixNano()) // old ones are 35 days old
	n, err := ix.Expire()
	if err != nil || n != len(old) {
		t.Fatalf("Expire 25 days later = %d, %v; want %d", n, err, len(old))
	}
	for _, d := range old {
		if _, err := ix.Delivery(t.Context(), tenant, d.ID); !errors.Is(err, deliverylog.ErrNotFound) {
			t.Errorf("Delivery(expired %s) = %v, want ErrNotFound", d.ID, err)
		}
		if got, err := ix.EventDeliveries(t.Context(), tenant, d.EventID); err != nil || len(got) != 0 {
			t.Errorf("EventDeliveries(expired %s) = %d, %v; want none", d.EventID, len(got), err)
		}
	}
	want := slices.Clone(young)
	slices.Reverse(want)
	if diff := cmp.Diff(want, listAll(t, ix, tenant, sub, "", 7, nil)); diff != "" {
		t.Errorf("List after retention (-want +got):\n%s", diff)
	}
	var wantFailed []deliverylog.Delivery
	for _, d := range want {
		if d.Status == deliverylog.StatusFailed {
			wantFailed = append(wantFailed, d)
		}
	}
	if diff := cmp.Diff(wantFailed, listAll(t, ix, tenant, sub, deliverylog.StatusFailed, 3, nil)); diff != "" {
		t.Errorf("List(failed) after retention (-want +got):\n%s", diff)
	}
	if p, st, ev, cr := ix.KeyCounts(); p != len(young) || st != len(young) || ev != len(young) || cr != len(young) {
		t.Errorf("keys after retention: primary %d, status %d, event %d, created %d; want %d of each", p, st, ev, cr, len(young))
	}

	// A late record of an expired delivery does not bring it back.
	late := old[1]
	appendAll(t, w, []deliverylog.Record{{
		DeliveryID: late.ID, TenantID: tenant, EventID: late.EventID, EventType: late.EventType,
		CreatedAt: late.CreatedAt, Status: deliverylog.StatusSucceeded,
		Attempt: &deliverylog.Attempt{N: 3, At: t0, StatusCode: 200},
	}})
	syncIndex(t, ix)
	if _, err := ix.Delivery(t.Context(), tenant, late.ID); !errors.Is(err, deliverylog.ErrNotFound) {
		t.Errorf("Delivery(expired %s) after a late record = %v, want ErrNotFound", late.ID, err)
	}
}

func TestWriterBatchesPerTenant(t *testing.T) {
	t.Parallel()
	s := startStack(t, natstest.Options{})
	w := deliverylog.NewWriter(s.js, deliverylog.WriterConfig{FlushInterval: time.Hour, MaxBatchRecords: 100}, nil)
	tenantA, tenantB, sub := newTenant(), newTenant(), newSub()
	c := newDoneCounter()
	for i := range 250 {
		for _, tenant := range []string{tenantA, tenantB} {
			h := makeDelivery(tenant, sub, "evt", 1, time.Now(), succeeded)
			if err := w.Append(t.Context(), h.recs[0], c.done(h.recs[0].DeliveryID)); err != nil {
				t.Fatalf("Append %d: %v", i, err)
			}
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), waitLimit)
	defer cancel()
	if err := w.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if c.n.Load() != 500 || len(c.errs) > 0 {
		t.Fatalf("after Close: %d done calls, errors %v; want 500, none", c.n.Load(), c.errs)
	}
	info, err := s.streamInfo(t)
	if err != nil {
		t.Fatal(err)
	}
	// Per tenant: two full batches of 100, then the 50 left, flushed by Close.
	if info.State.Msgs != 6 || info.State.NumSubjects != 2 {
		t.Errorf("stream holds %d messages on %d subjects, want 6 on 2", info.State.Msgs, info.State.NumSubjects)
	}
	if err := w.Append(t.Context(), makeDelivery(tenantA, sub, "evt", 1, time.Now(), succeeded).recs[0], nil); !errors.Is(err, deliverylog.ErrClosed) {
		t.Errorf("Append after Close = %v, want ErrClosed", err)
	}
}

func TestWriterBackpressureAndGivingUp(t *testing.T) {
	t.Parallel()
	srv := natstest.Start(t, natstest.Options{})
	_, js := srv.Connect(t)
	// No stream: every publish fails and is retried until Close gives up.
	w := deliverylog.NewWriter(js, deliverylog.WriterConfig{MaxPendingRecords: 10, RetryWait: 5 * time.Millisecond, MaxRetryWait: 10 * time.Millisecond}, nil)
	tenant, sub := newTenant(), newSub()
	c := newDoneCounter()
	for i := range 10 {
		r := makeDelivery(tenant, sub, "evt", 1, time.Now(), succeeded).recs[0]
		if err := w.Append(t.Context(), r, c.done(fmt.Sprint(i))); err != nil {
			t.Fatalf("Append %d: %v", i, err)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	r := makeDelivery(tenant, sub, "evt", 1, time.Now(), succeeded).recs[0]
	if err := w.Append(ctx, r, c.done("blocked")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Append past MaxPendingRecords = %v, want DeadlineExceeded", err)
	}

	blocked := make(chan error, 1)
	go func() { blocked <- w.Append(t.Context(), r, c.done("blocked")) }()
	ctx, cancel = context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	if err := w.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close = %v, want DeadlineExceeded", err)
	}
	if err := <-blocked; !errors.Is(err, deliverylog.ErrClosed) {
		t.Errorf("Append blocked during Close = %v, want ErrClosed", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.calls) != 10 || len(c.errs) != 10 {
		t.Fatalf("done calls %v, errors %d; want one each for the 10 records, all errors", c.calls, len(c.errs))
	}
	for k, n := range c.calls {
		if n != 1 {
			t.Errorf("done(%s) called %d times", k, n)
		}
	}
	for _, err := range c.errs {
		if !errors.Is(err, deliverylog.ErrClosed) {
			t.Errorf("done(%v), want ErrClosed", err)
		}
	}
}

func TestIndexRebuildsForANewStream(t *testing.T) {
	t.Parallel()
	s := startStack(t, natstest.Options{})
	w := s.writer(t, deliverylog.WriterConfig{})
	dir := t.TempDir()
	tenant, sub := newTenant(), newSub()
	before := makeDelivery(tenant, sub, "evt_1", 1, time.Now(), succeeded)
	ix, err := deliverylog.OpenIndex(t.Context(), s.js, deliverylog.IndexConfig{Dir: dir}, nil)
	if err != nil {
		t.Fatal(err)
	}
	appendAll(t, w, before.recs)
	syncIndex(t, ix)
	if err := ix.Close(t.Context()); err != nil {
		t.Fatal(err)
	}

	// The stream is deleted and made again: its sequences start over.
	if err := s.js.DeleteStream(t.Context(), deliverylog.StreamName); err != nil {
		t.Fatal(err)
	}
	if _, err := deliverylog.EnsureStream(t.Context(), s.js, deliverylog.StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	after := makeDelivery(tenant, sub, "evt_2", 2, time.Now(), failed)
	appendAll(t, w, after.recs)
	ix = s.index(t, deliverylog.IndexConfig{Dir: dir})
	syncIndex(t, ix)
	if _, err := ix.Delivery(t.Context(), tenant, before.want.ID); !errors.Is(err, deliverylog.ErrNotFound) {
		t.Errorf("Delivery(%s) from the old stream = %v, want ErrNotFound", before.want.ID, err)
	}
	got, err := ix.Delivery(t.Context(), tenant, after.want.ID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(after.want, got); diff != "" {
		t.Errorf("Delivery(%s) (-want +got):\n%s", after.want.ID, diff)
	}
}

// TestIndexStartsAtFirstRetained: messages the index had not applied
// expired while it was closed; it starts at the first one left.
func TestIndexStartsAtFirstRetained(t *testing.T) {
	t.Parallel()
	s := startStack(t, natstest.Options{})
	w := s.writer(t, deliverylog.WriterConfig{})
	dir := t.TempDir()
	tenant, sub := newTenant(), newSub()
	ix, err := deliverylog.OpenIndex(t.Context(), s.js, deliverylog.IndexConfig{Dir: dir}, nil)
	if err != nil {
		t.Fatal(err)
	}
	first := makeDelivery(tenant, sub, "evt_1", 1, time.Now(), succeeded)
	appendAll(t, w, first.recs)
	syncIndex(t, ix)
	if err := ix.Close(t.Context()); err != nil {
		t.Fatal(err)
	}

	var later []history
	for i := range 3 {
		h := makeDelivery(tenant, sub, fmt.Sprint("evt_", i+2), 1, time.Now(), succeeded)
		appendAll(t, w, h.recs) // one message each
		later = append(later, h)
	}
	st, err := s.js.Stream(t.Context(), deliverylog.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	// Drop all but the last message, as MaxAge would.
	if err := st.Purge(t.Context(), jetstream.WithPurgeSequence(info.State.LastSeq)); err != nil {
		t.Fatal(err)
	}

	ix = s.index(t, deliverylog.IndexConfig{Dir: dir})
	syncIndex(t, ix)
	if got := ix.Applied(); got != info.State.LastSeq {
		t.Errorf("Applied() = %d, want %d", got, info.State.LastSeq)
	}
	if got := ix.MessagesApplied(); got != 1 {
		t.Errorf("MessagesApplied() = %d, want the 1 message left", got)
	}
	for _, h := range []history{first, later[2]} {
		if _, err := ix.Delivery(t.Context(), tenant, h.want.ID); err != nil {
			t.Errorf("Delivery(%s) = %v", h.want.ID, err)
		}
	}
	if _, err := ix.Delivery(t.Context(), tenant, later[0].want.ID); !errors.Is(err, deliverylog.ErrNotFound) {
		t.Errorf("Delivery(%s) of a purged message = %v, want ErrNotFound", later[0].want.ID, err)
	}
}
