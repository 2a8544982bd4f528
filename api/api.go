// Package api is the REST API of spec/api.md: the operator API, the tenant
// API, health, metrics and the OpenAPI document. It reaches NATS only
// through the subscriptions store and the events publisher.
package api

import (
	"context"
	"crypto/subtle"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/onestack/webhooks/events"
	"github.com/onestack/webhooks/idempotency"
	"github.com/onestack/webhooks/limits"
	"github.com/onestack/webhooks/subscriptions"
	"github.com/onestack/webhooks/tracing"
)

// Limiter guards the tenant API. Admit takes one unit of tenant's budget
// (limit per window) for r. When the budget is spent it sets the
// rate-limit headers on w and returns a *problem.RateLimitedError, which
// the API answers 429. Otherwise it returns the writer the handler must
// use, which adds the rate-limit headers, and a done func to call after
// the handler, which gives the unit back when the answer was not counted.
type Limiter interface {
	Admit(w http.ResponseWriter, r *http.Request, tenant string, limit int) (ww http.ResponseWriter, done func(), err error)
}

// Deliveries is what the API asks of the delivery engine and its attempt
// log. Implementations return errors of package problem (such as
// ErrDeliveryNotFound, ErrEventGone, ErrInvalidCursor, ErrUnavailable),
// wrapped as they like.
type Deliveries interface {
	// SendTest delivers a webhook.test event to one subscription only.
	SendTest(ctx context.Context, sub subscriptions.Subscription) (eventID string, err error)
	// Delivery reads one of tenant's deliveries.
	Delivery(ctx context.Context, tenant, id string) (Delivery, error)
	// Deliveries lists a subscription's deliveries, newest first, with
	// the given status ("" for all), created before the delivery id before
	// ("" for the newest); up to limit, and whether more follow.
	Deliveries(ctx context.Context, tenant, sub, status, before string, limit int) ([]Delivery, bool, error)
	// Retry makes one more attempt of a delivery now.
	Retry(ctx context.Context, tenant, id string) (Delivery, error)
	// Backlog counts a subscription's pending deliveries.
	Backlog(ctx context.Context, tenant, sub string) (int, error)
}

// Intake tells whether the event store takes new events.
type Intake interface {
	// NearLimit reports whether the events stream holds more than its
	// high-water mark. It is called on every publish, so it answers from a
	// recent reading, not with a round trip of its own; it must be safe
	// for concurrent use.
	NearLimit(ctx context.Context) bool
}

// Duplicates remembers the event ids a tenant published within the
// duplicate window, beyond the event store's own (short) window.
type Duplicates interface {
	// Seen reports, for each of ids, whether tenant has an event stored
	// with it within the window. An error wrapping ErrUnavailable means it
	// cannot tell now; the caller refuses, retryably, rather than risk a
	// duplicate.
	Seen(ctx context.Context, tenant string, ids []string) ([]bool, error)
}

// StoredBytes counts the bytes of a tenant's events in the event store,
// for the storedBytes limit.
type StoredBytes interface {
	// StoredBytes returns what tenant's events take in the store now; an
	// error wraps ErrUnavailable.
	StoredBytes(ctx context.Context, tenant string) (int64, error)
}

// Config wires the API. Store, Rules, Publisher and Registry are required.
type Config struct {
	Store      *subscriptions.Store
	Rules      *subscriptions.Rules
	Publisher  *events.Publisher
	Deliveries Deliveries
	// Catalog is the event-type catalog, read at every request (default:
	// Types if set, else events.DefaultCatalog()).
	Catalog events.Source
	// Types is the event-type registry the operator API changes; nil
	// answers those routes 404.
	Types EventTypes
	// Events looks up a tenant's events; nil answers those routes 404.
	Events EventLog
	// Recovery runs replays and recoveries (as jobs past a page); nil
	// answers the replay, recovery and job routes 404.
	Recovery Recovery
	// Intake says when the event store is near its byte limit, so the
	// events API refuses new events; nil means it never is.
	Intake Intake
	// Duplicates checks the ids producers choose against the duplicate
	// window; nil leaves deduplication to the event store's own window.
	Duplicates Duplicates
	// Stored counts each tenant's stored bytes, which the events API
	// holds to its storedBytes limit; nil counts nothing.
	Stored StoredBytes
	// Limiter guards /api; nil means no rate limiting.
	Limiter Limiter
	// Notices hears of tenants near or past their limits (the operational
	// events limit.near and limit.exceeded); nil means nobody does.
	Notices Notices
	// Failures limits failed authentications per source address; nil
	// means no limit.
	Failures Failures
	// Idempotency keeps answers to POSTs made with an Idempotency-Key; nil
	// ignores the header.
	Idempotency *idempotency.Store
	// AdminToken enables the operator API; empty answers it 404.
	AdminToken string
	// Portal mints portal sign-in links and ends portal sessions; nil
	// answers those operator routes 404.
	Portal Portal
	// PublicURL is the scheme and host that links handed out are built on;
	// empty means the request's own.
	PublicURL string
	// MaxBody bounds request bodies (default 1 MiB).
	MaxBody int64
	// Ready lists what the process is missing to serve (NATS, a stream, a
	// bucket), for /readyz; empty means ready.
	Ready func(ctx context.Context) []string
	// NearLimit lists the streams and buckets past their high-water mark,
	// for /readyz, which names them and stays ready: the store is shared by
	// every replica, and taking them all out of rotation would stop the
	// writes (keys, subscriptions, sessions) the mark keeps room for.
	NearLimit func(ctx context.Context) []string
	// Tracer continues a producer's traceparent on the publish routes
	// (POST /api/events and /api/events/batch), with a server span when
	// tracing is on; nil is tracing off.
	Tracer   *tracing.Tracer
	Registry *prometheus.Registry
	Logger   *slog.Logger
	Now      func() time.Time
}

