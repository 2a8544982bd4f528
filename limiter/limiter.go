// Package limiter enforces the platform's per-tenant rate limit: fixed
// one-minute windows, offset per tenant so resets spread over the minute,
// counted in a local store or in a JetStream counter stream shared by every
// replica. The HTTP middleware in middleware.go writes the headers and the
// 429 of spec/rate-limits.md.
package limiter

import (
	"context"
	"sync/atomic"
	"time"
)

// Window is the length of a rate-limit window.
const Window = time.Minute

// Store counts units per tenant and window. Add adds delta to the counter
// of (tenant, window) and returns the new value. Implementations must be
// exact under concurrency: each Add sees the sum of all Adds before it.
type Store interface {
	Add(ctx context.Context, tenant string, window int64, delta int64) (int64, error)
}

// Decision is the outcome of taking one unit.
type Decision struct {
	Allowed   bool
	Limit     int
	Remaining int
	// Reset is when the tenant's current window ends.
	Reset time.Time
	// RetryAfter is max(1, ceil(Reset - now)) in seconds.
	RetryAfter int
	tenant     string
	window     int64
}

// Limiter decides on requests. It is safe for concurrent use.
type Limiter struct {
	store Store
	now   func() time.Time
	// last is the latest time seen, in Unix nanoseconds: the clock never
	// goes back.
	last atomic.Int64
}

// New returns a limiter counting in store; now nil means time.Now.
func New(store Store, now func() time.Time) *Limiter {
	if now == nil {
		now = time.Now
	}
	return &Limiter{store: store, now: now}
}

// offset spreads tenants' windows over the minute.
// It is FNV-1a of the tenant id, inlined to avoid allocating.
func offset(tenant string) time.Duration {
	h := uint32(2166136261)
	for i := 0; i < len(tenant); i++ {
		h ^= uint32(tenant[i])
		h *= 16777619
	}
	return time.Duration(h%60) * time.Second
}

// windowOf returns the index of the tenant's window at t and its end.
func windowOf(tenant string, t time.Time) (int64, time.Time) {
	off := offset(tenant)
	idx := t.Add(-off).UnixNano() / int64(Window)
	end := time.Unix(0, (idx+1)*int64(Window)).Add(off)
	return idx, end
}

// clock returns now, never earlier than a time already used, so a clock
// stepped back cannot reopen an earlier window's budget.
func (l *Limiter) clock() time.Time {
	t := l.now().UnixNano()
	for {
		last := l.last.Load()
		if t <= last {
			return time.Unix(0, last)
		}
		if l.last.CompareAndSwap(last, t) {
			return time.Unix(0, t)
		}
	}
}

// Take takes one unit of tenant's budget of limit per window. A refused
// request's unit is given back at once, so it does not count.
func (l *Limiter) Take(ctx context.Context, tenant string, limit int) (Decision, error) {
	return l.take(ctx, tenant, limit, l.clock())
}

func (l *Limiter) take(ctx context.Context, tenant string, limit int, now time.Time) (Decision, error) {
	idx, end := windowOf(tenant, now)
	d := Decision{Limit: limit, Reset: end, RetryAfter: retryAfter(end, now), tenant: tenant, window: idx}
	n, err := l.store.Add(ctx, tenant, idx, 1)
	if err != nil {
		return d, err
	}
	if n > int64(limit) {
		if _, err := l.store.Add(ctx, tenant, idx, -1); err != nil {
			return d, err
		}
		return d, nil
	}
	d.Allowed = true
	d.Remaining = limit - int(n)
	return d, nil
}

// Refund gives back the unit of an allowed decision, in the window it was
// taken in (a refund after that window ended changes nothing current).
func (l *Limiter) Refund(ctx context.Context, d Decision) error {
	if !d.Allowed {
		return nil
	}
	_, err := l.store.Add(ctx, d.tenant, d.window, -1)
	return err
}

func retryAfter(end, now time.Time) int {
	secs := int((end.Sub(now) + time.Second - 1) / time.Second)
	return max(1, secs)
}
