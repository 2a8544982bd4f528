// Command webhookd runs One Stack Webhooks: the REST API, the dispatcher
// and, unless --nats-url is given, an embedded NATS server with JetStream.
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/onestack/webhooks/api"
	"github.com/onestack/webhooks/deliverylog"
	"github.com/onestack/webhooks/destination"
	"github.com/onestack/webhooks/dispatcher"
	"github.com/onestack/webhooks/egress"
	"github.com/onestack/webhooks/events"
	"github.com/onestack/webhooks/jobs"
	"github.com/onestack/webhooks/limits"
	"github.com/onestack/webhooks/opevents"
	"github.com/onestack/webhooks/server"
	"github.com/onestack/webhooks/subscriptions"
	"github.com/onestack/webhooks/tracing"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Environ(), os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "webhookd:", err)
		}
		os.Exit(2)
	}
}

// defaultGCPercent is --gc-percent's default, Go's own: the heap may grow
// to twice what the last collection kept. 200 (three times) was measured
// at 12,000 deliveries/s to save 5 % of CPU per delivery, for about 70 MB
// more memory. With ids over HTTP at 3,000 events/s, 100 against 200:
// RSS 232–240 MB against 333–336, the GC 5.5 % of webhookd's CPU samples
// against 3.7 % (issue 16's memory target is RSS, at default settings).
const defaultGCPercent = 100

// options are webhookd's flags, each with a WEBHOOKD_ environment fallback.
type options struct {
	addr, dataDir, natsURL, natsListen, adminToken string
	natsAuth                                       server.NATSAuth
	allowPrivate, allowHTTP                        bool
	allowCIDRs, retrySchedule, logLevel            string
	timeout, shutdownGrace, rotationOverlap        time.Duration
	eventRetention, deliveryRetention, failPeriod  time.Duration
	dedupeWindow, natsWindow, stallAfter           time.Duration
	debugAddr                                      string
	replicas                                       int
	failCount                                      int
	failingAfter                                   int
	operator                                       server.OperatorConfig
	certificateWarning                             time.Duration
	publicURL                                      string
	workers, perSub, tenantInFlight, destMax       int
	jobRate                                        float64
	// gcPercent is the Go runtime's GOGC for the process, unless GOGC
	// is set in the environment.
	gcPercent int
	// storage bounds the streams and buckets.
	storage server.StorageConfig
	// limits are every tenant's defaults (attemptsInFlight is
	// tenantInFlight).
	limits limits.Limits
}

