// Package opevents raises the operational events: what the product tells
// a tenant, and the operator, about itself (an endpoint failing,
// recovered, disabled, a delivery given up, a limit near or exceeded, a
// job finished). Each event goes to its tenant, as an event of an
// internal type its subscriptions may name, and a copy of it to the
// operator's tenant, whose one subscription is the operator's endpoint;
// each is written once to the log, by the replica that raised it.
//
// Exactly once across replicas: the events of a delivery's outcome are
// raised by the one replica that made the attempt (an endpoint's run of
// failures by compare-and-set, see subscriptions.Store.RecordAttempt), a
// job's end by the runner whose write recorded it; the events every
// replica may find due (a tenant's limit this hour, a certificate near
// its expiry) are raised by the one replica whose create of the event's
// key in the OnceBucket succeeds (see Once), not by the events stream's
// duplicate window, which is short. Each carries an id made of what it
// is about, published as the JetStream message id, so that a publish
// tried again is stored once.
package opevents

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/onestack/webhooks/events"
	"github.com/onestack/webhooks/internal/jsretry"
)

// limit.near is raised at nearNum/nearDen of a limit: 80 %.
const nearNum, nearDen = 4, 5

// Near reports whether used has reached 80 % of max.
func Near(max, used int64) bool { return max > 0 && used*nearDen >= max*nearNum }

// Config tunes an Emitter; the zero value means the defaults.
type Config struct {
	// Operator is the tenant that gets a copy of every operational event
	// of every other tenant; empty: none.
	Operator string
	// Queue bounds the events waiting to be published in the background
	// (default 1,024): past it they are dropped, counted and logged.
	Queue int
	// Timeout bounds one background publish (default 10 s).
	Timeout time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Once decides which replica raises the events every replica may find
	// due; nil: the events stream's duplicate window does, within it only.
	Once *Once
}

func (c Config) withDefaults() Config {
	if c.Queue <= 0 {
		c.Queue = 1024
	}
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Emitter builds, logs and publishes operational events. A nil *Emitter
// raises events to their tenant only, with no copy and no log line. It is
// safe for concurrent use.
type Emitter struct {
	cfg    Config
	js     jetstream.JetStream
	logger *slog.Logger
	raised *prometheus.CounterVec
	drops  prometheus.Counter

	queue chan queued
	done  chan struct{}

	mu     sync.Mutex
	closed bool
	// once holds the limit events raised this hour by this replica, so
	// that a tenant pressing on its limit costs no publish per request.
	once     map[string]struct{}
	onceHour int64
}

// New starts an Emitter publishing on js; Close stops it.
func New(js jetstream.JetStream, cfg Config, reg prometheus.Registerer, logger *slog.Logger) *Emitter {
	cfg = cfg.withDefaults()
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	e := &Emitter{
		cfg: cfg, js: js, logger: logger,
		queue: make(chan queued, cfg.Queue),
		done:  make(chan struct{}),
		once:  make(map[string]struct{}),
	}
	e.raised, e.drops = newCounters()
	if reg != nil {
		reg.MustRegister(e.raised, e.drops)
	}
	go e.run()
	return e
}

func newCounters() (*prometheus.CounterVec, prometheus.Counter) {
	raised := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "webhooks_operational_events_total", Help: "Operational events raised by this replica (each once in the cluster), by type.",
	}, []string{"type"})
	for _, t := range types {
		raised.WithLabelValues(t)
	}
	drops := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "webhooks_operational_events_dropped_total", Help: "Operational events not raised because the queue of background publishes was full or the publish failed (each is logged).",
	})
	return raised, drops
}

// types are the operational event types.
var types = []string{events.TypeSubscriptionFailing, events.TypeSubscriptionRecovered, events.TypeSubscriptionDisabled,
	events.TypeDeliveryExhausted, events.TypeLimitNear, events.TypeLimitExceeded, events.TypeJobFinished,
	events.TypeCertificateExpiring}

// Operator is the tenant that gets the copies, or "".
func (e *Emitter) Operator() string {
	if e == nil {
		return ""
	}
	return e.cfg.Operator
}

