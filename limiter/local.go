package limiter

import (
	"context"
	"sync"
)

// Local counts in memory, for one replica. It keeps one counter per
// tenant: the latest window's; an older window's counter is dropped when a
// newer window starts, so memory is bounded by the number of tenants.
type Local struct {
	mu       sync.Mutex
	counters map[string]*counter
	adds     int
}

// sweepEvery is how many Adds pass between sweeps of idle tenants.
const sweepEvery = 8192

type counter struct {
	window int64
	n      int64
}

// NewLocal returns an empty in-memory store.
func NewLocal() *Local { return &Local{counters: make(map[string]*counter)} }

// Add implements Store. Adding to a window older than the tenant's latest
// one changes nothing and reports 0: that window is over.
func (s *Local) Add(_ context.Context, tenant string, window, delta int64) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.adds++; s.adds%sweepEvery == 0 {
		s.sweep(window)
	}
	c := s.counters[tenant]
	switch {
	case c == nil:
		c = &counter{window: window}
		s.counters[tenant] = c
	case window > c.window:
		c.window, c.n = window, 0
	case window < c.window:
		return 0, nil
	}
	c.n += delta
	return c.n, nil
}

// sweep drops counters of windows that ended: tenants' windows are offset
// by under a minute, so any tenant's current window is at least window-1.
// It bounds memory to the tenants active in the last two minutes. Callers
// hold mu.
func (s *Local) sweep(window int64) {
	for t, c := range s.counters {
		if c.window < window-1 {
			delete(s.counters, t)
		}
	}
}

// Len is the number of counters held.
func (s *Local) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.counters)
}
