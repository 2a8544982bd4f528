package limiter

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/onestack/webhooks/limits"
	"github.com/onestack/webhooks/problem"
)

// HTTP applies a Limiter to API requests: it writes X-RateLimit-Limit,
// X-RateLimit-Remaining and X-RateLimit-Reset on every answer (and the IETF
// draft's RateLimit-Policy and RateLimit), refuses past the budget with a
// *problem.RateLimitedError (the API answers it 429), and gives the unit
// back for 304s, so neither 304s nor 429s count; a 304 to If-None-Match: *
// counts (see free).
type HTTP struct {
	l       *Limiter
	logger  *slog.Logger
	refused prometheus.Counter
	notices Notices
}

// Notices hears of a tenant's use of its budget (limits.RequestsPerMinute),
// for the operational events limit.near and limit.exceeded. Its methods
// are called on the request's path and must not block.
type Notices interface {
	LimitNear(tenant, limit string, max, used int64)
	LimitExceeded(tenant, limit string, max, used int64)
}

// Notify makes n hear of every decision: the requests counted in the
// window, and each refusal. Call it before serving.
func (h *HTTP) Notify(n Notices) { h.notices = n }

// NewHTTP wraps l; refusals are counted on reg, all tenants together (a
// label per tenant would make one series per tenant), and logged with
// their tenant at debug level.
func NewHTTP(l *Limiter, reg prometheus.Registerer, logger *slog.Logger) *HTTP {
	h := &HTTP{l: l, logger: logger, refused: prometheus.NewCounter(prometheus.CounterOpts{
		Name: "webhooks_api_rate_limited_total", Help: "API requests answered 429 (the tenant of each is in the debug log).",
	})}
	if reg != nil {
		reg.MustRegister(h.refused)
	}
	return h
}

// Admit takes one unit for the request; see api.Limiter. A refusal sets
// the rate-limit headers on w and is a *problem.RateLimitedError, which
// the API answers.
func (h *HTTP) Admit(w http.ResponseWriter, r *http.Request, tenant string, limit int) (http.ResponseWriter, func(), error) {
	d, err := h.l.Take(r.Context(), tenant, limit)
	if err != nil {
		// Stores fall back rather than fail; an error here means the
		// request's own context ended. Let it through uncounted.
		h.logger.Warn("rate limiter: no decision", "tenant", tenant, "err", err)
		return w, func() {}, nil
	}
	if h.notices != nil {
		if d.Allowed {
			h.notices.LimitNear(tenant, limits.RequestsPerMinute, int64(d.Limit), int64(d.Limit-d.Remaining))
		} else {
			h.notices.LimitExceeded(tenant, limits.RequestsPerMinute, int64(d.Limit), int64(d.Limit))
		}
	}
	if !d.Allowed {
		h.refused.Inc()
		h.logger.Debug("rate limited", "tenant", tenant, "limit", d.Limit, "retry_after", d.RetryAfter)
		writeHeaders(w.Header(), d, 0)
		return nil, nil, &problem.RateLimitedError{Limit: d.Limit, RetryAfter: d.RetryAfter}
	}
	hw := &headerWriter{ResponseWriter: w, d: d, wildcard: wildcard(r.Header.Get("If-None-Match")), h: h, r: r}
	return hw, hw.done, nil
}

// free reports whether an answer gives its unit back: a 304 Not Modified,
// as the contract says, unless it answered If-None-Match: *. A client
// earns a free 304 by holding the current ETag, a copy it paid for; "*"
// matches any representation, so a client that never read one would
// otherwise poll for free, however often, each time costing a lookup.
// Such a 304 is answered and counted.
func free(status int, wildcard bool) bool {
	return status == http.StatusNotModified && !wildcard
}

// wildcard reports whether an If-None-Match header holds "*".
func wildcard(ifNoneMatch string) bool {
	for t := range strings.SplitSeq(ifNoneMatch, ",") {
		if strings.TrimSpace(t) == "*" {
			return true
		}
	}
	return false
}

// writeHeaders sets the rate-limit headers for a decision whose remaining
// budget is d.Remaining+refund.
// The keys are written in canonical form directly, which saves the
// canonicalization of Header.Set on every API request.
func writeHeaders(h http.Header, d Decision, refund int) {
	// The five values are cut from one string, in one backing array: two
	// allocations, not eight.
	var buf [160]byte
	b := strconv.AppendInt(buf[:0], int64(d.Limit), 10)
	limitEnd := len(b)
	b = strconv.AppendInt(b, int64(d.Remaining+refund), 10)
	remainingEnd := len(b)
	b = strconv.AppendInt(b, d.Reset.Unix(), 10)
	resetEnd := len(b)
	b = append(b, `"tenant";q=`...)
	b = append(b, b[:limitEnd]...)
	b = append(b, `;w=60`...)
	policyEnd := len(b)
	b = append(b, `"tenant";r=`...)
	b = append(b, b[limitEnd:remainingEnd]...)
	b = append(b, `;t=`...)
	b = strconv.AppendInt(b, int64(d.RetryAfter), 10)
	all := string(b)
	v := &[5]string{
		all[:limitEnd],
		all[limitEnd:remainingEnd],
		all[remainingEnd:resetEnd],
		all[resetEnd:policyEnd],
		all[policyEnd:],
	}
	h["X-Ratelimit-Limit"] = v[0:1:1]
	h["X-Ratelimit-Remaining"] = v[1:2:2]
	h["X-Ratelimit-Reset"] = v[2:3:3]
	h["Ratelimit-Policy"] = v[3:4:4]
	h["Ratelimit"] = v[4:5:5]
}

// headerWriter adds the headers when the handler writes its status: a 304
// is answered as not counted, since done refunds it.
type headerWriter struct {
	http.ResponseWriter
	d      Decision
	status int
	// wildcard is set when the request's If-None-Match holds "*".
	wildcard bool
	// h refunds r's unit when its answer is free.
	h *HTTP
	r *http.Request
}

// RequestsCounted is how many of the tenant's requests its window has
// counted so far, this one included, across every replica.
func (w *headerWriter) RequestsCounted() int { return w.d.Limit - w.d.Remaining }

// done is Admit's: it gives the unit back when the answer was free.
func (w *headerWriter) done() {
	if free(w.status, w.wildcard) {
		if err := w.h.l.Refund(context.WithoutCancel(w.r.Context()), w.d); err != nil {
			w.h.logger.Warn("rate limiter: refund", "tenant", w.d.tenant, "err", err)
		}
	}
}

func (w *headerWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
		refund := 0
		if free(code, w.wildcard) {
			refund = 1
		}
		writeHeaders(w.ResponseWriter.Header(), w.d, refund)
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *headerWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

func (w *headerWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
