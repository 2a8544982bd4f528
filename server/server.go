// Package server wires the whole product once: NATS (embedded or external),
// the stores and their index, the dispatcher, the rate limiter, the API and
// the HTTP server, with a graceful shutdown. cmd/webhookd and testenv both
// call it, so there is one copy of the wiring.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/onestack/webhooks/api"
	"github.com/onestack/webhooks/deliverylog"
	"github.com/onestack/webhooks/dispatcher"
	"github.com/onestack/webhooks/egress"
	"github.com/onestack/webhooks/eventindex"
	"github.com/onestack/webhooks/events"
	"github.com/onestack/webhooks/history"
	"github.com/onestack/webhooks/idempotency"
	"github.com/onestack/webhooks/internal/health"
	"github.com/onestack/webhooks/internal/kvwatch"
	"github.com/onestack/webhooks/jobs"
	"github.com/onestack/webhooks/limiter"
	"github.com/onestack/webhooks/limits"
	"github.com/onestack/webhooks/opevents"
	"github.com/onestack/webhooks/portal"
	"github.com/onestack/webhooks/portal/kvstore"
	"github.com/onestack/webhooks/subscriptions"
	"github.com/onestack/webhooks/tracing"
)

// Version is reported in the User-Agent of webhooks.
const Version = "0.1.0"

// Config is everything a webhookd process needs. The zero value of each
// field means its default.
type Config struct {
	// Addr is the HTTP listen address (default 127.0.0.1:8080; ":0" picks
	// a free port).
	Addr string
	// DataDir holds the embedded NATS server's JetStream files (default ./data).
	DataDir string
	// NATSURL is an external NATS server or cluster; empty starts an
	// embedded server.
	NATSURL string
	// NATSListen exposes the embedded server on host:port to other
	// processes; empty keeps it in-process only. It needs NATSAuth.
	NATSListen string
	// NATSAuth are the credentials the exposed embedded server requires,
	// or those webhookd presents to NATSURL.
	NATSAuth NATSAuth
	// AdminToken enables the operator API.
	AdminToken string
	// Egress is the destination policy of webhooks and subscription URLs.
	Egress egress.Policy
	// Dispatcher tunes delivery (retry schedule, timeouts, workers).
	Dispatcher dispatcher.Config
	// Events tunes the events stream.
	Events events.StreamConfig
	// Publisher bounds the publishes of the events API.
	Publisher events.PublisherConfig
	// Storage bounds every stream and bucket, and the embedded server's
	// JetStream store.
	Storage StorageConfig
	// DeliveryLog tunes the attempt log's local index; its Dir defaults to
	// DataDir/deliverylog and its Retention to Dispatcher.AttemptRetention.
	DeliveryLog deliverylog.IndexConfig
	// Idempotency tunes the stored answers of Idempotency-Key requests
	// (TTL, a duplicate's wait).
	Idempotency idempotency.Config
	// Jobs paces replay and recovery jobs (rate, batch, lease).
	Jobs jobs.Config
	// RotationOverlap is how long a rotated-out signing secret keeps
	// signing (default 24 h).
	RotationOverlap time.Duration
	// Replicas is the replication factor of every stream and bucket.
	Replicas int
	// Limits are the limits of a tenant without overrides of its own (the
	// operator's flags); each zero field is limits.Defaults()'s, but
	// AttemptsInFlight is Dispatcher.TenantInFlight's when that is set.
	Limits limits.Limits
	// RateLimiter is where tenants' budgets are counted: "nats" (the
	// default: shared by every replica), "local" (this process only) or
	// "off".
	RateLimiter string
	// AuthFailures bounds the failed authentications (401s) of one source
	// address a minute, past which it is answered 429 (default 30).
	AuthFailures limiter.FailuresConfig
	// PublicURL is the scheme and host (https://hooks.example.com) that
	// portal links are built on and that tells the portal its cookies go
	// over https; empty means each request's own scheme and host.
	PublicURL string
	// CertificateWarning is how long before its expiry a subscription's
	// mTLS client certificate raises certificate.expiring (default 14
	// days; negative: never); CertificateSweep is how often every replica
	// looks (default an hour, and once at start).
	CertificateWarning, CertificateSweep time.Duration
	// Registry, when set, receives the metrics (tests inspect it); nil
	// means a new one.
	Registry *prometheus.Registry
	// Operator is the operator's endpoint for the operational events of
	// every tenant (none by default).
	Operator OperatorConfig
	// Tracing says where the OTEL_* settings come from; its zero value
	// leaves tracing off (webhooks still carry a traceparent).
	Tracing tracing.Config
	// Clock is the rate limiter's time source (default time.Now); tests
	// hold it still so no window ends in the middle of a count.
	Clock  func() time.Time
	Logger *slog.Logger
}

