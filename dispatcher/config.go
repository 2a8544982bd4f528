// Package dispatcher turns events into webhooks.
//
// The fan-out reads each event once from the events stream, matches it
// against the in-memory subscription index and puts one delivery per
// matching subscription on that subscription's in-memory queue; the event
// is acknowledged once every delivery of it has succeeded or been handed
// durably to a waiting place. Workers sign and POST deliveries and append
// every outcome to the attempt log (package deliverylog). Only what must
// wait is stored: a retry, as a message schedule; a delivery whose
// subscription has no room in memory, or whose subscription is paced or
// FIFO, as a small "parked" record that names the event by its stream
// sequence (never its body) and is read back at that subscription's own
// pace by a consumer made on demand.
package dispatcher

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/onestack/webhooks/deliverylog"
	"github.com/onestack/webhooks/destination"
	"github.com/onestack/webhooks/egress"
	"github.com/onestack/webhooks/opevents"
	"github.com/onestack/webhooks/subscriptions"
	"github.com/onestack/webhooks/tracing"
)

// DefaultSchedule is the wait before each attempt after the first.
var defaultSchedule = []time.Duration{
	5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour,
	5 * time.Hour, 10 * time.Hour, 10 * time.Hour,
}

// DefaultSchedule returns the default retry schedule: the waits before the
// 2nd, 3rd, … attempt (8 attempts over about 28 hours).
func DefaultSchedule() []time.Duration { return append([]time.Duration(nil), defaultSchedule...) }

// ParseSchedule parses a comma-separated list of Go durations, such as
// "5s,5m,30m". An empty string is an empty schedule: one attempt only.
func ParseSchedule(s string) ([]time.Duration, error) {
	var out []time.Duration
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		d, err := time.ParseDuration(f)
		if err != nil {
			return nil, fmt.Errorf("parse retry schedule entry %q: %w", f, err)
		}
		if d < 0 {
			return nil, fmt.Errorf("parse retry schedule entry %q: negative wait", f)
		}
		out = append(out, d)
	}
	return out, nil
}