// Msgs returns the messages that raise ev: one to its tenant and, unless
// ev is the operator's own, a copy to the operator; each carries its
// tenant-scoped event id as its JetStream message id. It writes ev's log
// line, so it is called once per event, by the replica that raises it.
func (e *Emitter) Msgs(ev events.Event) []*nats.Msg {
	msgs := []*nats.Msg{ev.Msg(true)}
	if e == nil {
		return msgs
	}
	e.raised.WithLabelValues(ev.Type).Inc()
	e.log(ev)
	if op := e.cfg.Operator; op != "" && ev.TenantID != op {
		cp := ev
		cp.TenantID = op
		msgs = append(msgs, cp.Msg(true))
	}
	return msgs
}

// about is what an operational event's log line names, from its data.
type about struct {
	SubscriptionID string `json:"subscriptionId"`
	URL            string `json:"url"`
	Reason         string `json:"reason"`
	Limit          string `json:"limit"`
	Max            int64  `json:"max"`
	Used           int64  `json:"used"`
	JobID          string `json:"jobId"`
	Status         string `json:"status"`
	Error          string `json:"error"`
	LastError      string `json:"lastError"`
	DeliveryID     string `json:"deliveryId"`
	ExpiresAt      string `json:"certificateExpiresAt"`
	Expired        bool   `json:"expired"`
}

// log writes ev's one line: at Warn for what needs someone's attention
// (an endpoint failing or disabled, a delivery given up, a limit
// exceeded, a job failed), else at Info.
func (e *Emitter) log(ev events.Event) {
	var a about
	_ = json.Unmarshal(ev.Data, &a)
	level := slog.LevelInfo
	switch ev.Type {
	case events.TypeSubscriptionFailing, events.TypeSubscriptionDisabled, events.TypeDeliveryExhausted, events.TypeLimitExceeded,
		events.TypeCertificateExpiring:
		level = slog.LevelWarn
	case events.TypeJobFinished:
		if a.Status != "done" {
			level = slog.LevelWarn
		}
	}
	attrs := []slog.Attr{slog.String("type", ev.Type), slog.String("tenant", ev.TenantID), slog.String("event", ev.ID)}
	add := func(k, v string) {
		if v != "" {
			attrs = append(attrs, slog.String(k, v))
		}
	}
	add("subscription", a.SubscriptionID)
	add("url", a.URL)
	add("delivery", a.DeliveryID)
	add("reason", a.Reason)
	add("last_error", a.LastError)
	add("limit", a.Limit)
	if a.Limit != "" {
		attrs = append(attrs, slog.Int64("max", a.Max), slog.Int64("used", a.Used))
	}
	add("job", a.JobID)
	add("status", a.Status)
	add("err", a.Error)
	add("certificate_expires_at", a.ExpiresAt)
	if ev.Type == events.TypeCertificateExpiring {
		attrs = append(attrs, slog.Bool("expired", a.Expired))
	}
	e.logger.LogAttrs(context.Background(), level, "operational event", attrs...)
}

// queued is an event waiting to be raised in the background, with the
// key that decides which replica raises it (see Once) and how long that
// decision holds; no key: the replica that queued it raises it.
type queued struct {
	ev   events.Event
	once string
	ttl  time.Duration
}

// Publish raises ev in the background: it never waits for NATS. Past the
// queue's bound the event is dropped, counted and logged.
func (e *Emitter) Publish(ev events.Event) {
	e.enqueue(queued{ev: ev})
}

// enqueue queues q without waiting; past the bound it is dropped.
func (e *Emitter) enqueue(q queued) {
	if e == nil {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return
	}
	select {
	case e.queue <- q:
	default:
		e.drops.Inc()
		e.logger.Warn("operational event dropped: too many waiting to be published", "type", q.ev.Type, "tenant", q.ev.TenantID, "event", q.ev.ID)
	}
}

// enqueueWait queues q, waiting for room until ctx ends (a sweep in the
// background may wait; a request never does). It reports whether q was
// queued.
func (e *Emitter) enqueueWait(ctx context.Context, q queued) bool {
	for {
		e.mu.Lock()
		if e.closed {
			e.mu.Unlock()
			return false
		}
		select {
		case e.queue <- q:
			e.mu.Unlock()
			return true
		default:
		}
		e.mu.Unlock()
		t := time.NewTimer(50 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-t.C:
		}
	}
}

func (e *Emitter) run() {
	defer close(e.done)
	for q := range e.queue {
		ctx, cancel := context.WithTimeout(context.Background(), e.cfg.Timeout)
		err := e.raise(ctx, q)
		cancel()
		if err != nil {
			ev := q.ev
			e.drops.Inc()
			e.logger.Warn("operational event not published", "type", ev.Type, "tenant", ev.TenantID, "event", ev.ID, "err", err)
		}
	}
}