// Server is a running webhookd.
type Server struct {
	cfg      Config
	logger   *slog.Logger
	ns       *natsserver.Server
	nc       *nats.Conn
	js       jetstream.JetStream
	store    *subscriptions.Store
	logw     *deliverylog.Writer
	logIndex *deliverylog.Index
	disp     *dispatcher.Dispatcher
	pub      *events.Publisher
	types    *events.Registry
	events   *eventindex.Index
	jobs     *jobs.Runner
	// certs sweeps the client certificates for certificate.expiring.
	certs *opevents.Certificates
	// ops raises the operational events.
	ops      *opevents.Emitter
	tracer   *tracing.Tracer
	http     *http.Server
	listener net.Listener
	serveErr chan error
	ncClosed chan struct{}
	// needs names every stream and KV bucket the process uses, for /readyz.
	needs []need
	// budget is every stream's and bucket's byte limit; usage reads what
	// they hold.
	budget budget
	usage  *usage
	// health collects what the long-lived parts report (a watch down, an
	// index rebuilt, a recovered panic), for /readyz and the metrics.
	health *health.Health
	// watch is what every KV watch reports to: the health while it is
	// down, and the count of its restarts.
	watch kvwatch.Config
}

// need is a stream or bucket the process cannot work without.
type need struct {
	kind, name string // "stream" or "bucket"; its name
}

func (n need) stream() string {
	if n.kind == "bucket" {
		return "KV_" + n.name
	}
	return n.name
}

// drainTimeout bounds the NATS drain at shutdown.
const drainTimeout = 5 * time.Second