// Config tunes the dispatcher. The zero value means the defaults.
type Config struct {
	// Schedule is the wait before each attempt after the first; nil means
	// DefaultSchedule. Use an empty non-nil slice for a single attempt.
	Schedule []time.Duration
	// Jitter spreads each wait by ±Jitter of itself (default 0.2; negative
	// means none).
	Jitter float64
	// Timeout bounds one attempt (default 15 s).
	Timeout time.Duration
	// Workers is how many attempts may be in flight at once (default 512).
	Workers int
	// PerSubscription caps one subscription's attempts in flight, so a slow
	// endpoint cannot take every worker (default 64: as many as the bare
	// client the benchmarks compare with keeps in flight).
	PerSubscription int
	// TenantInFlight is a tenant's share of attempts in flight while other
	// tenants have work waiting, and the most of its attempts that may run
	// past LendFor at once (default 256). Alone, a tenant may have more.
	// TenantLimit, when set, gives a tenant's own value (zero: this one).
	TenantInFlight int
	TenantLimit    func(tenant string) int
	// LendFor is how long an attempt holds a worker of the pool: past it,
	// another worker takes its place and the attempt goes on outside the
	// pool (default 1 s).
	LendFor time.Duration
	// Destinations bounds attempts per destination (scheme, host, port):
	// its adaptive limit and breaker.
	Destinations destination.Config
	// QueueWait is how much work, in time at the measured completion rate,
	// waits in memory: the whole queue's budget, and one subscription's
	// room before a slow one's deliveries are parked (default 5 s).
	QueueWait time.Duration
	// QueuePerSubscription caps one subscription's deliveries waiting in
	// memory, whatever its speed (default 10,000).
	QueuePerSubscription int
	// FanoutPending bounds the events a replica holds in memory, read but
	// not yet acknowledged because some of their deliveries are still to be
	// made (default 8,192). Past it, events wait in the stream.
	FanoutPending int
	// DedupeWindow is how long the deliveries stream remembers the ids of
	// parked records and schedules, so a fan-out repeated after a crash
	// never doubles one (default 2 minutes).
	DedupeWindow time.Duration
	// DeliveriesMaxBytes bounds the deliveries stream (parked records and
	// scheduled retries; 0: no bound). JetStream refuses to schedule
	// messages in a stream that discards new ones, so at the bound the
	// oldest are dropped (DiscardOld), and with them the deliveries they
	// park: the bound is a tenth of the store by default, and /readyz and
	// webhooks_stream_bytes show the stream well before it.
	DeliveriesMaxBytes int64
	// AttemptRetention is how long the attempt log keeps deliveries
	// (default 30 days).
	AttemptRetention time.Duration
	// StallAfter is how long outcomes may wait to be stored, or the
	// fan-out's consumer may fail, before Stalled reports the dispatcher
	// stuck (default 30 s).
	StallAfter time.Duration
	// Health says when an endpoint whose deliveries keep being given up is
	// disabled. The zero value means after 5 days of failures with no
	// success; a negative Period and a zero GivenUp mean never.
	Health subscriptions.HealthPolicy
	// FailingAfter is how many attempts in a row must fail for an endpoint
	// to be failing, which raises subscription.failing once per run of
	// failures, and subscription.recovered at its first success after
	// (default 5; negative: never).
	FailingAfter int
	// Operational raises the operational events of delivery outcomes (to
	// the tenant, a copy to the operator, a log line); nil raises them to
	// the tenant only.
	Operational *opevents.Emitter
	// Replicas is the streams' replication factor (default 1).
	Replicas int
	// Egress is the destination policy of the HTTP client.
	Egress egress.Policy
	// UserAgent is sent with every webhook.
	UserAgent string
	// Tracer makes the fan-out's and each attempt's spans, in the trace
	// each event was stored with, when tracing is on; nil is off. On or
	// off, every webhook carries a traceparent unless its subscription
	// turned it off.
	Tracer *tracing.Tracer
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// DefaultFailingAfter is Config.FailingAfter's default.
const DefaultFailingAfter = 5

// Defaults of Config's fields that an operator sets (cmd/webhookd's flags
// read them).
const (
	// DefaultTimeout is Config.Timeout's default: one attempt's bound.
	DefaultTimeout = 15 * time.Second
	// DefaultWorkers is Config.Workers's default: attempts in flight.
	DefaultWorkers = 512
	// DefaultPerSubscription is Config.PerSubscription's default.
	DefaultPerSubscription = 64
	// DefaultTenantInFlight is Config.TenantInFlight's default.
	DefaultTenantInFlight = 256
	// DefaultStallAfter is Config.StallAfter's default.
	DefaultStallAfter = 30 * time.Second
	// DefaultDisableAfter is Config.Health.Period's default: a
	// subscription whose deliveries have been given up, none succeeding,
	// for this long is disabled.
	DefaultDisableAfter = 5 * 24 * time.Hour
)

// failing is the policy of FailingAfter.
func (c Config) failing() subscriptions.FailingPolicy {
	return subscriptions.FailingPolicy{After: max(c.FailingAfter, 0)}
}

func (c Config) withDefaults() Config {
	if c.Schedule == nil {
		c.Schedule = DefaultSchedule()
	}
	if c.Jitter == 0 {
		c.Jitter = 0.2
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Workers <= 0 {
		c.Workers = DefaultWorkers
	}
	if c.PerSubscription <= 0 {
		c.PerSubscription = DefaultPerSubscription
	}
	if c.TenantInFlight <= 0 {
		c.TenantInFlight = DefaultTenantInFlight
	}
	if c.LendFor <= 0 {
		c.LendFor = time.Second
	}
	if c.QueueWait <= 0 {
		c.QueueWait = 5 * time.Second
	}
	if c.QueuePerSubscription <= 0 {
		c.QueuePerSubscription = 10_000
	}
	if c.FanoutPending <= 0 {
		c.FanoutPending = 8192
	}
	if c.DedupeWindow <= 0 {
		c.DedupeWindow = 2 * time.Minute
	}
	if c.StallAfter <= 0 {
		c.StallAfter = DefaultStallAfter
	}
	if c.AttemptRetention <= 0 {
		c.AttemptRetention = deliverylog.DefaultRetention
	}
	if c.Replicas <= 0 {
		c.Replicas = 1
	}
	if c.FailingAfter == 0 {
		c.FailingAfter = DefaultFailingAfter
	}
	if c.Health == (subscriptions.HealthPolicy{}) {
		c.Health.Period = DefaultDisableAfter
	}
	if c.UserAgent == "" {
		c.UserAgent = "onestack-webhooks/dev"
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	var errs []error
	if c.Jitter >= 1 {
		errs = append(errs, errors.New("jitter must be below 1"))
	}
	if c.Workers < 0 || c.PerSubscription < 0 || c.QueuePerSubscription < 0 || c.FanoutPending < 0 {
		errs = append(errs, errors.New("worker counts must not be negative"))
	}
	return errors.Join(errs...)
}

// Attempts returns how many attempts a delivery gets in all.
func (c Config) Attempts() int { return len(c.Schedule) + 1 }

// wait returns the jittered wait before attempt n+1, after attempt n
// (1-based) failed, and whether there is one.
func (c Config) wait(n int) (time.Duration, bool) {
	if n < 1 || n > len(c.Schedule) {
		return 0, false
	}
	d := c.Schedule[n-1]
	if c.Jitter > 0 && d > 0 {
		f := 1 + c.Jitter*(2*rand.Float64()-1)
		d = time.Duration(float64(d) * f)
	}
	return d, true
}