// raise publishes q's event to its tenant, then counts it, logs it and
// sends the operator's copy: the one replica that raises it does. With a
// once key, that is the replica whose claim of the key succeeded (the
// others do nothing); without one, the replica whose publish stored it
// (one that finds it already stored, another replica having raised the
// same event under the same id, does nothing).
func (e *Emitter) raise(ctx context.Context, q queued) error {
	ev := q.ev
	claimed := false
	if q.once != "" && e.cfg.Once != nil {
		won, err := e.cfg.Once.Claim(ctx, q.once, q.ttl)
		if err != nil || !won {
			return err
		}
		claimed = true
	}
	var dup bool
	err := jsretry.Do(ctx, jsretry.Unanswered, func(ctx context.Context) error {
		ack, err := e.js.PublishMsg(ctx, ev.Msg(true))
		if err == nil {
			dup = ack.Duplicate
		}
		return err
	})
	// A claimed event is this replica's to raise: a duplicate is its own
	// publish, tried again after an answer was lost.
	if err != nil || (dup && !claimed) {
		return err
	}
	msgs := e.Msgs(ev)[1:] // logs it; the tenant's message is stored
	if len(msgs) == 0 {
		return nil
	}
	return events.PublishAll(ctx, e.js, e.cfg.Timeout, msgs)
}

// Close stops taking events and waits, until ctx ends, for those queued to
// be published.
func (e *Emitter) Close(ctx context.Context) {
	if e == nil {
		return
	}
	e.mu.Lock()
	if !e.closed {
		e.closed = true
		close(e.queue)
	}
	e.mu.Unlock()
	select {
	case <-e.done:
	case <-ctx.Done():
	}
}

// Limit events.

// LimitNear raises limit.near for tenant's limit at used of max, if used
// is 80 % of max or more: at most once an hour per tenant and limit.
func (e *Emitter) LimitNear(tenant, limit string, max, used int64) {
	if !Near(max, used) {
		return
	}
	e.limit(events.TypeLimitNear, tenant, limit, max, used)
}

// LimitExceeded raises limit.exceeded for a request of tenant refused at
// limit: at most once an hour per tenant and limit.
func (e *Emitter) LimitExceeded(tenant, limit string, max, used int64) {
	e.limit(events.TypeLimitExceeded, tenant, limit, max, used)
}

func (e *Emitter) limit(typ, tenant, limit string, max, used int64) {
	if e == nil || tenant == "" || tenant == e.cfg.Operator {
		return
	}
	now := e.cfg.Now().UTC()
	id := LimitEventID(typ, limit, now)
	key := tenant + "." + id
	if !e.first(key, now) {
		return
	}
	data, _ := json.Marshal(limitData{TenantID: tenant, Limit: limit, Max: max, Used: used, At: now})
	e.enqueue(queued{ev: events.Event{ID: id, Type: typ, TenantID: tenant, OccurredAt: now, Data: data}, once: key, ttl: limitTTL})
}

// limitTTL is how long the cluster remembers that a limit event of an
// hour was raised: past the hour its key names, with room for replicas'
// clocks a little apart.
const limitTTL = 2 * time.Hour

type limitData struct {
	TenantID string    `json:"tenantId"`
	Limit    string    `json:"limit"`
	Max      int64     `json:"max"`
	Used     int64     `json:"used"`
	At       time.Time `json:"at"`
}

// LimitEventID is the id of the limit event typ of limit in the hour of
// now: the same on every replica, so that the hour's one event has one
// key in the once bucket (with its tenant) and one message id (its tenant
// scopes it, see events.MsgID).
func LimitEventID(typ, limit string, now time.Time) string {
	kind := strings.ReplaceAll(typ, ".", "-")
	return events.IDPrefix + kind + "_" + limit + "_" + now.UTC().Format("2006010215")
}

// first reports whether key is new this hour, and remembers it.
func (e *Emitter) first(key string, now time.Time) bool {
	hour := now.Unix() / 3600
	e.mu.Lock()
	defer e.mu.Unlock()
	if hour != e.onceHour {
		clear(e.once)
		e.onceHour = hour
	}
	if _, ok := e.once[key]; ok {
		return false
	}
	e.once[key] = struct{}{}
	return true
}
