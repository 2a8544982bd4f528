package events

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/onestack/webhooks/internal/jsretry"
	"github.com/onestack/webhooks/problem"
	"github.com/onestack/webhooks/tracing"
)

// HeaderWatermillUUID is where Watermill's NATS marshaler keeps a message's
// UUID; the publisher sets it so Watermill subscribers see the event id.
const HeaderWatermillUUID = "_watermill_message_uuid"

// ErrPublish is wrapped by every publish failure: the event store did not
// take the events now (problem.ErrUnavailable).
var ErrPublish = problem.New(problem.ErrUnavailable, "publish events")

// ErrStoreFull is wrapped, with ErrPublish, by a publish JetStream refused
// because the stream (or its server's store) is at its byte limit: that
// message was not stored, and is not tried again.
var ErrStoreFull = errors.New("event store full")

// Publisher publishes to JetStream asynchronously and awaits the
// acknowledgements of a whole batch together, rather than one round trip
// per message as Watermill's own NATS publisher does.
//
// It implements Watermill's message.Publisher, so producers and routers see
// the Watermill seam; PublishEvents is the typed path for platform services.
// A Publisher is safe for concurrent use.
type Publisher struct {
	js  jetstream.JetStream
	cfg PublisherConfig
	// types, when set, refuses data that fails its type's schema (see
	// WithTypes).
	types Source
	// timers are the acknowledgement waits' timers, used again from one
	// publish to the next.
	timers *timerPool
}

// timerPool keeps stopped timers for use again. A nil pool makes a new
// timer each time.
type timerPool struct{ pool sync.Pool }

// get returns a timer that fires after d.
func (p *timerPool) get(d time.Duration) *time.Timer {
	if p != nil {
		if t, ok := p.pool.Get().(*time.Timer); ok {
			t.Reset(d)
			return t
		}
	}
	return time.NewTimer(d)
}

// put stops t and keeps it. Since Go 1.23 a stopped timer's channel
// holds no stale tick, so the next get's Reset starts it clean.
func (p *timerPool) put(t *time.Timer) {
	t.Stop()
	if p != nil {
		p.pool.Put(t)
	}
}

// PublisherConfig tunes a Publisher; the zero value means the defaults.
type PublisherConfig struct {
	// AckTimeout bounds one try's wait for a batch's acknowledgements
	// (default 5 s).
	AckTimeout time.Duration
	// Timeout bounds a whole publish, the tries that ride over a leader
	// election included, unless the caller's context ends sooner (default
	// 10 s).
	Timeout time.Duration
	// Tracer makes a producer span per event, child of the caller's
	// context, when tracing is on. On or off (nil), every event is stored
	// with a trace context in its headers (tracing.Stamp): the caller's,
	// or a fresh one.
	Tracer *tracing.Tracer
}

var _ message.Publisher = (*Publisher)(nil)

// DefaultPublishTimeout is PublisherConfig.Timeout's default.
const DefaultPublishTimeout = 10 * time.Second

// NewPublisher returns a publisher on js. The JetStream context should be
// made with jetstream.WithPublishAsyncMaxPending large enough for the
// biggest batch.
func NewPublisher(js jetstream.JetStream, cfg PublisherConfig) *Publisher {
	if cfg.AckTimeout <= 0 {
		cfg.AckTimeout = 5 * time.Second
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultPublishTimeout
	}
	return &Publisher{js: js, cfg: cfg, timers: &timerPool{}}
}

// publish publishes msgs within the publisher's bounds: Timeout from now,
// or ctx's deadline if sooner. The bound is passed on as a time, not as a
// context with a timer of its own: one publish per request makes that
// timer a cost of every event.
func (p *Publisher) publish(ctx context.Context, msgs []*nats.Msg) error {
	deadline := time.Now().Add(p.cfg.Timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	return publishAll(ctx, p.js, p.timers, p.cfg.AckTimeout, deadline, msgs)
}

// PublishEvents publishes evts, each on its subject, and returns once every
// one is stored. With dedupe, the message id is the event id scoped to its
// tenant (MsgID), so an id published again by the same tenant within the
// stream's duplicate window is stored once, while the same id from another
// tenant is another event. The events must be valid.
func (p *Publisher) PublishEvents(ctx context.Context, dedupe bool, evts ...Event) error {
	if err := p.checkEvents(evts); err != nil {
		return err
	}
	msgs := make([]*nats.Msg, len(evts))
	for i := range evts {
		msgs[i] = evts[i].Msg(dedupe)
	}
	if !p.cfg.Tracer.Enabled() {
		for _, m := range msgs {
			p.cfg.Tracer.Stamp(ctx, m.Header)
		}
		return p.publish(ctx, msgs)
	}
	spans := make([]trace.Span, len(evts))
	for i := range evts {
		sctx, span := p.cfg.Tracer.Start(ctx, "publish "+evts[i].Type, trace.WithSpanKind(trace.SpanKindProducer),
			trace.WithAttributes(
				attribute.String("messaging.system", "nats"),
				attribute.String("messaging.operation.type", "send"),
				attribute.String("messaging.destination.name", msgs[i].Subject),
				attribute.String("webhook.event.id", evts[i].ID),
				attribute.String("webhook.event.type", evts[i].Type),
				attribute.String("webhook.tenant.id", evts[i].TenantID),
			))
		p.cfg.Tracer.Stamp(sctx, msgs[i].Header)
		spans[i] = span
	}
	err := p.publish(ctx, msgs)
	for _, span := range spans {
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, "not acknowledged by the event store")
		}
		span.End()
	}
	return err
}