// Start brings the whole stack up and serves HTTP until Shutdown.
func Start(ctx context.Context, cfg Config) (_ *Server, err error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("server config: %w", err)
	}
	if cfg.Replicas > 0 {
		cfg.Dispatcher.Replicas = cfg.Replicas
		cfg.Events.Replicas = cfg.Replicas
	}
	cfg.Dispatcher.Egress = cfg.Egress
	if cfg.Dispatcher.UserAgent == "" {
		cfg.Dispatcher.UserAgent = "onestack-webhooks/" + Version
	}
	cfg.Limits = withLimitDefaults(cfg.Limits, cfg.Dispatcher.TenantInFlight)
	// The event index answers the duplicate window past NATS's own: it
	// must still hold the window's events.
	if ec := cfg.Events.WithDefaults(); ec.DedupeWindow > ec.Retention {
		return nil, fmt.Errorf("the duplicate window (%v) is longer than the events' retention (%v)", ec.DedupeWindow, ec.Retention)
	}
	s := &Server{cfg: cfg, logger: cfg.Logger, serveErr: make(chan error, 1), ncClosed: make(chan struct{}), health: health.New()}
	s.watch = kvwatch.Config{Health: s.health, Restarts: kvwatch.NewRestarts(),
		Closed: func() bool { return s.nc != nil && (s.nc.IsClosed() || s.nc.IsDraining()) }}
	defer func() {
		if err != nil {
			ctx, cancel := context.WithTimeout(context.Background(), drainTimeout)
			defer cancel()
			s.closeBackends(ctx)
		}
	}()
	if cfg.Tracing.Version == "" {
		cfg.Tracing.Version = Version
	}
	if s.tracer, err = tracing.New(ctx, cfg.Tracing); err != nil {
		return nil, err
	}
	cfg.Dispatcher.Tracer = s.tracer
	cfg.Publisher.Tracer = s.tracer
	if err := s.sizeStorage(); err != nil {
		return nil, err
	}
	if err := s.connect(); err != nil {
		return nil, err
	}
	s.usage = newUsage(s.js, cfg.Storage.ReadEvery, s.budget.highWater)
	cfg.Events.MaxBytes = s.budget.events
	// Every stream, bucket and consumer is made through jsretry.Provision,
	// which waits for a cluster that is still forming or loaded.
	if _, err := events.EnsureStream(ctx, s.js, cfg.Events); err != nil {
		return nil, err
	}
	s.needs = append(s.needs, need{"stream", events.StreamName})
	s.store, err = subscriptions.Open(ctx, s.js, subscriptions.Config{Replicas: cfg.Replicas, BucketMaxBytes: s.budget.subscriptions, RotationOverlap: cfg.RotationOverlap, Watch: s.watch, Limits: cfg.Limits}, cfg.Logger)
	if err != nil {
		return nil, err
	}
	for _, b := range s.store.Buckets() {
		s.needs = append(s.needs, need{"bucket", b})
	}
	reg := cfg.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "webhooks_panics_recovered_total", Help: "Panics recovered in long-lived goroutines; each leaves /readyz failing until the part it stopped is running again.",
		}, func() float64 { return float64(s.health.Panics()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "webhooks_health_problems", Help: "Problems this replica knows of now (a watch down, an index being rebuilt); /readyz lists them.",
		}, func() float64 { return float64(len(s.health.Problems())) }),
		s.watch.Restarts,
		s.usage,
	)
	if err := s.operational(ctx, reg); err != nil {
		return nil, err
	}
	if _, err := deliverylog.EnsureStream(ctx, s.js, deliverylog.StreamConfig{Retention: cfg.Dispatcher.AttemptRetention, Replicas: cfg.Replicas, MaxBytes: s.budget.attemptLog}); err != nil {
		return nil, err
	}
	s.needs = append(s.needs, need{"stream", deliverylog.StreamName})
	ixCfg := cfg.DeliveryLog
	if ixCfg.Dir == "" {
		ixCfg.Dir = filepath.Join(cfg.DataDir, "deliverylog")
	}
	if ixCfg.Retention == 0 {
		ixCfg.Retention = cfg.Dispatcher.AttemptRetention
	}
	ixCfg.Health = s.health
	s.logIndex, err = deliverylog.OpenIndex(ctx, s.js, ixCfg, cfg.Logger)
	if err != nil {
		return nil, err
	}
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "webhooks_deliverylog_applied_sequence", Help: "Last attempt-log stream sequence applied to this replica's local index.",
		}, func() float64 { return float64(s.logIndex.Applied()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "webhooks_deliverylog_messages_applied_total", Help: "Attempt-log messages applied to the local index since the process started (a restart resumes: it does not rebuild).",
		}, func() float64 { return float64(s.logIndex.MessagesApplied()) }),
	)
	s.logw = deliverylog.NewWriter(s.js, deliverylog.WriterConfig{}, cfg.Logger)
	if cfg.Dispatcher.TenantLimit == nil {
		cfg.Dispatcher.TenantLimit = s.attemptsInFlight
	}
	cfg.Dispatcher.DeliveriesMaxBytes = s.budget.deliveries
	cfg.Dispatcher.Operational = s.ops
	s.cfg.Jobs.Finished = s.ops.JobFinished
	s.disp, err = dispatcher.New(ctx, s.js, s.store, s.logw, s.logIndex, cfg.Dispatcher, reg, cfg.Logger)
	if err != nil {
		return nil, err
	}
	for _, st := range s.disp.Streams() {
		s.needs = append(s.needs, need{"stream", st})
	}
	if err := s.openLookups(ctx, reg); err != nil {
		return nil, err
	}
	lim, err := s.limiter(ctx, reg)
	if err != nil {
		return nil, err
	}
	idemCfg := cfg.Idempotency
	idemCfg.Replicas = cfg.Replicas
	idemCfg.MaxBytes = s.budget.idempotency
	idem, err := idempotency.Open(ctx, s.js, idemCfg)
	if err != nil {
		return nil, err
	}
	s.needs = append(s.needs, need{"bucket", idempotency.Bucket})
	portalStore, err := kvstore.Open(ctx, s.js, kvstore.Config{Replicas: cfg.Replicas, BucketMaxBytes: s.budget.small})
	if err != nil {
		return nil, err
	}
	for _, b := range []string{kvstore.LinksBucket, kvstore.SessionsBucket} {
		s.needs = append(s.needs, need{"bucket", b})
	}
	sessions := portal.NewSessions(portal.SessionsConfig{Store: portalStore})
	s.pub = events.NewPublisher(s.js, cfg.Publisher).WithTypes(s.types)
	ids := history.NewEventIDs(s.events, cfg.Events, cfg.Publisher.Timeout)
	handler := api.New(api.Config{
		Store:       s.store,
		Rules:       subscriptions.NewRules(s.types, cfg.Egress),
		Publisher:   s.pub,
		Deliveries:  s.deliveries(),
		Types:       s.types,
		Events:      s.eventLog(),
		Recovery:    s.recovery(),
		Limiter:     lim,
		Notices:     s.ops,
		Failures:    limiter.NewFailures(cfg.AuthFailures),
		Idempotency: idem,
		AdminToken:  cfg.AdminToken,
		Portal:      sessions,
		PublicURL:   cfg.PublicURL,
		Ready:       s.ready,
		NearLimit:   s.nearLimit,
		Intake:      intake{u: s.usage, stream: events.StreamName},
		Tracer:      s.tracer,
		Duplicates:  ids,
		Stored:      ids,
		Registry:    reg,
		Logger:      cfg.Logger,
	})
	s.listener, err = net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	s.http = &http.Server{
		Handler:           s.routes(handler, sessions),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelWarn),
	}
	if err := s.disp.Start(); err != nil {
		s.listener.Close()
		return nil, err
	}
	s.jobs.Start()
	go func() { s.serveErr <- s.http.Serve(s.listener) }()
	s.logger.Info("webhookd started", "addr", s.URL(), "nats", s.natsDescription(), "version", Version)
	return s, nil
}

