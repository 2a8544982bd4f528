package events

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// HeaderWatermillUUID is where Watermill's NATS marshaler keeps a message's
// UUID; the publisher sets it so Watermill subscribers see the event id.
const HeaderWatermillUUID = "_watermill_message_uuid"

// ErrPublish is wrapped by every publish failure.
var ErrPublish = errors.New("publish events")

// Publisher publishes to JetStream asynchronously and awaits the
// acknowledgements of a whole batch together, rather than one round trip
// per message as Watermill's own NATS publisher does.
//
// It implements Watermill's message.Publisher, so producers and routers see
// the Watermill seam; PublishEvents is the typed path for platform services.
// A Publisher is safe for concurrent use.
type Publisher struct {
	js jetstream.JetStream
	// ackTimeout bounds the wait for one batch's acknowledgements.
	ackTimeout time.Duration
	// types, when set, refuses data that fails its type's schema (see
	// WithTypes).
	types Source
}

var _ message.Publisher = (*Publisher)(nil)

// NewPublisher returns a publisher on js. The JetStream context should be
// made with jetstream.WithPublishAsyncMaxPending large enough for the
// biggest batch.
func NewPublisher(js jetstream.JetStream) *Publisher {
	return &Publisher{js: js, ackTimeout: 10 * time.Second}
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
	return PublishAll(ctx, p.js, p.ackTimeout, msgs)
}

// Msg is the NATS message that carries e on its subject; with dedupe it
// carries MsgID(e.TenantID, e.ID) as its JetStream message id.
func (e *Event) Msg(dedupe bool) *nats.Msg {
	h := nats.Header{HeaderEventID: {e.ID}, HeaderWatermillUUID: {e.ID}}
	if dedupe {
		h[nats.MsgIdHdr] = []string{MsgID(e.TenantID, e.ID)}
	}
	return &nats.Msg{Subject: Subject(e.TenantID, e.Type), Header: h, Data: e.Marshal()}
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
		msgs[i] = &nats.Msg{Subject: topic, Header: h, Data: m.Payload}
	}
	ctx := context.Background()
	if len(messages) > 0 {
		ctx = messages[0].Context()
	}
	return PublishAll(ctx, p.js, p.ackTimeout, msgs)
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
// acknowledgements, at most timeout. It returns the first error seen,
// wrapped in ErrPublish; messages acknowledged before it stay stored.
func PublishAll(ctx context.Context, js jetstream.JetStream, timeout time.Duration, msgs []*nats.Msg) error {
	futures, err := PublishAsync(ctx, js, msgs)
	if err != nil {
		return err
	}
	return AwaitAll(ctx, timeout, futures)
}

// PublishAsync starts publishing msgs and returns their futures. When the
// client's window of pending acknowledgements is full it waits for room, as
// long as ctx allows.
func PublishAsync(ctx context.Context, js jetstream.JetStream, msgs []*nats.Msg) ([]jetstream.PubAckFuture, error) {
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
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return fmt.Errorf("%w to %s: %w", ErrPublish, f.Msg().Subject, err)
		case <-timer.C:
			return fmt.Errorf("%w: no acknowledgement within %s", ErrPublish, timeout)
		case <-ctx.Done():
			return fmt.Errorf("%w: %w", ErrPublish, ctx.Err())
		}
	}
	return nil
}
