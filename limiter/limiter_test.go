package limiter

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// windowStart returns the start of tenant's window that contains t.
func windowStart(tenant string, t time.Time) time.Time {
	_, end := windowOf(tenant, t)
	return end.Add(-Window)
}

type fakeClock struct{ t atomic.Int64 }

func (c *fakeClock) now() time.Time      { return time.Unix(0, c.t.Load()) }
func (c *fakeClock) set(t time.Time)     { c.t.Store(t.UnixNano()) }
func (c *fakeClock) add(d time.Duration) { c.t.Add(int64(d)) }

func TestSequence(t *testing.T) {
	ctx := context.Background()
	var clk fakeClock
	start := windowStart("ten_a", time.Date(2026, 11, 26, 10, 0, 30, 0, time.UTC)).Add(Window)
	clk.set(start)
	l := New(NewLocal(), clk.now)
	var reset time.Time
	for i := range 100 {
		d, err := l.Take(ctx, "ten_a", 100)
		if err != nil || !d.Allowed {
			t.Fatalf("Take #%d = %+v, %v; want allowed", i+1, d, err)
		}
		if want := 99 - i; d.Remaining != want {
			t.Errorf("Take #%d Remaining = %d, want %d", i+1, d.Remaining, want)
		}
		if i == 0 {
			reset = d.Reset
		} else if !d.Reset.Equal(reset) {
			t.Errorf("Take #%d Reset = %v, want %v (constant within a window)", i+1, d.Reset, reset)
		}
	}
	if !reset.Equal(start.Add(Window)) {
		t.Errorf("Reset = %v, want the window end %v", reset, start.Add(Window))
	}
	tests := []struct {
		at   time.Duration
		want int
	}{
		{37 * time.Second, 23},
		{59*time.Second + 200*time.Millisecond, 1},
		{59*time.Second + 999*time.Millisecond, 1},
		{0, 60},
	}
	for _, tt := range tests {
		clk.set(start.Add(tt.at))
		l.last.Store(0) // this table steps the clock freely
		d, err := l.Take(ctx, "ten_a", 100)
		if err != nil || d.Allowed {
			t.Fatalf("Take at %v = %+v, %v; want refused", tt.at, d, err)
		}
		if d.RetryAfter != tt.want {
			t.Errorf("RetryAfter at %v = %d, want %d", tt.at, d.RetryAfter, tt.want)
		}
	}
}

func TestBoundary(t *testing.T) {
	ctx := context.Background()
	var clk fakeClock
	start := windowStart("ten_b", time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC))
	l := New(NewLocal(), clk.now)
	for _, at := range []time.Time{start.Add(Window - time.Millisecond), start.Add(Window)} {
		clk.set(at)
		for i := range 100 {
			if d, _ := l.Take(ctx, "ten_b", 100); !d.Allowed {
				t.Fatalf("Take #%d at %v refused", i+1, at)
			}
		}
		if d, _ := l.Take(ctx, "ten_b", 100); d.Allowed {
			t.Errorf("Take #101 at %v allowed", at)
		}
	}
}

func TestRefundLandsInItsWindow(t *testing.T) {
	ctx := context.Background()
	var clk fakeClock
	start := windowStart("ten_c", time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC))
	clk.set(start.Add(Window - time.Second))
	l := New(NewLocal(), clk.now)
	old, _ := l.Take(ctx, "ten_c", 100)
	clk.add(2 * time.Second)
	for range 100 {
		if d, _ := l.Take(ctx, "ten_c", 100); !d.Allowed {
			t.Fatal("new window refused early")
		}
	}
	if err := l.Refund(ctx, old); err != nil {
		t.Fatal(err)
	}
	if d, _ := l.Take(ctx, "ten_c", 100); d.Allowed {
		t.Error("a refund from the old window opened the new window's budget")
	}
}

func TestClockSteppedBack(t *testing.T) {
	ctx := context.Background()
	var clk fakeClock
	start := windowStart("ten_d", time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)).Add(Window)
	clk.set(start.Add(5 * time.Second))
	l := New(NewLocal(), clk.now)
	for range 100 {
		l.Take(ctx, "ten_d", 100)
	}
	clk.set(start.Add(-30 * time.Second)) // back into the previous window
	if d, _ := l.Take(ctx, "ten_d", 100); d.Allowed {
		t.Error("a clock stepped back reopened a full window")
	}
}

func TestTenantsAreIndependent(t *testing.T) {
	ctx := context.Background()
	l := New(NewLocal(), fixed(time.Now()))
	for range 100 {
		l.Take(ctx, "ten_x", 100)
	}
	if d, _ := l.Take(ctx, "ten_x", 100); d.Allowed {
		t.Error("ten_x: 101st allowed")
	}
	if d, _ := l.Take(ctx, "ten_y", 100); !d.Allowed || d.Remaining != 99 {
		t.Errorf("ten_y = %+v, want allowed with 99 left", d)
	}
}

func TestMemoryBounded(t *testing.T) {
	ctx := context.Background()
	var clk fakeClock
	clk.set(time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC))
	s := NewLocal()
	l := New(s, clk.now)
	for round := range 3 {
		for i := range 10_000 {
			l.Take(ctx, "ten_"+string(rune('a'+round))+strconv.Itoa(i), 100)
		}
		clk.add(3 * Window)
	}
	if n := s.Len(); n > 20_000 {
		t.Errorf("Local holds %d counters after 30,000 tenants over 9 minutes, want at most 20,000", n)
	}
}

// admitConcurrently runs n takes at once over the limiters and returns how
// many were allowed.
func admitConcurrently(t *testing.T, ls []*Limiter, tenant string, n, limit int) int {
	t.Helper()
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			d, err := ls[i%len(ls)].Take(context.Background(), tenant, limit)
			if err != nil {
				t.Error(err)
			}
			if d.Allowed {
				allowed.Add(1)
			}
		})
	}
	wg.Wait()
	return int(allowed.Load())
}

// fixed returns a clock held at t.
func fixed(t time.Time) func() time.Time { return func() time.Time { return t } }

func TestConcurrentLocal(t *testing.T) {
	t.Parallel()
	l := New(NewLocal(), fixed(time.Now()))
	for round := range 5 {
		tenant := "ten_conc" + strconv.Itoa(round)
		if got := admitConcurrently(t, []*Limiter{l}, tenant, 1000, 100); got != 100 {
			t.Errorf("round %d: %d of 1000 concurrent takes allowed, want 100", round, got)
		}
	}
}