// API serves the HTTP routes. Build it with New.
type API struct {
	cfg    Config
	logger *slog.Logger
	mux    *http.ServeMux
	routes []route
	reqs   *prometheus.CounterVec
	dur    *prometheus.HistogramVec

	// refused counts refused authentications by reason.
	refused *prometheus.CounterVec
}

// access says who may call a route.
type access int

const (
	public access = iota
	tenant
	admin
)

// route is one method and path pattern of the API.
type route struct {
	method, pattern string
	access          access
	handle          func(w http.ResponseWriter, r *http.Request, c *caller) error
}

// caller is who made a request.
type caller struct {
	tenant string
	// limits are the tenant's limits as read when its request began.
	limits limits.Limits
}

// New builds the API and its routes.
func New(cfg Config) *API {
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = DefaultMaxBody
	}
	if cfg.Catalog == nil && cfg.Types != nil {
		cfg.Catalog = cfg.Types
	}
	if cfg.Catalog == nil {
		cfg.Catalog = events.DefaultCatalog()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	a := &API{cfg: cfg, logger: cfg.Logger, mux: http.NewServeMux()}
	a.reqs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "webhooks_api_requests_total", Help: "API requests by route and status code.",
	}, []string{"route", "code"})
	a.dur = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "webhooks_api_request_duration_seconds", Help: "API request duration by route.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
	}, []string{"route"})
	cfg.Registry.MustRegister(a.reqs, a.dur)
	a.refused = newRefused(cfg)
	a.routes = a.routeTable()
	a.register()
	return a
}

func (a *API) routeTable() []route {
	return []route{
		{"GET", "/healthz", public, a.healthz},
		{"GET", "/readyz", public, a.readyz},
		{"GET", "/openapi.json", public, a.openapi},

		{"POST", "/admin/tenants", admin, a.createTenant},
		{"GET", "/admin/tenants/{id}", admin, a.getTenant},
		{"PATCH", "/admin/tenants/{id}", admin, a.patchTenant},
		{"POST", "/admin/tenants/{id}/keys", admin, a.createKey},
		{"DELETE", "/admin/tenants/{id}/keys/{keyId}", admin, a.revokeKey},
		{"GET", "/admin/tenants", admin, a.listTenants},
		{"GET", "/admin/tenants/{id}/keys", admin, a.listKeys},
		{"POST", "/admin/tenants/{id}/portal-sessions", admin, a.createPortalSession},
		{"POST", "/admin/event-types", admin, a.createEventType},
		{"PATCH", "/admin/event-types/{type}", admin, a.patchEventType},
		{"DELETE", "/admin/event-types/{type}", admin, a.deprecateEventType},
		{"DELETE", "/admin/tenants/{id}/portal-sessions", admin, a.endPortalSessions},

		{"GET", "/api/limits", tenant, a.getLimits},
		{"GET", "/api/event-types", tenant, a.eventTypes},
		{"GET", "/api/event-types/{type}", tenant, a.eventType},
		{"POST", "/api/subscriptions", tenant, a.createSubscription},
		{"GET", "/api/subscriptions", tenant, a.listSubscriptions},
		{"POST", "/api/subscriptions/batch", tenant, a.batchSubscriptions},
		{"GET", "/api/subscriptions/{id}", tenant, a.getSubscription},
		{"PATCH", "/api/subscriptions/{id}", tenant, a.patchSubscription},
		{"DELETE", "/api/subscriptions/{id}", tenant, a.deleteSubscription},
		{"GET", "/api/subscriptions/{id}/secret", tenant, a.getSecret},
		{"POST", "/api/subscriptions/{id}/rotate-secret", tenant, a.rotateSecret},
		{"POST", "/api/subscriptions/{id}/test", tenant, a.testSubscription},
		{"POST", "/api/subscriptions/{id}/replay", tenant, a.replay},
		{"POST", "/api/subscriptions/{id}/recover", tenant, a.recoverDeliveries},
		{"GET", "/api/jobs", tenant, a.listJobs},
		{"GET", "/api/jobs/{id}", tenant, a.getJob},
		{"GET", "/api/subscriptions/{id}/deliveries", tenant, a.listDeliveries},
		{"GET", "/api/deliveries/{id}", tenant, a.getDelivery},
		{"POST", "/api/deliveries/{id}/retry", tenant, a.retryDelivery},
		{"POST", "/api/events", tenant, a.publishEvent},
		{"POST", "/api/events/batch", tenant, a.publishEvents},
		{"GET", "/api/events", tenant, a.listEvents},
		{"GET", "/api/events/{id}", tenant, a.getEvent},
	}
}

