package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/onestack/webhooks/problem"
)

// Failures limits the failed authentications of a source address, so that
// trying keys or admin tokens is refused cheaply once an address has
// failed too often. Implementations must be safe for concurrent use.
type Failures interface {
	// Blocked reports whether remoteAddr's address may not try again now,
	// and if so the seconds until it may and its limit a minute.
	Blocked(remoteAddr string) (retryAfter, limit int, blocked bool)
	// Fail counts one failed authentication of remoteAddr's address.
	Fail(remoteAddr string)
}

// Reasons of webhooks_auth_refused_total.
const (
	refusedNoCredentials   = "no_credentials"    // no bearer token: 401
	refusedBadCredentials  = "bad_credentials"   // a key or admin token refused: 401
	refusedTooManyFailures = "too_many_failures" // the address failed too often: 429
)

// newRefused counts refused authentications by reason, and the unknown
// keys refused from memory, on reg.
func newRefused(cfg Config) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "webhooks_auth_refused_total", Help: "Requests refused before a tenant or the operator was known, by reason: no_credentials and bad_credentials (401), too_many_failures (429: the source address had too many 401s this minute).",
	}, []string{"reason"})
	for _, r := range []string{refusedNoCredentials, refusedBadCredentials, refusedTooManyFailures} {
		c.WithLabelValues(r)
	}
	cfg.Registry.MustRegister(c)
	if cfg.Store != nil {
		cfg.Registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "webhooks_auth_unknown_keys_cached_total", Help: "Unknown API keys refused from memory, without a read of the keys bucket, because the same id was not found there within the last few seconds.",
		}, func() float64 { n, _ := cfg.Store.UnknownKeys(); return float64(n) }))
	}
	return c
}

// tooManyFailures is the 429 of an address that failed too often, or nil:
// the body of spec/rate-limits.md, with the address's limit.
func (a *API) tooManyFailures(r *http.Request) *Error {
	if a.cfg.Failures == nil {
		return nil
	}
	retry, limit, blocked := a.cfg.Failures.Blocked(r.RemoteAddr)
	if !blocked {
		return nil
	}
	a.refused.WithLabelValues(refusedTooManyFailures).Inc()
	// The budget in force is the address's: the rate-limit headers say
	// so, spent, and when it comes back.
	l, ra := strconv.Itoa(limit), strconv.Itoa(retry)
	h := http.Header{
		"X-Ratelimit-Limit":     {l},
		"X-Ratelimit-Remaining": {"0"},
		"X-Ratelimit-Reset":     {strconv.FormatInt(a.cfg.Now().Add(time.Duration(retry)*time.Second).Unix(), 10)},
		"Ratelimit-Policy":      {`"address";q=` + l + `;w=60`},
		"Ratelimit":             {`"address";r=0;t=` + ra},
	}
	e := answer(&problem.RateLimitedError{Limit: limit, RetryAfter: retry})
	e.header = h
	return e
}

// failed counts a failed authentication of r's address and returns e, or
// the 429 when the address is already past its limit.
func (a *API) failed(r *http.Request, reason string, e *Error) *Error {
	if tooMany := a.tooManyFailures(r); tooMany != nil {
		return tooMany
	}
	a.refused.WithLabelValues(reason).Inc()
	if a.cfg.Failures != nil {
		a.cfg.Failures.Fail(r.RemoteAddr)
	}
	return e
}
