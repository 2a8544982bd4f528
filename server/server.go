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
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/onestack/webhooks/api"
	"github.com/onestack/webhooks/dispatcher"
	"github.com/onestack/webhooks/egress"
	"github.com/onestack/webhooks/events"
	"github.com/onestack/webhooks/idempotency"
	"github.com/onestack/webhooks/limiter"
	"github.com/onestack/webhooks/portal"
	"github.com/onestack/webhooks/portal/kvstore"
	"github.com/onestack/webhooks/subscriptions"
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
	// processes; empty keeps it in-process only.
	NATSListen string
	// AdminToken enables the operator API.
	AdminToken string
	// Egress is the destination policy of webhooks and subscription URLs.
	Egress egress.Policy
	// Dispatcher tunes delivery (retry schedule, timeouts, workers).
	Dispatcher dispatcher.Config
	// Events tunes the events stream.
	Events events.StreamConfig
	// RotationOverlap is how long a rotated-out signing secret keeps
	// signing (default 24 h).
	RotationOverlap time.Duration
	// Replicas is the replication factor of every stream and bucket.
	Replicas int
	// RateLimiter is where tenants' budgets are counted: "nats" (the
	// default: shared by every replica), "local" (this process only) or
	// "off".
	RateLimiter string
	// PublicURL is the scheme and host (https://hooks.example.com) that
	// portal links are built on and that tells the portal its cookies go
	// over https; empty means each request's own scheme and host.
	PublicURL string
	// Registry, when set, receives the metrics (tests inspect it); nil
	// means a new one.
	Registry *prometheus.Registry
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
	disp     *dispatcher.Dispatcher
	pub      *events.Publisher
	http     *http.Server
	listener net.Listener
	serveErr chan error
	ncClosed chan struct{}
}

// drainTimeout bounds the NATS drain at shutdown.
const drainTimeout = 5 * time.Second

// Start brings the whole stack up and serves HTTP until Shutdown.
func Start(ctx context.Context, cfg Config) (_ *Server, err error) {
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:8080"
	}
	if cfg.DataDir == "" {
		cfg.DataDir = "./data"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Replicas > 0 {
		cfg.Dispatcher.Replicas = cfg.Replicas
		cfg.Events.Replicas = cfg.Replicas
	}
	cfg.Dispatcher.Egress = cfg.Egress
	if cfg.Dispatcher.UserAgent == "" {
		cfg.Dispatcher.UserAgent = "onestack-webhooks/" + Version
	}
	s := &Server{cfg: cfg, logger: cfg.Logger, serveErr: make(chan error, 1), ncClosed: make(chan struct{})}
	defer func() {
		if err != nil {
			s.closeBackends()
		}
	}()
	if err := s.connect(); err != nil {
		return nil, err
	}
	if _, err := events.EnsureStream(ctx, s.js, cfg.Events); err != nil {
		return nil, err
	}
	s.store, err = subscriptions.Open(ctx, s.js, subscriptions.Config{Replicas: cfg.Replicas, RotationOverlap: cfg.RotationOverlap}, cfg.Logger)
	if err != nil {
		return nil, err
	}
	reg := cfg.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	s.disp, err = dispatcher.New(ctx, s.js, s.store, cfg.Dispatcher, reg, cfg.Logger)
	if err != nil {
		return nil, err
	}
	lim, err := s.limiter(ctx, reg)
	if err != nil {
		return nil, err
	}
	idem, err := idempotency.Open(ctx, s.js, idempotency.Config{Replicas: cfg.Replicas})
	if err != nil {
		return nil, err
	}
	portalStore, err := kvstore.Open(ctx, s.js, kvstore.Config{Replicas: cfg.Replicas})
	if err != nil {
		return nil, err
	}
	sessions := portal.NewSessions(portal.SessionsConfig{Store: portalStore})
	s.pub = events.NewPublisher(s.js)
	handler := api.New(api.Config{
		Store:       s.store,
		Rules:       subscriptions.NewRules(events.DefaultCatalog(), cfg.Egress),
		Publisher:   s.pub,
		Deliveries:  s.disp,
		Limiter:     lim,
		Idempotency: idem,
		AdminToken:  cfg.AdminToken,
		Portal:      sessions,
		PublicURL:   cfg.PublicURL,
		Ready:       s.ready,
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
	go func() { s.serveErr <- s.http.Serve(s.listener) }()
	s.logger.Info("webhookd started", "addr", s.URL(), "nats", s.natsDescription(), "version", Version)
	return s, nil
}

// limiter builds the API's rate limiter as configured.
func (s *Server) limiter(ctx context.Context, reg prometheus.Registerer) (api.Limiter, error) {
	var store limiter.Store
	switch s.cfg.RateLimiter {
	case "", "nats":
		ns, err := limiter.NewNATS(ctx, s.nc, s.js, s.cfg.Replicas, reg, s.logger)
		if err != nil {
			return nil, fmt.Errorf("rate limiter: %w", err)
		}
		store = ns
	case "local":
		store = limiter.NewLocal()
	case "off":
		return nil, nil
	default:
		return nil, fmt.Errorf("rate limiter %q: want nats, local or off", s.cfg.RateLimiter)
	}
	return limiter.NewHTTP(limiter.New(store, s.cfg.Clock), reg, s.logger), nil
}

// connect starts the embedded NATS server when no URL is given, and
// connects to NATS.
func (s *Server) connect() error {
	opts := []nats.Option{
		nats.Name("webhookd"),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
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
	url := s.cfg.NATSURL
	if url == "" {
		ns, err := startEmbedded(s.cfg.DataDir, s.cfg.NATSListen)
		if err != nil {
			return err
		}
		s.ns = ns
		if s.cfg.NATSListen == "" {
			opts = append(opts, nats.InProcessServer(ns))
		}
		url = ns.ClientURL()
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return fmt.Errorf("connect to nats %s: %w", url, err)
	}
	s.nc = nc
	s.js, err = jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(16384))
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	return nil
}

// startEmbedded runs a NATS server with JetStream file storage under dir,
// in-process only unless listen names a host:port.
func startEmbedded(dir, listen string) (*natsserver.Server, error) {
	opts := &natsserver.Options{
		ServerName: "webhookd",
		JetStream:  true,
		StoreDir:   filepath.Join(dir, "jetstream"),
		NoSigs:     true,
		NoLog:      true,
		DontListen: listen == "",
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
		return s.cfg.NATSURL
	}
	if s.cfg.NATSListen == "" {
		return "embedded (in-process)"
	}
	return "embedded at " + s.ns.ClientURL()
}

// ready reports whether NATS is connected and the streams answer.
func (s *Server) ready(ctx context.Context) error {
	if !s.nc.IsConnected() {
		return errors.New("nats not connected")
	}
	for _, name := range []string{events.StreamName, dispatcher.DeliveriesStream} {
		if _, err := s.js.Stream(ctx, name); err != nil {
			return fmt.Errorf("stream %s: %w", name, err)
		}
	}
	return nil
}

// URL is the base URL of the HTTP API.
func (s *Server) URL() string { return "http://" + s.listener.Addr().String() }

// Publisher is the events publisher on this server's connection, as a
// platform service in the same process would use it.
func (s *Server) Publisher() *events.Publisher { return s.pub }

// Conn is the server's NATS connection.
func (s *Server) Conn() *nats.Conn { return s.nc }

// Store is the subscription store.
func (s *Server) Store() *subscriptions.Store { return s.store }

// Err reports the HTTP server's failure, if it stops on its own.
func (s *Server) Err() <-chan error { return s.serveErr }

// Shutdown stops taking requests and work, drains deliveries in flight
// until ctx ends (their tasks are handed back to JetStream), and closes
// NATS.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.http.Shutdown(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		err = s.http.Close()
	}
	s.disp.Stop(ctx)
	s.closeBackends()
	s.logger.Info("webhookd stopped")
	return err
}

func (s *Server) closeBackends() {
	if s.store != nil {
		s.store.Close()
	}
	if s.nc != nil {
		// Drain flushes what the dispatcher published and acked; the
		// closed handler says when it is done, within the drain timeout.
		if err := s.nc.Drain(); err == nil {
			select {
			case <-s.ncClosed:
			case <-time.After(drainTimeout + time.Second):
			}
		}
		s.nc.Close()
	}
	if s.ns != nil {
		s.ns.Shutdown()
		s.ns.WaitForShutdown()
	}
}