// Msg is the NATS message that carries e on its subject; with dedupe it
// carries MsgID(e.TenantID, e.ID) as its JetStream message id.
func (e *Event) Msg(dedupe bool) *nats.Msg {
	// The message and its header values are one allocation, not four.
	m := &struct {
		msg  nats.Msg
		vals [3]string
	}{vals: [3]string{e.ID, e.ID}}
	// Room for the trace context the publisher stamps.
	h := make(nats.Header, 5)
	h[HeaderEventID] = m.vals[0:1:1]
	h[HeaderWatermillUUID] = m.vals[1:2:2]
	var subject string
	if dedupe {
		// The subject and the message id, Subject and MsgID, are cut
		// from one string.
		both := SubjectPrefix + e.TenantID + "." + e.Type + e.TenantID + ":" + e.ID
		n := len(SubjectPrefix) + len(e.TenantID) + 1 + len(e.Type)
		subject, m.vals[2] = both[:n], both[n:]
		h[nats.MsgIdHdr] = m.vals[2:3:3]
	} else {
		subject = Subject(e.TenantID, e.Type)
	}
	m.msg = nats.Msg{Subject: subject, Header: h, Data: e.Marshal()}
	return &m.msg
}

// MsgID is the JetStream message id of tenant's event id: ids are scoped
// to their tenant, so two tenants never deduplicate each other's events.
func MsgID(tenant, eventID string) string { return tenant + ":" + eventID }

// Publish implements message.Publisher: every message goes to subject
// topic, its UUID is its JetStream message id, scoped to the tenant of an
// event subject (so a retried publish is stored once, and never suppresses
// another tenant's message) and its metadata become headers. For events, build messages
// with NewMessage and topics with Subject.
func (p *Publisher) Publish(topic string, messages ...*message.Message) error {
	if err := p.checkMessages(topic, messages); err != nil {
		return err
	}
	scope := ""
	if tenant, _, err := ParseSubject(topic); err == nil {
		scope = tenant + ":"
	}
	msgs := make([]*nats.Msg, len(messages))
	for i, m := range messages {
		h := make(nats.Header, len(m.Metadata)+2)
		for k, v := range m.Metadata {
			h.Set(k, v)
		}
		h.Set(HeaderWatermillUUID, m.UUID)
		h.Set(nats.MsgIdHdr, scope+m.UUID)
		if _, ok := h[tracing.Header]; !ok {
			// The message's context's trace, or a fresh one: every event
			// is stored with a trace context (a producer's own traceparent
			// metadata is kept as it is).
			p.cfg.Tracer.Stamp(m.Context(), h)
		}
		msgs[i] = &nats.Msg{Subject: topic, Header: h, Data: m.Payload}
	}
	ctx := context.Background()
	if len(messages) > 0 {
		ctx = messages[0].Context()
	}
	return p.publish(ctx, msgs)
}

// Close implements message.Publisher. The connection belongs to the caller.
func (p *Publisher) Close() error { return nil }

// NewMessage wraps an event as a Watermill message whose UUID is the event
// id, for producers that publish through a message.Publisher.
func NewMessage(e Event) *message.Message {
	m := message.NewMessage(e.ID, e.Marshal())
	m.Metadata.Set(HeaderEventID, e.ID)
	return m
}

// PublishAll publishes msgs asynchronously and waits for all their
// acknowledgements, at most timeout per try. Messages the stream did not
// take because it could not answer (a leader election, a reconnection) are
// published again, with backoff, within ctx's deadline: all of those left
// when every message carries a message id (a repeat is deduplicated), only
// those that surely reached no stream otherwise. It returns the last error,
// wrapped in ErrPublish (and ErrStoreFull when the stream refused a message
// at its limit); messages acknowledged before it stay stored.
func PublishAll(ctx context.Context, js jetstream.JetStream, timeout time.Duration, msgs []*nats.Msg) error {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(jsretry.Budget)
	}
	return publishAll(ctx, js, nil, timeout, deadline, msgs)
}

// publishAll is PublishAll within deadline, which bounds every wait as
// ctx's deadline would, with its timers from timers (nil: new ones).
func publishAll(ctx context.Context, js jetstream.JetStream, timers *timerPool, timeout time.Duration, deadline time.Time, msgs []*nats.Msg) error {
	retry := jsretry.Unsent
	if allIdentified(msgs) {
		retry = jsretry.Unanswered
	}
	pending := msgs
	err := jsretry.Until(ctx, deadline, retry, func(ctx context.Context) error {
		futures, err := publishAsync(ctx, js, deadline, pending)
		if err != nil {
			return err
		}
		failed, err := awaitEach(ctx, timers, timeout, deadline, futures)
		pending = append(failed, pending[len(futures):]...)
		return err
	})
	if jsretry.Full(err) {
		return fmt.Errorf("%w: %w", ErrStoreFull, err)
	}
	return err
}