// limiter builds the API's rate limiter as configured.
func (s *Server) limiter(ctx context.Context, reg prometheus.Registerer) (api.Limiter, error) {
	var store limiter.Store
	switch s.cfg.RateLimiter {
	case "", "nats":
		ns, err := limiter.NewNATS(ctx, s.nc, s.js, s.cfg.Replicas, s.budget.counters, reg, s.logger)
		if err != nil {
			return nil, fmt.Errorf("rate limiter: %w", err)
		}
		s.needs = append(s.needs, need{"stream", limiter.CounterStream})
		store = ns
	case "local":
		store = limiter.NewLocal()
	case "off":
		return nil, nil
	default:
		return nil, fmt.Errorf("rate limiter %q: want nats, local or off", s.cfg.RateLimiter)
	}
	h := limiter.NewHTTP(limiter.New(store, s.cfg.Clock), reg, s.logger)
	h.Notify(s.ops)
	return h, nil
}

// connect starts the embedded NATS server when no URL is given, and
// connects to NATS.
func (s *Server) connect() error {
	opts := []nats.Option{
		nats.Name("webhookd"),
		// A route cut off is noticed within about PingInterval ×
		// (MaxPingsOutstanding+1), not nats.go's default two minutes; then
		// it reconnects forever, spread by jitter.
		nats.PingInterval(2 * time.Second),
		nats.MaxPingsOutstanding(3),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.ReconnectJitter(250*time.Millisecond, time.Second),
		nats.ReconnectBufSize(64 << 20),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				s.logger.Warn("nats disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(*nats.Conn) { s.logger.Info("nats reconnected") }),
		nats.ClosedHandler(func(*nats.Conn) { close(s.ncClosed) }),
		nats.DrainTimeout(drainTimeout),
	}
	if err := s.cfg.NATSAuth.validate(s.cfg.NATSListen); err != nil {
		return err
	}
	auth, err := s.cfg.NATSAuth.clientOptions()
	if err != nil {
		return err
	}
	opts = append(opts, auth...)
	url := s.cfg.NATSURL
	if url == "" {
		ns, err := startEmbedded(s.cfg.DataDir, s.cfg.NATSListen, s.budget.store, s.cfg.NATSAuth)
		if err != nil {
			return err
		}
		s.ns = ns
		// In-process even when exposed: no TLS to configure, and the
		// credentials are checked all the same.
		opts = append(opts, nats.InProcessServer(ns))
		url = ns.ClientURL()
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return fmt.Errorf("connect to nats %s: %w", RedactURLs(url), err)
	}
	s.nc = nc
	// A cluster still electing leaders, or a loaded machine, can take
	// more than nats.go's default 5 s to answer a stream or bucket's
	// creation; calls made with a deadline of their own keep it.
	s.js, err = jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(16384), jetstream.WithDefaultTimeout(15*time.Second))
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	return nil
}