// flagEnv names each flag's environment variable.
var flagEnv = map[string]string{
	"addr":                       "WEBHOOKD_ADDR",
	"data-dir":                   "WEBHOOKD_DATA_DIR",
	"nats-url":                   "WEBHOOKD_NATS_URL",
	"nats-listen":                "WEBHOOKD_NATS_LISTEN",
	"nats-token":                 "WEBHOOKD_NATS_TOKEN",
	"nats-user":                  "WEBHOOKD_NATS_USER",
	"nats-password":              "WEBHOOKD_NATS_PASSWORD",
	"nats-nkey-seed":             "WEBHOOKD_NATS_NKEY_SEED",
	"nats-tls-cert":              "WEBHOOKD_NATS_TLS_CERT",
	"nats-tls-key":               "WEBHOOKD_NATS_TLS_KEY",
	"replicas":                   "WEBHOOKD_REPLICAS",
	"admin-token":                "WEBHOOKD_ADMIN_TOKEN",
	"allow-private-destinations": "WEBHOOKD_ALLOW_PRIVATE_DESTINATIONS",
	"allow-http":                 "WEBHOOKD_ALLOW_HTTP",
	"allow-destination-cidrs":    "WEBHOOKD_ALLOW_DESTINATION_CIDRS",
	"retry-schedule":             "WEBHOOKD_RETRY_SCHEDULE",
	"delivery-timeout":           "WEBHOOKD_DELIVERY_TIMEOUT",
	"secret-rotation-overlap":    "WEBHOOKD_SECRET_ROTATION_OVERLAP",
	"event-retention":            "WEBHOOKD_EVENT_RETENTION",
	"dedupe-window":              "WEBHOOKD_DEDUPE_WINDOW",
	"nats-dedupe-window":         "WEBHOOKD_NATS_DEDUPE_WINDOW",
	"delivery-retention":         "WEBHOOKD_DELIVERY_RETENTION",
	"disable-after-failing":      "WEBHOOKD_DISABLE_AFTER_FAILING",
	"disable-after-given-up":     "WEBHOOKD_DISABLE_AFTER_GIVEN_UP",
	"failing-after":              "WEBHOOKD_FAILING_AFTER",
	"operator-webhook-url":       "WEBHOOKD_OPERATOR_WEBHOOK_URL",
	"operator-webhook-secret":    "WEBHOOKD_OPERATOR_WEBHOOK_SECRET",
	"certificate-warning":        "WEBHOOKD_CERTIFICATE_WARNING",
	"workers":                    "WEBHOOKD_WORKERS",
	"subscription-concurrency":   "WEBHOOKD_SUBSCRIPTION_CONCURRENCY",
	"tenant-concurrency":         "WEBHOOKD_TENANT_CONCURRENCY",
	"destination-concurrency":    "WEBHOOKD_DESTINATION_CONCURRENCY",
	"shutdown-grace":             "WEBHOOKD_SHUTDOWN_GRACE",
	"stall-after":                "WEBHOOKD_STALL_AFTER",
	"debug-addr":                 "WEBHOOKD_DEBUG_ADDR",
	"log-level":                  "WEBHOOKD_LOG_LEVEL",
	"public-url":                 "WEBHOOKD_PUBLIC_URL",
	"job-rate":                   "WEBHOOKD_JOB_RATE",
	"gc-percent":                 "WEBHOOKD_GC_PERCENT",
	"limit-requests-per-minute":  "WEBHOOKD_LIMIT_REQUESTS_PER_MINUTE",
	"limit-subscriptions":        "WEBHOOKD_LIMIT_SUBSCRIPTIONS",
	"limit-event-types":          "WEBHOOKD_LIMIT_EVENT_TYPES",
	"limit-event-bytes":          "WEBHOOKD_LIMIT_EVENT_BYTES",
	"limit-stored-bytes":         "WEBHOOKD_LIMIT_STORED_BYTES",
	"limit-jobs":                 "WEBHOOKD_LIMIT_JOBS",
	"store-max-bytes":            "WEBHOOKD_STORE_MAX_BYTES",
	"events-max-bytes":           "WEBHOOKD_EVENTS_MAX_BYTES",
	"attempt-log-max-bytes":      "WEBHOOKD_ATTEMPT_LOG_MAX_BYTES",
	"deliveries-max-bytes":       "WEBHOOKD_DELIVERIES_MAX_BYTES",
	"storage-high-water":         "WEBHOOKD_STORAGE_HIGH_WATER",
}

// limitFlags names the flag of each tenant limit's default;
// attemptsInFlight's is --tenant-concurrency.
var limitFlags = map[string]string{
	limits.RequestsPerMinute: "limit-requests-per-minute",
	limits.Subscriptions:     "limit-subscriptions",
	limits.EventTypes:        "limit-event-types",
	limits.EventBytes:        "limit-event-bytes",
	limits.StoredBytes:       "limit-stored-bytes",
	limits.Jobs:              "limit-jobs",
}