// register puts every route on the mux, a 405 with Allow for other methods
// on each known path, and a JSON 404 for everything else. The 405s and the
// 404s under /api/ go through the same access check and rate limiting as
// the path's routes: an authenticated request is counted, errors included.
func (a *API) register() {
	allow := map[string][]string{}
	accessOf := map[string]access{}
	for _, rt := range a.routes {
		a.mux.Handle(rt.method+" "+rt.pattern, a.wrap(rt))
		allow[rt.pattern] = append(allow[rt.pattern], rt.method)
		accessOf[rt.pattern] = rt.access
	}
	for pattern, methods := range allow {
		if slices.Contains(methods, "GET") {
			methods = append(methods, "HEAD")
		}
		sort.Strings(methods)
		allowed := strings.Join(methods, ", ")
		notAllowed := func(w http.ResponseWriter, r *http.Request, _ *caller) error {
			w.Header().Set("Allow", allowed)
			return &Error{Status: http.StatusMethodNotAllowed, Code: CodeMethodNotAllowed,
				Message: "method " + r.Method + " is not allowed here", Details: map[string]any{"allow": methods}}
		}
		// One pattern per other method: a method-less pattern would
		// conflict with sibling wildcards such as /subscriptions/{id}.
		for _, m := range []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"} {
			if !slices.Contains(methods, m) {
				a.mux.Handle(m+" "+pattern, a.wrap(route{m, pattern, accessOf[pattern], notAllowed}))
			}
		}
	}
	a.mux.Handle("GET /metrics", promhttp.HandlerFor(a.cfg.Registry, promhttp.HandlerOpts{}))
	unknown := func(http.ResponseWriter, *http.Request, *caller) error { return errNotFound("path") }
	a.mux.Handle("/api/", a.wrap(route{"", "/api/", tenant, unknown}))
	a.mux.Handle("/", a.wrap(route{"", "/", public, unknown}))
}

// ServeHTTP serves the API.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id := r.Header.Get("X-Request-Id")
	if id == "" || len(id) > 128 || !events.ValidID(id) {
		id = events.NewIDWithPrefix("req_")
	}
	w.Header().Set("X-Request-Id", id)
	a.mux.ServeHTTP(w, r)
}