// startEmbedded runs a NATS server with JetStream file storage under dir,
// at most maxStore bytes of it (JetStream's own default is 75 % of the
// disk's free space; the streams' limits are reserved against it),
// in-process only unless listen names a host:port; it requires auth's
// credentials when it has some.
func startEmbedded(dir, listen string, maxStore int64, auth NATSAuth) (*natsserver.Server, error) {
	opts := &natsserver.Options{
		ServerName: "webhookd",
		JetStream:  true,
		StoreDir:   filepath.Join(dir, "jetstream"),
		// Set, not left to JetStream's default (75 % of the free disk
		// at each start): the streams' and buckets' limits are shares of
		// it (see StorageConfig).
		JetStreamMaxStore: maxStore,
		NoSigs:            true,
		NoLog:             true,
		DontListen:        listen == "",
	}
	if listen != "" {
		host, port, err := net.SplitHostPort(listen)
		if err != nil {
			return nil, fmt.Errorf("nats listen address %q: %w", listen, err)
		}
		opts.Host = host
		if opts.Port, err = strconv.Atoi(port); err != nil {
			return nil, fmt.Errorf("nats listen port %q: %w", port, err)
		}
		if opts.Port == 0 {
			opts.Port = natsserver.RANDOM_PORT
		}
	}
	if err := auth.serverOptions(opts); err != nil {
		return nil, err
	}
	ns, err := natsserver.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded nats: %w", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(30 * time.Second) {
		ns.Shutdown()
		return nil, errors.New("embedded nats: not ready within 30s")
	}
	return ns, nil
}

func (s *Server) natsDescription() string {
	if s.ns == nil {
		return RedactURLs(s.cfg.NATSURL)
	}
	if s.cfg.NATSListen == "" {
		return "embedded (in-process)"
	}
	return "embedded at " + s.ns.ClientURL()
}

// ready lists what keeps the process from serving: a NATS connection
// down, a stream or bucket it uses that JetStream does not have (one
// listing of the streams answers for all of them), or a dispatcher that
// makes no progress.
func (s *Server) ready(ctx context.Context) []string {
	if !s.nc.IsConnected() {
		return []string{"nats connection"}
	}
	have := map[string]bool{}
	names := s.js.StreamNames(ctx)
	for n := range names.Name() {
		have[n] = true
	}
	if err := names.Err(); err != nil {
		return []string{"jetstream"}
	}
	var missing []string
	for _, n := range s.needs {
		if !have[n.stream()] {
			missing = append(missing, n.kind+" "+n.name)
		}
	}
	missing = append(missing, s.health.Problems()...)
	return append(missing, s.disp.Stalled()...)
}

// URL is the base URL of the HTTP API.
func (s *Server) URL() string { return "http://" + s.listener.Addr().String() }

// Publisher is the events publisher on this server's connection, as a
// platform service in the same process would use it.
func (s *Server) Publisher() *events.Publisher { return s.pub }

// Conn is the server's NATS connection.
func (s *Server) Conn() *nats.Conn { return s.nc }

// JetStream is the server's NATS connection and its JetStream context, for
// tests and tools that inspect or act on the streams directly.
func (s *Server) JetStream() (*nats.Conn, jetstream.JetStream) { return s.nc, s.js }

// Store is the subscription store.
func (s *Server) Store() *subscriptions.Store { return s.store }

// Err reports the HTTP server's failure, if it stops on its own.
func (s *Server) Err() <-chan error { return s.serveErr }

// Shutdown stops taking requests and work and closes NATS. HTTP and the
// dispatcher each get their share of ctx's time: requests in flight get at
// most half of it (then their connections are closed), and the dispatcher
// the rest, at least half, to let attempts in flight finish; those it must
// cut are handed back to JetStream for redelivery. Whatever storage and
// NATS do, it returns by ctx's deadline: what is still closing then (an
// index that cannot flush to a lost disk) is logged and left behind, and
// the error names it.
func (s *Server) Shutdown(ctx context.Context) error {
	httpCtx, cancel := partOf(ctx, 2)
	defer cancel()
	err := s.http.Shutdown(httpCtx)
	if errors.Is(err, context.DeadlineExceeded) {
		s.logger.Warn("shutdown: requests still running after their share of the grace; closing their connections")
		err = s.http.Close()
	}
	// The dispatcher drains until a little before the end, which is kept
	// for storing the attempt log's last records and closing NATS.
	dispCtx := ctx
	if deadline, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		dispCtx, cancel = context.WithDeadline(ctx, deadline.Add(-min(time.Until(deadline)/5, 2*time.Second)))
		defer cancel()
	}
	s.jobs.Stop(dispCtx) // its jobs are released, to resume on any replica
	s.disp.Stop(dispCtx)
	if left := s.closeBackends(ctx); len(left) > 0 {
		// What was not stored is redelivered, as after a kill.
		return errors.Join(err, fmt.Errorf("shutdown: left closing at the deadline: %s", strings.Join(left, ", ")))
	}
	s.logger.Info("webhookd stopped")
	return err
}