func parse(args []string, getenv func(string) string, environ []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("webhookd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.addr, "addr", server.DefaultAddr, "HTTP listen address")
	fs.StringVar(&o.dataDir, "data-dir", server.DefaultDataDir, "storage directory (the embedded NATS keeps JetStream there)")
	fs.StringVar(&o.natsURL, "nats-url", "", "external NATS server or cluster; empty starts an embedded server")
	fs.StringVar(&o.natsListen, "nats-listen", "", "expose the embedded NATS server on host:port (needs --nats-token, --nats-user and --nats-password, or --nats-nkey-seed)")
	fs.StringVar(&o.natsAuth.Token, "nats-token", "", "token the exposed embedded NATS server requires, or webhookd presents to --nats-url")
	fs.StringVar(&o.natsAuth.User, "nats-user", "", "user the exposed embedded NATS server requires (with --nats-password), or webhookd presents to --nats-url")
	fs.StringVar(&o.natsAuth.Password, "nats-password", "", "password of --nats-user")
	fs.StringVar(&o.natsAuth.NkeySeedFile, "nats-nkey-seed", "", "file holding an nkey user seed: the exposed embedded NATS server accepts its public key, and webhookd signs with it (also to --nats-url)")
	fs.StringVar(&o.natsAuth.TLSCert, "nats-tls-cert", "", "PEM certificate of the exposed embedded NATS server (with --nats-tls-key): its clients must use TLS")
	fs.StringVar(&o.natsAuth.TLSKey, "nats-tls-key", "", "PEM private key of --nats-tls-cert")
	fs.IntVar(&o.replicas, "replicas", 1, "replicas of every stream and bucket (1 embedded; 3 on a NATS cluster); applied to existing ones where JetStream allows")
	fs.StringVar(&o.adminToken, "admin-token", "", "bearer token of the operator API; empty disables it")
	fs.BoolVar(&o.allowPrivate, "allow-private-destinations", false, "allow webhooks to loopback, private and other internal addresses")
	fs.BoolVar(&o.allowHTTP, "allow-http", false, "allow plain http webhook URLs")
	fs.StringVar(&o.allowCIDRs, "allow-destination-cidrs", "", "comma-separated internal CIDRs webhooks may reach")
	fs.StringVar(&o.retrySchedule, "retry-schedule", "5s,5m,30m,2h,5h,10h,10h", "comma-separated waits before the 2nd, 3rd, ... attempt")
	fs.DurationVar(&o.timeout, "delivery-timeout", dispatcher.DefaultTimeout, "timeout of one delivery attempt")
	fs.IntVar(&o.workers, "workers", dispatcher.DefaultWorkers, "delivery attempts in flight at most")
	fs.IntVar(&o.perSub, "subscription-concurrency", dispatcher.DefaultPerSubscription, "delivery attempts in flight at most to one subscription's endpoint")
	fs.IntVar(&o.tenantInFlight, "tenant-concurrency", dispatcher.DefaultTenantInFlight, "a tenant's share of attempts in flight while other tenants have work, and the most of its attempts that may run past 1 s at once")
	fs.IntVar(&o.destMax, "destination-concurrency", destination.DefaultMax, "attempts in flight at most to one destination (scheme, host, port), all its subscriptions together; the adaptive limit stays under it")
	fs.DurationVar(&o.eventRetention, "event-retention", events.DefaultRetention, "how long events are kept for replay")
	fs.DurationVar(&o.dedupeWindow, "dedupe-window", events.DefaultDedupeWindow, "how long an event id is remembered per tenant: the same id published again within it is delivered once")
	fs.DurationVar(&o.natsWindow, "nats-dedupe-window", events.DefaultNATSWindow, "how much of --dedupe-window NATS itself remembers, in memory (about 200 bytes an event); the rest is checked on disk, in the event index. Longer than 20s (a publish's timeout and the clocks' skew)")
	fs.DurationVar(&o.deliveryRetention, "delivery-retention", deliverylog.DefaultRetention, "how long delivery records and their attempts are kept")
	fs.DurationVar(&o.failPeriod, "disable-after-failing", dispatcher.DefaultDisableAfter, "disable a subscription whose deliveries have been given up, with none succeeding, for this long (0: never)")
	fs.IntVar(&o.failCount, "disable-after-given-up", 0, "disable a subscription after this many deliveries in a row were given up (0: never)")
	fs.IntVar(&o.failingAfter, "failing-after", dispatcher.DefaultFailingAfter, "raise subscription.failing once an endpoint has failed this many attempts in a row, and subscription.recovered at its next success (0: never)")
	fs.StringVar(&o.operator.URL, "operator-webhook-url", "", "the operator's endpoint: it gets every operational event of every tenant, signed and retried like any webhook (the same destination rules as tenants' endpoints); empty: none")
	fs.DurationVar(&o.certificateWarning, "certificate-warning", opevents.DefaultCertificateWarning, "raise certificate.expiring once a subscription's mTLS client certificate is this close to its expiry, and again once it has expired (0: never)")
	fs.StringVar(&o.operator.Secret, "operator-webhook-secret", "", "the secret (whsec_...) that signs the operator's webhooks; required with --operator-webhook-url (prefer WEBHOOKD_OPERATOR_WEBHOOK_SECRET)")
	fs.DurationVar(&o.rotationOverlap, "secret-rotation-overlap", subscriptions.DefaultRotationOverlap, "how long a rotated-out signing secret keeps signing")
	fs.DurationVar(&o.shutdownGrace, "shutdown-grace", 20*time.Second, "how long a shutdown waits for deliveries in flight")
	fs.DurationVar(&o.stallAfter, "stall-after", dispatcher.DefaultStallAfter, "how long the dispatcher may make no progress (outcomes unstored, its consumer failing) before /readyz reports it")
	fs.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&o.debugAddr, "debug-addr", "", "serve Go's profiles (/debug/pprof/) on host:port, apart from the API; empty: none")
	fs.StringVar(&o.publicURL, "public-url", "", "scheme and host browsers reach this server at (portal links, Secure cookies); empty: each request's own")
	fs.Float64Var(&o.jobRate, "job-rate", jobs.DefaultRate, "events or deliveries a second one replay or recovery job sends at most")
	fs.IntVar(&o.gcPercent, "gc-percent", defaultGCPercent, "the Go runtime's GOGC for webhookd: how far the heap may grow past what the last collection kept, in percent, before the next (at least 10; ignored when GOGC is set)")
	fs.Int64Var(&o.storage.MaxStore, "store-max-bytes", 0, "bytes JetStream may store, every stream and bucket together (0: the embedded server's is half of what its data directory's disk may hold at start; 10 GiB with --nats-url)")
	fs.Int64Var(&o.storage.EventsMaxBytes, "events-max-bytes", 0, "bytes of the EVENTS stream (0: half of --store-max-bytes)")
	fs.Int64Var(&o.storage.AttemptLogMaxBytes, "attempt-log-max-bytes", 0, "bytes of the attempt log, DELIVERYLOG (0: a fifth of --store-max-bytes)")
	fs.Int64Var(&o.storage.DeliveriesMaxBytes, "deliveries-max-bytes", 0, "bytes of the deliveries that wait, DELIVERIES (0: a tenth of --store-max-bytes)")
	fs.Float64Var(&o.storage.HighWater, "storage-high-water", server.DefaultHighWater, "share of --events-max-bytes past which the events API refuses new events (503), and of any stream's limit past which /readyz names it")
	d := limits.Defaults()
	fs.Int64Var(&o.limits.RequestsPerMinute, "limit-requests-per-minute", d.RequestsPerMinute, "a tenant's API requests a minute, unless the operator set its own (rateLimit)")
	fs.Int64Var(&o.limits.Subscriptions, "limit-subscriptions", d.Subscriptions, "subscriptions a tenant may have, unless the operator set its own")
	fs.Int64Var(&o.limits.EventTypes, "limit-event-types", d.EventTypes, "distinct event types and patterns a tenant's subscriptions may name, all together, unless the operator set its own")
	fs.Int64Var(&o.limits.EventBytes, "limit-event-bytes", d.EventBytes, "bytes of one event's data, at most 262144, unless the operator set a tenant's own")
	fs.Int64Var(&o.limits.StoredBytes, "limit-stored-bytes", d.StoredBytes, "bytes of events a tenant may have stored, unless the operator set its own (listed; not enforced yet)")
	fs.Int64Var(&o.limits.Jobs, "limit-jobs", d.Jobs, "replay and recovery jobs a tenant may have running at once, unless the operator set its own")

	// Environment first, flags over it.
	for name, env := range flagEnv {
		if v := getenv(env); v != "" {
			if err := fs.Set(name, v); err != nil {
				return o, fmt.Errorf("%s=%q: %w", env, v, err)
			}
		}
	}
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	known := make(map[string]bool, len(flagEnv))
	for _, env := range flagEnv {
		known[env] = true
	}
	var unknown []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "WEBHOOKD_") && !known[name] {
			unknown = append(unknown, name)
		}
	}
	sort.Strings(unknown)
	for _, name := range unknown {
		fmt.Fprintf(stderr, "webhookd: warning: ignoring unknown environment variable %s\n", name)
	}
	return o, nil
}