// wrap adds to a route its access check, rate limiting, error writing and
// metrics.
func (a *API) wrap(rt route) http.Handler {
	label := strings.TrimSpace(rt.method + " " + rt.pattern)
	// An event's trace starts at the request that publishes it.
	traced := rt.method == http.MethodPost && (rt.pattern == "/api/events" || rt.pattern == "/api/events/batch")
	m := &routeMetrics{label: label, reqs: a.reqs, dur: a.dur}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		// The status writer and the caller are one allocation.
		st := &struct {
			sw statusWriter
			c  caller
		}{sw: statusWriter{ResponseWriter: w, status: http.StatusOK}}
		sw, c := &st.sw, &st.c
		defer func() { m.observe(sw.status, time.Since(start)) }()
		if traced {
			var end func(int)
			r, end = a.cfg.Tracer.ServerSpan(r, label, rt.pattern)
			defer func() { end(sw.status) }()
		}
		var out http.ResponseWriter = sw
		switch rt.access {
		case admin:
			if a.cfg.AdminToken == "" {
				a.writeError(sw, r, errNotFound("path"))
				return
			}
			tok, ok := bearer(r)
			if !ok || subtle.ConstantTimeCompare([]byte(tok), []byte(a.cfg.AdminToken)) != 1 {
				reason := refusedBadCredentials
				if !ok {
					reason = refusedNoCredentials
				}
				// Counted, not limited per address: the operator API
				// documents no 429.
				a.refused.WithLabelValues(reason).Inc()
				a.writeError(sw, r, &Error{Status: http.StatusUnauthorized, Code: CodeUnauthorized, Message: "missing or wrong admin token"})
				return
			}
		case tenant:
			ten, ok, err := a.authenticate(r)
			if err != nil {
				a.writeError(sw, r, err)
				return
			}
			if !ok {
				a.writeError(sw, r, errUnauthorized())
				return
			}
			c.tenant = ten
			lim, err := a.cfg.Store.Limits(r.Context(), ten)
			if err != nil {
				// A tenant whose record cannot be read now is served
				// within the defaults.
				lim = a.cfg.Store.DefaultLimits()
			}
			c.limits = lim
			if a.cfg.Limiter != nil {
				ww, done, err := a.cfg.Limiter.Admit(sw, r, ten, int(lim.RequestsPerMinute))
				if err != nil {
					a.writeError(sw, r, err)
					return
				}
				defer done()
				out = ww
			}
		}
		if rt.access == tenant && r.Method == http.MethodPost && r.Header.Get(idempotencyHeader) != "" && a.cfg.Idempotency != nil {
			a.serveIdempotent(out, r, c, rt)
			return
		}
		a.serve(out, r, c, rt)
	})
}

// routeMetrics counts one route's requests and their durations. Its
// series are looked up by their labels when first used, not on every
// request: the histogram once, the counter again only when the status
// differs from the last one counted.
type routeMetrics struct {
	label string
	reqs  *prometheus.CounterVec
	dur   *prometheus.HistogramVec

	durOnce sync.Once
	durObs  prometheus.Observer
	last    atomic.Pointer[statusCounter]
}

// statusCounter is a route's counter of one status.
type statusCounter struct {
	status int
	prometheus.Counter
}

// observe counts a request answered status after d.
func (m *routeMetrics) observe(status int, d time.Duration) {
	c := m.last.Load()
	if c == nil || c.status != status {
		c = &statusCounter{status, m.reqs.WithLabelValues(m.label, strconv.Itoa(status))}
		m.last.Store(c)
	}
	c.Inc()
	m.durOnce.Do(func() { m.durObs = m.dur.WithLabelValues(m.label) })
	m.durObs.Observe(d.Seconds())
}

// serve runs a route's handler and writes its error, if any; a refusal at
// one of the tenant's limits is told to Notices (a change of what it uses
// is told by the handlers that make one, see noticeUsage).
func (a *API) serve(w http.ResponseWriter, r *http.Request, c *caller, rt route) {
	err := rt.handle(w, r, c)
	if err == nil {
		return
	}
	a.writeError(w, r, err)
	var qe *limits.ExceededError
	if a.cfg.Notices != nil && c.tenant != "" && errors.As(err, &qe) && qe.Limit != limits.EventBytes {
		a.cfg.Notices.LimitExceeded(c.tenant, qe.Limit, qe.Max, qe.Used)
	}
}

// Notices hears of a tenant near or at one of its limits. Its methods are
// called on the request's path and must not block.
type Notices interface {
	// LimitNear is told a tenant's use of a limit after a change; it
	// decides whether that is near the limit.
	LimitNear(tenant, limit string, max, used int64)
	// LimitExceeded is told of a request refused at a limit.
	LimitExceeded(tenant, limit string, max, used int64)
}

// noticeUsage tells Notices what the tenant now uses of the limits the
// API counts: subscriptions, event types, jobs running. The handlers that
// change one (a subscription created, changed or deleted; a replay or a
// recovery started) call it once they succeed, not every write: a publish
// changes none of them, and would pay the index's and the job runner's
// locks per event.
func (a *API) noticeUsage(c *caller) {
	if a.cfg.Notices == nil || c.tenant == "" {
		return
	}
	u := a.cfg.Store.Index().Usage(c.tenant)
	a.cfg.Notices.LimitNear(c.tenant, limits.Subscriptions, c.limits.Subscriptions, int64(u.Subscriptions))
	a.cfg.Notices.LimitNear(c.tenant, limits.EventTypes, c.limits.EventTypes, int64(u.EventTypes))
	if a.cfg.Recovery != nil {
		a.cfg.Notices.LimitNear(c.tenant, limits.Jobs, c.limits.Jobs, int64(a.cfg.Recovery.Running(c.tenant)))
	}
}

// bearer returns the token of an "Authorization: Bearer" header.
func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

// statusWriter records the status code written.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }
