// Package destination tracks each place webhooks go to (scheme, host and
// port) apart from the subscriptions that point there, so an endpoint that
// hangs costs a bounded number of sockets and attempts whoever sends to it:
//
//   - Its attempts in flight are capped by an adaptive limit, shared by
//     every subscription to it: it starts small, grows by one with each
//     answer (doubling per round trip until the first trouble, then by
//     one per round trip), and halves on a timeout, a connection failure
//     or an answer of 429 or 503, at most once per round trip, as TCP's
//     congestion control does.
//   - After OpenAfter failures in a row (timeouts and connection failures,
//     not HTTP errors: an endpoint that answers is up) its breaker opens:
//     one probe attempt at a time, at most every ProbeEvery, goes through
//     and the others are shed (not sent: the caller records them failed
//     and schedules them again as any failure). An answer closes it.
//
// A Tracker is pure bookkeeping: it makes no I/O and takes its clock from
// Config, so its rules are tested as tables of steps.
package destination

import (
	"net"
	"net/url"
	"sync"
	"time"
)

// DefaultMax is Config.Max's default.
const DefaultMax = 256

// Config tunes a Tracker. The zero value means the defaults.
type Config struct {
	// Initial is the limit of a destination not seen before (default 8).
	Initial int
	// Max caps one destination's attempts in flight, for all its
	// subscriptions together (default 256).
	Max int
	// OpenAfter is how many failures in a row open the breaker (default 5).
	OpenAfter int
	// ProbeEvery is the least time between two probes of a destination
	// whose breaker is open (default 5 s).
	ProbeEvery time.Duration
	// IdleAfter is how long a destination with nothing in flight and a
	// closed breaker is remembered (default 10 minutes).
	IdleAfter time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

func (c Config) withDefaults() Config {
	if c.Initial <= 0 {
		c.Initial = 8
	}
	if c.Max <= 0 {
		c.Max = DefaultMax
	}
	c.Initial = min(c.Initial, c.Max)
	if c.OpenAfter <= 0 {
		c.OpenAfter = 5
	}
	if c.ProbeEvery <= 0 {
		c.ProbeEvery = 5 * time.Second
	}
	if c.IdleAfter <= 0 {
		c.IdleAfter = 10 * time.Minute
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Outcome is what an attempt says of its destination.
type Outcome int

const (
	// Unknown: the attempt says nothing of the destination (cut short by a
	// shutdown, refused before dialling, not made).
	Unknown Outcome = iota
	// Answered: the destination answered (any status but 429 and 503).
	Answered
	// Overloaded: it answered 429 or 503; the limit shrinks, the breaker
	// does not count it.
	Overloaded
	// Failed: a timeout or a connection failure (refused, reset, TLS, DNS).
	Failed
)

// Verdict is whether an attempt may start.
type Verdict int

const (
	// Go: start it; it counts in flight until Done.
	Go Verdict = iota
	// Wait: the destination is at its limit; try again after a Done.
	Wait
	// Shed: the breaker is open and a probe is out or not due: do not
	// send it.
	Shed
)

// State is a destination's bookkeeping as seen from outside.
type State struct {
	InFlight int
	Limit    int
	Open     bool
	// Failures is how many failures in a row it has had.
	Failures int
}

type dest struct {
	inflight int
	limit    float64
	// threshold: below it the limit doubles per round trip, above it it
	// grows by one.
	threshold float64
	failures  int
	open      bool
	lastProbe time.Time
	// decreased is when the limit last shrank: an attempt started before
	// it shrinks it no further (one cut per round trip).
	decreased time.Time
	idleSince time.Time
}

// Tracker holds every destination's state. It is safe for concurrent use.
type Tracker struct {
	cfg   Config
	mu    sync.Mutex
	dests map[string]*dest
	ops   int
}

// New returns a Tracker that knows no destination yet.
func New(cfg Config) *Tracker {
	return &Tracker{cfg: cfg.withDefaults(), dests: make(map[string]*dest)}
}

// Key names the destination of u: its scheme, host and port, the default
// port written out ("https://example.com:443").
func Key(u *url.URL) string {
	port := u.Port()
	if port == "" {
		switch u.Scheme {
		case "https":
			port = "443"
		case "http":
			port = "80"
		}
	}
	return u.Scheme + "://" + net.JoinHostPort(u.Hostname(), port)
}

func (t *Tracker) get(key string) *dest {
	d := t.dests[key]
	if d == nil {
		d = &dest{limit: float64(t.cfg.Initial), threshold: float64(t.cfg.Max)}
		t.dests[key] = d
	}
	return d
}

// Start asks whether an attempt to key may start now; on Go it counts in
// flight until Done.
func (t *Tracker) Start(key string) Verdict {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.cfg.Now()
	t.sweep(now)
	d := t.get(key)
	if d.open {
		if d.inflight > 0 || now.Sub(d.lastProbe) < t.cfg.ProbeEvery {
			return Shed
		}
		d.lastProbe = now
		d.inflight++
		return Go
	}
	if d.inflight >= int(d.limit) {
		return Wait
	}
	d.inflight++
	return Go
}

// Done ends an attempt to key that Start let go at started, with what it
// said of the destination. It reports whether the destination may now
// take more than before (a Wait may be tried again).
func (t *Tracker) Done(key string, started time.Time, o Outcome) (freed bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.cfg.Now()
	d := t.get(key)
	d.inflight = max(0, d.inflight-1)
	if d.inflight == 0 {
		d.idleSince = now
	}
	switch o {
	case Answered:
		d.failures, d.open = 0, false
		if d.limit < d.threshold {
			d.limit++
		} else {
			d.limit += 1 / d.limit
		}
		d.limit = min(d.limit, float64(t.cfg.Max))
	case Overloaded:
		// It answered: up, if asking for less.
		d.failures, d.open = 0, false
		t.decrease(d, started, now)
	case Failed:
		d.failures++
		if d.failures >= t.cfg.OpenAfter {
			if !d.open {
				d.lastProbe = now
			}
			d.open = true
		}
		t.decrease(d, started, now)
	}
	return !d.open && d.inflight < int(d.limit)
}

// decrease halves d's limit, once per round trip: an attempt that started
// before the last cut does not cut again.
func (t *Tracker) decrease(d *dest, started, now time.Time) {
	if !d.decreased.IsZero() && !started.After(d.decreased) {
		return
	}
	d.limit = max(1, d.limit/2)
	d.threshold = d.limit
	d.decreased = now
}

// State returns key's bookkeeping (a destination not seen yet: its
// initial state).
func (t *Tracker) State(key string) State {
	t.mu.Lock()
	defer t.mu.Unlock()
	d, ok := t.dests[key]
	if !ok {
		return State{Limit: t.cfg.Initial}
	}
	return State{InFlight: d.inflight, Limit: int(d.limit), Open: d.open, Failures: d.failures}
}

// Open counts the destinations whose breaker is open.
func (t *Tracker) Open() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, d := range t.dests {
		if d.open {
			n++
		}
	}
	return n
}

// sweep forgets, now and then, destinations idle past IdleAfter with a
// closed breaker: a new one starts afresh. Callers hold mu.
func (t *Tracker) sweep(now time.Time) {
	t.ops++
	if t.ops%1024 != 0 {
		return
	}
	for k, d := range t.dests {
		if d.inflight == 0 && !d.open && now.Sub(d.idleSince) > t.cfg.IdleAfter {
			delete(t.dests, k)
		}
	}
}