func run(ctx context.Context, args []string, getenv func(string) string, environ []string, stderr io.Writer) error {
	o, err := parse(args, getenv, environ, stderr)
	if err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return fmt.Errorf("--log-level %q: want debug, info, warn or error", o.logLevel)
	}
	schedule, err := dispatcher.ParseSchedule(o.retrySchedule)
	if err != nil {
		return fmt.Errorf("--retry-schedule: %w", err)
	}
	if schedule == nil {
		schedule = []time.Duration{}
	}
	cidrs, err := egress.ParseCIDRs(o.allowCIDRs)
	if err != nil {
		return fmt.Errorf("--allow-destination-cidrs: %w", err)
	}
	if o.timeout <= 0 {
		return errors.New("--delivery-timeout must be positive")
	}
	if o.eventRetention <= 0 || o.deliveryRetention <= 0 {
		return errors.New("--event-retention and --delivery-retention must be positive")
	}
	if o.dedupeWindow <= 0 || o.dedupeWindow > o.eventRetention {
		return errors.New("--dedupe-window must be positive and at most --event-retention")
	}
	if o.failingAfter < 0 {
		return errors.New("--failing-after must not be negative")
	}
	if o.gcPercent < 10 {
		return errors.New("--gc-percent must be at least 10")
	}
	if getenv("GOGC") == "" {
		debug.SetGCPercent(o.gcPercent)
	}
	if o.natsWindow <= 0 || o.natsWindow > o.dedupeWindow {
		return errors.New("--nats-dedupe-window must be positive and at most --dedupe-window")
	}
	// Past NATS's window the event index answers, and it must reach back
	// by the margin: a window within it would make every id check ask the
	// stream first. One as long as the whole duplicate window needs no index.
	if m := events.DedupeMargin(0); o.natsWindow <= m && o.natsWindow < o.dedupeWindow {
		return fmt.Errorf("--nats-dedupe-window must be longer than %v (a publish's timeout and the clocks' skew), or as long as --dedupe-window", m)
	}
	if o.failPeriod < 0 || o.failCount < 0 {
		return errors.New("--disable-after-failing and --disable-after-given-up must not be negative")
	}
	health := subscriptions.HealthPolicy{GivenUp: o.failCount, Period: never(o.failPeriod)}
	if o.rotationOverlap <= 0 {
		return errors.New("--secret-rotation-overlap must be positive")
	}
	if o.certificateWarning < 0 {
		return errors.New("--certificate-warning must not be negative")
	}
	if o.publicURL != "" {
		if err := api.CheckPublicURL(o.publicURL); err != nil {
			return fmt.Errorf("--public-url %q: %w", o.publicURL, err)
		}
	}
	if o.natsListen != "" && o.natsURL != "" {
		return errors.New("--nats-listen exposes the embedded NATS server: it cannot be used with --nats-url")
	}
	if err := checkNATSAuth(o); err != nil {
		return err
	}
	if o.replicas < 1 || o.replicas > 5 {
		return errors.New("--replicas must be from 1 to 5")
	}
	if o.stallAfter <= 0 {
		return errors.New("--stall-after must be positive")
	}
	if o.workers < 1 {
		return errors.New("--workers must be at least 1")
	}
	if o.perSub < 1 {
		return errors.New("--subscription-concurrency must be at least 1")
	}
	if o.tenantInFlight < 1 || o.destMax < 1 {
		return errors.New("--tenant-concurrency and --destination-concurrency must be at least 1")
	}
	if o.storage.MaxStore < 0 || o.storage.EventsMaxBytes < 0 || o.storage.AttemptLogMaxBytes < 0 || o.storage.DeliveriesMaxBytes < 0 {
		return errors.New("--store-max-bytes, --events-max-bytes, --attempt-log-max-bytes and --deliveries-max-bytes must not be negative")
	}
	if o.storage.HighWater <= 0 || o.storage.HighWater > 1 {
		return errors.New("--storage-high-water must be above 0 and at most 1")
	}
	if o.jobRate <= 0 {
		return errors.New("--job-rate must be positive")
	}
	for _, name := range limits.Names {
		flag, ok := limitFlags[name]
		if b, _ := limits.BoundsOf(name); ok && (o.limits.Get(name) < b.Min || o.limits.Get(name) > b.Max) {
			return fmt.Errorf("--%s must be from %d to %d", flag, b.Min, b.Max)
		}
	}
	o.limits.AttemptsInFlight = int64(o.tenantInFlight)
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	if o.debugAddr != "" {
		stopDebug, err := serveDebug(o.debugAddr, logger)
		if err != nil {
			return err
		}
		defer stopDebug()
	}
	srv, err := server.Start(ctx, server.Config{
		Addr:               o.addr,
		DataDir:            o.dataDir,
		NATSURL:            o.natsURL,
		NATSListen:         o.natsListen,
		NATSAuth:           o.natsAuth,
		Replicas:           o.replicas,
		AdminToken:         o.adminToken,
		PublicURL:          o.publicURL,
		RotationOverlap:    o.rotationOverlap,
		CertificateWarning: never(o.certificateWarning),
		Egress:             egress.Policy{AllowHTTP: o.allowHTTP, AllowPrivate: o.allowPrivate, AllowCIDRs: cidrs},
		Dispatcher: dispatcher.Config{
			Schedule: schedule, Timeout: o.timeout, Workers: o.workers, PerSubscription: o.perSub,
			TenantInFlight: o.tenantInFlight, Destinations: destination.Config{Max: o.destMax},
			AttemptRetention: o.deliveryRetention, Health: health, StallAfter: o.stallAfter,
			FailingAfter: never(o.failingAfter),
		},
		Operator: o.operator,
		Events:   events.StreamConfig{Retention: o.eventRetention, DedupeWindow: o.dedupeWindow, NATSWindow: o.natsWindow},
		Jobs:     jobs.Config{Rate: o.jobRate},
		Limits:   o.limits,
		Storage:  o.storage,
		Tracing:  tracing.Config{Getenv: getenv},
		Logger:   logger,
	})
	if err != nil {
		return err
	}
	if o.adminToken == "" {
		logger.Warn("no admin token: the operator API answers 404 (set --admin-token or WEBHOOKD_ADMIN_TOKEN)")
	}
	logger.Info("listening", "url", srv.URL(), "retry_schedule", o.retrySchedule, "attempts", strconv.Itoa(len(schedule)+1))
	select {
	case <-ctx.Done():
	case err := <-srv.Err():
		return fmt.Errorf("http server: %w", err)
	}
	logger.Info("shutting down", "grace", o.shutdownGrace)
	sctx, cancel := context.WithTimeout(context.Background(), o.shutdownGrace)
	defer cancel()
	// Shutdown returns by the deadline, leaving behind what is still
	// closing (storage that cannot flush); should anything else hold it,
	// the process exits a little later all the same. What was not stored
	// is redelivered, as after a SIGKILL.
	stopped := make(chan error, 1)
	go func() { stopped <- srv.Shutdown(sctx) }()
	select {
	case err := <-stopped:
		return err
	case <-time.After(o.shutdownGrace + shutdownSlack):
		return fmt.Errorf("shutdown still running %v after the grace of %v; exiting", shutdownSlack, o.shutdownGrace)
	}
}

