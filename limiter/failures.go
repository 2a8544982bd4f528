package limiter

import (
	"net"
	"net/netip"
	"sync"
	"time"
)

// FailuresConfig bounds the failed authentications of one source address.
// The zero value means the defaults.
type FailuresConfig struct {
	// Limit is how many failures an address may have in a window before
	// its unauthenticated requests are refused 429 (default 30).
	Limit int
	// MaxAddresses bounds the addresses counted (default 10,000, about a
	// megabyte); past it, new addresses share one count.
	MaxAddresses int
	// Now is the clock (default time.Now).
	Now func() time.Time
}

func (c FailuresConfig) withDefaults() FailuresConfig {
	if c.Limit <= 0 {
		c.Limit = 30
	}
	if c.MaxAddresses <= 0 {
		c.MaxAddresses = 10000
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Failures counts failed authentications (401s) per source address, in
// memory, for this replica, in windows of a minute (Window) from an
// address's first failure. An address with Limit failures in a window is
// blocked until the window ends: its requests that need more than the
// in-memory index to authenticate are refused 429 without a lookup. It is
// safe for concurrent use.
type Failures struct {
	cfg   FailuresConfig
	mu    sync.Mutex
	addrs map[string]*failures
	swept time.Time
}

type failures struct {
	start time.Time
	n     int
}

// overflow is the key new addresses share while the table is full.
const overflow = "overflow"

// NewFailures returns an empty count.
func NewFailures(cfg FailuresConfig) *Failures {
	return &Failures{cfg: cfg.withDefaults(), addrs: make(map[string]*failures)}
}

// Blocked reports whether the address of remoteAddr (an http.Request's
// RemoteAddr) has had Limit failures in its window, and if so the seconds
// until it ends and the limit.
func (f *Failures) Blocked(remoteAddr string) (retryAfter, limit int, blocked bool) {
	return f.blocked(source(remoteAddr), f.cfg.Now())
}

func (f *Failures) blocked(src string, now time.Time) (int, int, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.addrs[src]
	if c == nil && len(f.addrs) >= f.cfg.MaxAddresses {
		c = f.addrs[overflow]
	}
	if c == nil || c.n < f.cfg.Limit {
		return 0, f.cfg.Limit, false
	}
	end := c.start.Add(Window)
	if !now.Before(end) {
		return 0, f.cfg.Limit, false
	}
	return retryAfter(end, now), f.cfg.Limit, true
}

// Fail counts one failed authentication of remoteAddr's address.
func (f *Failures) Fail(remoteAddr string) { f.fail(source(remoteAddr), f.cfg.Now()) }

func (f *Failures) fail(src string, now time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.addrs[src]
	if c == nil && len(f.addrs) >= f.cfg.MaxAddresses {
		f.sweep(now)
		if len(f.addrs) >= f.cfg.MaxAddresses {
			src = overflow
			c = f.addrs[src]
		}
	}
	switch {
	case c == nil:
		f.addrs[src] = &failures{start: now, n: 1}
	case !now.Before(c.start.Add(Window)):
		c.start, c.n = now, 1
	default:
		c.n++
	}
}

// sweep drops the counts whose window ended, at most ten times a window.
// Callers hold mu.
func (f *Failures) sweep(now time.Time) {
	if now.Sub(f.swept) < Window/10 {
		return
	}
	f.swept = now
	for k, c := range f.addrs {
		if !now.Before(c.start.Add(Window)) {
			delete(f.addrs, k)
		}
	}
}

// Len is the number of addresses counted.
func (f *Failures) Len() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.addrs)
}

// source is the address a request's failures are counted under: its IPv4
// address, or its IPv6 /64 (one host is given a whole /64). There is no
// notion of a trusted proxy, so X-Forwarded-For is not read: behind a
// proxy every client shares the proxy's count.
func source(remoteAddr string) string {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	ip = ip.Unmap()
	if ip.Is6() {
		p, _ := ip.WithZone("").Prefix(64)
		return p.String()
	}
	return ip.String()
}
