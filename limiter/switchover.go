package limiter

import (
	"sync"
	"time"
)

// Hysteresis of the fall back to local counting: NATS is given up once it
// has failed failuresToLocal times with no answer at all for failingFor
// (so a burst of slow answers among good ones does not switch), and used
// again once it has answered steadily (okToShared probes in a row, over at
// least steadyFor). While local, one request in probeEvery tries NATS.
const (
	failuresToLocal = 3
	failingFor      = time.Second
	probeEvery      = 200 * time.Millisecond
	okToShared      = 5
	steadyFor       = 2 * time.Second
)

// switchover decides, from the outcomes of requests to NATS, whether the
// limiter counts in the shared store or locally, so that a flapping
// connection does not switch it back and forth.
type switchover struct {
	mu        sync.Mutex
	local     bool
	fails     int       // failures since the last answer, while shared
	failSince time.Time // the first of them
	oks       int       // probes answered in a row, while local
	okSince   time.Time // the first of them
	lastProbe time.Time
}

// Mode changes reported by result.
const (
	stay = iota
	toLocal
	toShared
)

// tryShared reports whether a request at now goes to NATS: always while
// shared; while local, one probe per probeEvery.
func (s *switchover) tryShared(now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.local {
		return true
	}
	if now.Sub(s.lastProbe) < probeEvery {
		return false
	}
	s.lastProbe = now
	return true
}

// result records whether a request sent to NATS at now was answered, and
// returns the change of mode it causes, if any.
func (s *switchover) result(now time.Time, ok bool) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case !s.local && ok:
		s.fails = 0
	case !s.local:
		if s.fails == 0 {
			s.failSince = now
		}
		s.fails++
		if s.fails >= failuresToLocal && now.Sub(s.failSince) >= failingFor {
			s.local, s.fails, s.oks, s.lastProbe = true, 0, 0, now
			return toLocal
		}
	case ok:
		if s.oks == 0 {
			s.okSince = now
		}
		s.oks++
		if s.oks >= okToShared && now.Sub(s.okSince) >= steadyFor {
			s.local, s.oks = false, 0
			return toShared
		}
	default:
		s.oks = 0
	}
	return stay
}

func (s *switchover) isLocal() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.local
}
