package limiter

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
)

// gatedStore is an exact counter whose Adds wait for the test to release
// them, one at a time, and records the deltas each was called with.
type gatedStore struct {
	local   *Local
	release chan struct{}
	mu      sync.Mutex
	calls   []int64
	err     error
}

func newGatedStore() *gatedStore {
	return &gatedStore{local: NewLocal(), release: make(chan struct{})}
}

func (g *gatedStore) add(ctx context.Context, tenant string, window, delta int64) (int64, error) {
	<-g.release
	g.mu.Lock()
	g.calls = append(g.calls, delta)
	err := g.err
	g.mu.Unlock()
	if err != nil {
		return 0, err
	}
	return g.local.Add(ctx, tenant, window, delta)
}

// TestCoalescerSumsAddsWhileOneIsInFlight: Adds that arrive while one is
// in flight go out as one call; each gets the counter's value just after
// its own delta, so the values are those of Adds made one by one.
func TestCoalescerSumsAddsWhileOneIsInFlight(t *testing.T) {
	tests := []struct {
		name      string
		first     int64
		joining   []int64
		wantCalls []int64
		// wantValues is what the joining Adds return, in the order they
		// joined.
		wantValues []int64
	}{
		{"five takes behind one", 1, []int64{1, 1, 1, 1, 1}, []int64{1, 5}, []int64{2, 3, 4, 5, 6}},
		{"a take given back among takes", 1, []int64{1, -1, 1}, []int64{1, 1}, []int64{2, 1, 2}},
		{"one behind one", 1, []int64{1}, []int64{1, 1}, []int64{2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				g := newGatedStore()
				c := newCoalescer(g.add, 1)
				ctx := context.Background()
				var first int64
				go func() { first, _ = c.Add(ctx, "ten_a", 7, tt.first) }()
				synctest.Wait() // the first Add is in flight
				got := make([]int64, len(tt.joining))
				for i, d := range tt.joining {
					go func() { got[i], _ = c.Add(ctx, "ten_a", 7, d) }()
					synctest.Wait() // joined, in this order
				}
				g.release <- struct{}{}
				synctest.Wait()
				g.release <- struct{}{}
				synctest.Wait()
				if first != tt.first {
					t.Errorf("first Add = %d, want %d", first, tt.first)
				}
				if diff := cmp.Diff(tt.wantCalls, g.calls); diff != "" {
					t.Errorf("calls of add (-want +got):\n%s", diff)
				}
				if diff := cmp.Diff(tt.wantValues, got); diff != "" {
					t.Errorf("joining Adds' values (-want +got):\n%s", diff)
				}
				if len(c.counters) != 0 {
					t.Errorf("counters left after every Add answered: %d, want 0", len(c.counters))
				}
			})
		})
	}
}

// TestCoalescerKeepsCountersApart: Adds to another tenant's counter (or
// another window's) are not held behind a call in flight for one counter.
func TestCoalescerKeepsCountersApart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newGatedStore()
		c := newCoalescer(g.add, 1)
		ctx := context.Background()
		var a, b, w int64
		// In flight at once, each alone in its call.
		go func() { a, _ = c.Add(ctx, "ten_a", 7, 1) }()
		go func() { b, _ = c.Add(ctx, "ten_b", 7, 1) }()
		go func() { w, _ = c.Add(ctx, "ten_c", 8, 1) }()
		synctest.Wait()
		if len(c.counters) != 3 {
			t.Errorf("counters in flight = %d, want 3", len(c.counters))
		}
		for range 3 {
			g.release <- struct{}{}
		}
		synctest.Wait()
		if a != 1 || b != 1 || w != 1 {
			t.Errorf("Adds to three counters = %d, %d, %d; want 1 each", a, b, w)
		}
		if got := slices.Clone(g.calls); len(got) != 3 {
			t.Errorf("calls of add = %v, want 3 of 1", got)
		}
	})
}

// TestCoalescerError: every Add of a call that failed gets its error.
func TestCoalescerError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newGatedStore()
		c := newCoalescer(g.add, 1)
		ctx := context.Background()
		go c.Add(ctx, "ten_a", 7, 1)
		synctest.Wait()
		errs := make([]error, 3)
		for i := range errs {
			go func() { _, errs[i] = c.Add(ctx, "ten_a", 7, 1) }()
		}
		synctest.Wait()
		failing := errors.New("failing")
		g.mu.Lock()
		g.err = failing
		g.mu.Unlock()
		g.release <- struct{}{}
		synctest.Wait()
		g.release <- struct{}{}
		synctest.Wait()
		for i, err := range errs {
			if !errors.Is(err, failing) {
				t.Errorf("Add %d of the failed batch = %v, want %v", i, err, failing)
			}
		}
	})
}

// TestCoalescerExactUnderLoad: many concurrent takes against a limit are
// allowed exactly up to it, through the coalescer.
func TestCoalescerExactUnderLoad(t *testing.T) {
	t.Parallel()
	local := NewLocal()
	c := newCoalescer(local.Add, 4)
	l := New(storeFunc(c.Add), fixed(at))
	var wg sync.WaitGroup
	var mu sync.Mutex
	allowed := 0
	for range 1000 {
		wg.Go(func() {
			d, err := l.Take(context.Background(), "ten_a", 100)
			if err != nil {
				t.Error(err)
			}
			if d.Allowed {
				mu.Lock()
				allowed++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if allowed != 100 {
		t.Errorf("%d of 1000 concurrent takes allowed, want 100", allowed)
	}
	if n, _ := local.Add(context.Background(), "ten_a", mustWindow("ten_a"), 0); n != 100 {
		t.Errorf("count after the takes (refused ones given back) = %d, want 100", n)
	}
}

// at is the instant TestCoalescerExactUnderLoad's limiter reads.
var at = time.Date(2026, 12, 3, 12, 0, 30, 0, time.UTC)

type storeFunc func(ctx context.Context, tenant string, window, delta int64) (int64, error)

func (f storeFunc) Add(ctx context.Context, tenant string, window, delta int64) (int64, error) {
	return f(ctx, tenant, window, delta)
}

func mustWindow(tenant string) int64 {
	idx, _ := windowOf(tenant, at)
	return idx
}

// TestCoalescerSeveralInFlight: up to maxInFlight Adds go out alone; the
// rest wait for one of them and go out together.
func TestCoalescerSeveralInFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newGatedStore()
		c := newCoalescer(g.add, 2)
		ctx := context.Background()
		got := make([]int64, 5)
		for i := range got {
			go func() { got[i], _ = c.Add(ctx, "ten_a", 7, 1) }()
			synctest.Wait()
		}
		for range 3 {
			g.release <- struct{}{}
			synctest.Wait()
		}
		calls := slices.Clone(g.calls)
		slices.Sort(calls)
		if diff := cmp.Diff([]int64{1, 1, 3}, calls); diff != "" {
			t.Errorf("calls of add (-want +got):\n%s", diff)
		}
		slices.Sort(got)
		if diff := cmp.Diff([]int64{1, 2, 3, 4, 5}, got); diff != "" {
			t.Errorf("values of the five Adds (-want +got):\n%s", diff)
		}
		if len(c.counters) != 0 {
			t.Errorf("counters left after every Add answered: %d, want 0", len(c.counters))
		}
	})
}