// closeBackends closes the attempt log, NATS, the stores and the indexes,
// within ctx: each wait is cut short when it ends, whatever storage or
// NATS do, and what is still closing then is left behind (the process
// exits). It returns what it left.
func (s *Server) closeBackends(ctx context.Context) (left []string) {
	if s.logw != nil {
		// What the dispatcher logged goes out before NATS closes, within
		// half of the time left: with NATS gone it never would, and what
		// follows must still close.
		wctx, cancel := partOf(ctx, 2)
		if err := s.logw.Close(wctx); err != nil {
			s.logger.Warn("attempt log: records not stored at shutdown (their deliveries are redelivered)", "err", err)
		}
		cancel()
	}
	left = s.closeLookups(ctx)
	s.certs.Stop()
	// The operational events it queued go out before NATS closes, within
	// half of the time left, as the attempt log's records.
	octx, cancel := partOf(ctx, 2)
	s.ops.Close(octx)
	cancel()
	if s.nc != nil {
		// Drain flushes what the dispatcher published and acked; the
		// closed handler says when it is done, within the drain timeout.
		if err := s.nc.Drain(); err == nil {
			select {
			case <-s.ncClosed:
			case <-ctx.Done():
			case <-time.After(drainTimeout + time.Second):
			}
		}
		s.nc.Close()
	}
	// After NATS: stopping a watch asks the server to drop its consumer,
	// which must not wait on a connection that is gone.
	if s.store != nil && !s.within(ctx, "subscription store", s.store.Close) {
		left = append(left, "subscription store")
	}
	if s.ns != nil && !s.within(ctx, "embedded NATS server", func() { s.ns.Shutdown(); s.ns.WaitForShutdown() }) {
		left = append(left, "embedded NATS server")
	}
	// The indexes last: they are caches of the streams, and what they
	// have not flushed by the deadline is applied again at the next start.
	if s.logIndex != nil && !s.closeIndex(ctx, "attempt log index", s.logIndex.Close) {
		left = append(left, "attempt log index")
	}
	if s.events != nil && !s.closeIndex(ctx, "event index", s.events.Close) {
		left = append(left, "event index")
	}
	// The spans of the last attempts go out last.
	if err := s.tracer.Shutdown(ctx); err != nil {
		s.logger.Warn("tracing: spans not exported at shutdown", "err", err)
	}
	return left
}

// partOf returns a context that ends with ctx or once 1/n of the time
// left to ctx's deadline has passed, whichever is first.
func partOf(ctx context.Context, n int) (context.Context, context.CancelFunc) {
	deadline, ok := ctx.Deadline()
	if !ok {
		return context.WithCancel(ctx)
	}
	return context.WithDeadline(ctx, time.Now().Add(time.Until(deadline)/time.Duration(n)))
}

// closeIndex closes an index within ctx, and reports whether it is closed
// or failed (not left closing).
func (s *Server) closeIndex(ctx context.Context, name string, closeIx func(context.Context) error) bool {
	err := closeIx(ctx)
	if err == nil {
		return true
	}
	s.logger.Error(name+": close (what it did not store is applied again at the next start)", "err", err)
	return ctx.Err() == nil
}

// within runs stop and waits for it until ctx ends; then it logs that what
// stop closes is left closing, and returns false.
func (s *Server) within(ctx context.Context, what string, stop func()) bool {
	done := make(chan struct{})
	go func() {
		defer close(done)
		stop()
	}()
	select {
	case <-done:
		return true
	case <-ctx.Done():
		s.logger.Error("shutdown: "+what+" still closing at the deadline; left behind", "err", ctx.Err())
		return false
	}
}