// checkNATSAuth refuses an exposed embedded NATS server without
// credentials, and credentials that are not whole.
func checkNATSAuth(o options) error {
	a := o.natsAuth
	if o.natsListen != "" && a.Token == "" && a.User == "" && a.Password == "" && a.NkeySeedFile == "" {
		return errors.New("--nats-listen needs credentials: set --nats-token, or --nats-user and --nats-password, or --nats-nkey-seed (WEBHOOKD_NATS_TOKEN, _USER, _PASSWORD, _NKEY_SEED)")
	}
	if (a.User == "") != (a.Password == "") {
		return errors.New("--nats-user and --nats-password go together")
	}
	if (a.TLSCert == "") != (a.TLSKey == "") {
		return errors.New("--nats-tls-cert and --nats-tls-key go together")
	}
	if a.TLSCert != "" && o.natsListen == "" {
		return errors.New("--nats-tls-cert and --nats-tls-key apply to --nats-listen only")
	}
	return nil
}

// shutdownSlack is how long past its grace a shutdown may run before
// webhookd exits without it.
const shutdownSlack = 5 * time.Second

// never is a package's setting for a flag whose 0 means never: negative
// there, where zero means the default (--certificate-warning,
// --failing-after, --disable-after-failing).
func never[T int | time.Duration](v T) T { return cmp.Or(v, -1) }