func allIdentified(msgs []*nats.Msg) bool {
	for _, m := range msgs {
		if m.Header.Get(nats.MsgIdHdr) == "" {
			return false
		}
	}
	return true
}

// awaitEach waits for every future, at most timeout and not past
// deadline, and returns the messages not acknowledged, with the first
// error: the deadline passing is context.DeadlineExceeded, as it would be
// from a context.
func awaitEach(ctx context.Context, timers *timerPool, timeout time.Duration, deadline time.Time, futures []jetstream.PubAckFuture) ([]*nats.Msg, error) {
	wait, timedOut := timeout, error(nats.ErrTimeout)
	if left := time.Until(deadline); left < wait {
		wait, timedOut = left, context.DeadlineExceeded
	}
	timer := timers.get(wait)
	defer timers.put(timer)
	var failed []*nats.Msg
	var first error
	for i, f := range futures {
		select {
		case <-f.Ok():
			continue
		case err := <-f.Err():
			if first == nil {
				first = fmt.Errorf("%w to %s: %w", ErrPublish, f.Msg().Subject, err)
			}
		case <-timer.C:
			late := unacknowledged(futures[i:])
			if first == nil && len(late) > 0 {
				if timedOut == context.DeadlineExceeded {
					first = fmt.Errorf("%w: %w", ErrPublish, timedOut)
				} else {
					first = fmt.Errorf("%w: no acknowledgement within %s: %w", ErrPublish, timeout, timedOut)
				}
			}
			return append(failed, late...), first
		case <-ctx.Done():
			late := unacknowledged(futures[i:])
			if first == nil && len(late) > 0 {
				first = fmt.Errorf("%w: %w", ErrPublish, ctx.Err())
			}
			return append(failed, late...), first
		}
		failed = append(failed, f.Msg())
	}
	return failed, first
}

// unacknowledged returns the messages of futures with no acknowledgement
// yet. A wait that ends sees the acknowledgements already in: select
// picks at random among the cases ready, and an event the stream stored
// is not to be answered as failed because the timer fired as its
// acknowledgement came.
func unacknowledged(futures []jetstream.PubAckFuture) []*nats.Msg {
	var late []*nats.Msg
	for _, f := range futures {
		select {
		case <-f.Ok():
		default:
			late = append(late, f.Msg())
		}
	}
	return late
}

// PublishAsync starts publishing msgs and returns their futures. When the
// client's window of pending acknowledgements is full it waits for room, as
// long as ctx allows.
func PublishAsync(ctx context.Context, js jetstream.JetStream, msgs []*nats.Msg) ([]jetstream.PubAckFuture, error) {
	deadline, _ := ctx.Deadline()
	return publishAsync(ctx, js, deadline, msgs)
}

// publishAsync is PublishAsync that waits for room no later than deadline
// (zero: as long as ctx allows).
func publishAsync(ctx context.Context, js jetstream.JetStream, deadline time.Time, msgs []*nats.Msg) ([]jetstream.PubAckFuture, error) {
	futures := make([]jetstream.PubAckFuture, 0, len(msgs))
	for _, m := range msgs {
		for {
			f, err := js.PublishMsgAsync(m)
			if err == nil {
				futures = append(futures, f)
				break
			}
			if !errors.Is(err, jetstream.ErrTooManyStalledMsgs) {
				return futures, fmt.Errorf("%w to %s: %w", ErrPublish, m.Subject, err)
			}
			if !deadline.IsZero() && !time.Now().Before(deadline) {
				return futures, fmt.Errorf("%w: %w", ErrPublish, context.DeadlineExceeded)
			}
			select {
			case <-js.PublishAsyncComplete():
			case <-ctx.Done():
				return futures, fmt.Errorf("%w: %w", ErrPublish, ctx.Err())
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	return futures, nil
}

// AwaitAll waits until every future is acknowledged, or one fails, or
// timeout or ctx ends the wait.
func AwaitAll(ctx context.Context, timeout time.Duration, futures []jetstream.PubAckFuture) error {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for i, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return fmt.Errorf("%w to %s: %w", ErrPublish, f.Msg().Subject, err)
		case <-timer.C:
			if len(unacknowledged(futures[i:])) == 0 {
				return nil
			}
			return fmt.Errorf("%w: no acknowledgement within %s: %w", ErrPublish, timeout, nats.ErrTimeout)
		case <-ctx.Done():
			if len(unacknowledged(futures[i:])) == 0 {
				return nil
			}
			return fmt.Errorf("%w: %w", ErrPublish, ctx.Err())
		}
	}
	return nil
}
