package dispatcher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/onestack/webhooks/events"
	"github.com/onestack/webhooks/subscriptions"
)

// Errors of the read side.
var (
	ErrNotFound  = errors.New("delivery not found")
	ErrEventGone = errors.New("the event of this delivery is no longer retained")
)

// Delivery reads one of tenant's deliveries: one lookup, since the id names
// its subscription and the log keeps one snapshot per delivery.
func (d *Dispatcher) Delivery(ctx context.Context, tenant, id string) (Delivery, error) {
	sub, ok := SubscriptionOf(id)
	if !ok {
		return Delivery{}, fmt.Errorf("delivery %s: %w", id, ErrNotFound)
	}
	m, err := d.attempts.GetLastMsgForSubject(ctx, deliverySubject(tenant, sub, id))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return Delivery{}, fmt.Errorf("delivery %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Delivery{}, fmt.Errorf("read delivery %s: %w", id, err)
	}
	var dlv Delivery
	if err := json.Unmarshal(m.Data, &dlv); err != nil {
		return Delivery{}, fmt.Errorf("decode delivery %s: %w", id, err)
	}
	return dlv, nil
}

// Deliveries lists a subscription's deliveries, newest first, with the
// given status ("" for all), among those created before the delivery id
// before ("" for the newest). It returns up to limit and whether more may
// follow.
//
// It lists the subscription's delivery subjects from the stream, which
// costs in proportion to the deliveries the subscription has retained; a
// page then costs one lookup per delivery read.
func (d *Dispatcher) Deliveries(ctx context.Context, tenant, sub, status, before string, limit int) ([]Delivery, bool, error) {
	prefix := deliverySubject(tenant, sub, "")
	info, err := d.attempts.Info(ctx, jetstream.WithSubjectFilter(prefix+"*"))
	if err != nil {
		return nil, false, fmt.Errorf("list deliveries of %s: %w", sub, err)
	}
	ids := make([]string, 0, len(info.State.Subjects))
	for subj := range info.State.Subjects {
		id := strings.TrimPrefix(subj, prefix)
		if before == "" || id < before {
			ids = append(ids, id)
		}
	}
	// Ids sort by creation time: newest first is descending order.
	slices.SortFunc(ids, func(a, b string) int { return strings.Compare(b, a) })
	var out []Delivery
	for i, id := range ids {
		if len(out) == limit {
			return out, i < len(ids), nil
		}
		dlv, err := d.Delivery(ctx, tenant, id)
		if errors.Is(err, ErrNotFound) {
			continue // expired between the listing and the read
		}
		if err != nil {
			return nil, false, err
		}
		if status == "" || dlv.Status == status {
			out = append(out, dlv)
		}
	}
	return out, false, nil
}

// Retry makes exactly one more attempt of a delivery now, whatever its
// status; the delivery's status becomes that attempt's outcome.
func (d *Dispatcher) Retry(ctx context.Context, tenant, id string) (Delivery, error) {
	dlv, err := d.Delivery(ctx, tenant, id)
	if err != nil {
		return Delivery{}, err
	}
	body, err := d.eventBody(ctx, tenant, dlv.EventID, dlv.EventSeq)
	if err != nil {
		return Delivery{}, err
	}
	t := task{tenant: tenant, sub: dlv.SubscriptionID, delivery: dlv.ID, eventID: dlv.EventID, eventType: dlv.EventType,
		eventSeq: dlv.EventSeq, attempt: len(dlv.Attempts) + 1, created: dlv.CreatedAt, history: dlv.Attempts, manual: true}
	now := d.cfg.Now().UTC()
	dlv.Status, dlv.NextAttemptAt = StatusPending, &now
	if err := events.PublishAll(ctx, d.js, ackTimeout, []*nats.Msg{dlv.msg(), newTaskMsg(&t, "", body)}); err != nil {
		return Delivery{}, fmt.Errorf("retry delivery %s: %w", id, err)
	}
	return dlv, nil
}

// eventBody reads a retained event's body, checking it is the event meant.
func (d *Dispatcher) eventBody(ctx context.Context, tenant, eventID string, seq uint64) ([]byte, error) {
	if seq == 0 {
		return nil, ErrEventGone
	}
	m, err := d.eventStream.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, ErrEventGone
	}
	if err != nil {
		return nil, fmt.Errorf("read event %s: %w", eventID, err)
	}
	t, _, perr := events.ParseSubject(m.Subject)
	if perr != nil || t != tenant || m.Header.Get(events.HeaderEventID) != eventID {
		return nil, ErrEventGone
	}
	return m.Data, nil
}

// Replay delivers again to sub every retained event of its types that
// occurred from since to until (zero: now), as new deliveries, and returns
// how many. It reads the tenant's events in stream order.
func (d *Dispatcher) Replay(ctx context.Context, sub subscriptions.Subscription, since, until time.Time) (int, error) {
	if until.IsZero() {
		until = d.cfg.Now()
	}
	cons, err := d.js.OrderedConsumer(ctx, events.StreamName, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{events.SubjectPrefix + sub.TenantID + ".>"},
		DeliverPolicy:  jetstream.DeliverByStartTimePolicy,
		OptStartTime:   &since,
	})
	if err != nil {
		return 0, fmt.Errorf("replay: read events: %w", err)
	}
	now := d.cfg.Now().UTC()
	n := 0
	var futures []jetstream.PubAckFuture
	for {
		batch, err := cons.FetchNoWait(256)
		if err != nil {
			return n, fmt.Errorf("replay: read events: %w", err)
		}
		got, done := 0, false
		for m := range batch.Messages() {
			got++
			md, err := m.Metadata()
			if err != nil {
				return n, fmt.Errorf("replay: event metadata: %w", err)
			}
			if md.Timestamp.After(until) {
				done = true
				break
			}
			_, typ, perr := events.ParseSubject(m.Subject())
			if perr != nil || !sub.Wants(typ) {
				continue
			}
			id := m.Headers().Get(events.HeaderEventID)
			t := task{tenant: sub.TenantID, sub: sub.ID, delivery: NewDeliveryID(sub.ID), eventID: id, eventType: typ,
				eventSeq: md.Sequence.Stream, attempt: 1, created: now, ordered: sub.Ordered()}
			f, err := events.PublishAsync(ctx, d.js, []*nats.Msg{newTaskMsg(&t, "", m.Data())})
			if err != nil {
				return n, fmt.Errorf("replay: %w", err)
			}
			futures = append(futures, f...)
			n++
			if md.NumPending == 0 {
				done = true
			}
		}
		if err := batch.Error(); err != nil {
			return n, fmt.Errorf("replay: read events: %w", err)
		}
		if done || got == 0 {
			break
		}
	}
	if err := events.AwaitAll(ctx, ackTimeout, futures); err != nil {
		return n, fmt.Errorf("replay: %w", err)
	}
	return n, nil
}
