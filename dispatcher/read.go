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

	"github.com/onestack/webhooks/deliverylog"
	"github.com/onestack/webhooks/events"
	"github.com/onestack/webhooks/problem"
	"github.com/onestack/webhooks/subscriptions"
)

// ErrEventGone means the event of a delivery is no longer retained, so it
// cannot be sent again (problem.ErrNotFound).
var ErrEventGone = problem.New(problem.ErrNotFound, "the event of this delivery is no longer retained")

// receiveParked takes a parked record from a lane's consumer and queues its
// delivery, unless the attempt log shows it was overtaken: made already
// (a record delivered again after a crash), finished, or superseded by a
// manual retry.
func (d *Dispatcher) receiveParked(m jetstream.Msg) {
	k, ok := parseParkSubject(m.Subject())
	rec, err := decodeParkRecord(m.Data())
	if !ok || err != nil {
		d.logger.Error("parked deliveries: drop a malformed record", "subject", m.Subject(), "err", err)
		d.settleMsg(m, opTerm, 0)
		return
	}
	dl := &delivery{
		id: rec.Delivery, tenant: k.tenant, sub: k.sub, attempt: rec.Attempt,
		created: time.Unix(0, rec.Created).UTC(), manual: rec.Manual, parked: m, ordered: k.lane == laneOrdered,
	}
	if rec.Requested != 0 {
		dl.requested = time.Unix(0, rec.Requested).UTC()
	}
	redelivered := false
	if md, err := m.Metadata(); err == nil {
		redelivered = md.NumDelivered > 1
	}
	if !d.current(d.runCtx, dl, redelivered) {
		d.settleMsg(m, opAck, 0)
		return
	}
	ev, err := d.eventOf(d.runCtx, k.tenant, rec.Event, rec.Seq)
	switch {
	case errors.Is(err, ErrEventGone):
		dl.ev = &event{tenant: k.tenant, id: rec.Event, seq: rec.Seq}
		r := dl.record(deliverylog.StatusFailed)
		d.m.attempts.WithLabelValues(outcomeFailed).Inc()
		d.commit(dl, r, nil)
		return
	case err != nil:
		d.logger.Warn("parked deliveries: read the event; record handed back", "event", rec.Event, "err", err)
		d.settleMsg(m, opNak, time.Second)
		return
	}
	dl.ev = ev
	// Its pace, read through to storage when this replica's index has not
	// seen the subscription yet: a lane read unpaced would burst.
	var pace float64
	switch sub, err := d.subscription(d.runCtx, k.tenant, k.sub); {
	case err == nil:
		pace = paceOf(sub)
	case !errors.Is(err, subscriptions.ErrNotFound):
		d.settleMsg(m, opNak, time.Second)
		return
	}
	d.held.add(m, time.Now())
	d.queue.push(dl, pace, true)
}

// receiveFIFO takes the next of a FIFO subscription's tenant's events, in
// the order they were stored, from that subscription's own consumer on the
// events stream (one outstanding at a time, pinned to one replica), and
// queues its delivery if the subscription wants its type. Once the
// subscription is no longer FIFO, the events stored before the switch
// are still delivered in order; reading one stored after it ends the lane
// (the fan-out has those).
func (d *Dispatcher) receiveFIFO(m jetstream.Msg) {
	tenant, typ, err := events.ParseSubject(m.Subject())
	if err != nil {
		d.settleMsg(m, opTerm, 0)
		return
	}
	md, err := m.Metadata()
	if err != nil {
		d.settleMsg(m, opNak, time.Second)
		return
	}
	subID := strings.TrimPrefix(md.Consumer, "fifo_")
	sub, err := d.subscription(d.runCtx, tenant, subID)
	switch {
	case errors.Is(err, subscriptions.ErrNotFound):
		d.settleMsg(m, opAck, 0)
		return
	case err != nil:
		d.settleMsg(m, opNak, time.Second)
		return
	}
	if !sub.Ordered() && md.Timestamp.After(sub.UpdatedAt) {
		d.parkers.passed(parkKey{tenant: tenant, sub: subID, lane: laneFIFO})
		d.settleMsg(m, opAck, 0)
		return
	}
	if !sub.Wants(typ) || len(d.store.Filter([]*subscriptions.Subscription{sub}, m.Data())) == 0 {
		d.settleMsg(m, opAck, 0) // not its type, or left out by its payload filter
		return
	}
	ev := &event{tenant: tenant, id: m.Headers().Get(events.HeaderEventID), typ: typ, seq: md.Sequence.Stream, body: m.Data()}
	ev.trace = d.cfg.Tracer.Stored(m.Headers(), tenant, ev.id)
	dl := &delivery{id: DeliveryID(md.Timestamp, ev.seq, sub.ID), tenant: tenant, sub: sub.ID, ev: ev, attempt: 1,
		created: md.Timestamp.UTC(), parked: m, ordered: true}
	if !d.current(d.runCtx, dl, md.NumDelivered > 1) {
		d.settleMsg(m, opAck, 0)
		return
	}
	d.held.add(m, time.Now())
	d.queue.push(dl, paceOf(sub), true)
}

// current reports whether a parked record's attempt is still to be made,
// asking the attempt log when the record may have been overtaken; it sets
// the attempt's number from the log where the log knows better (a FIFO
// head retried in place, a record delivered again).
func (d *Dispatcher) current(ctx context.Context, dl *delivery, redelivered bool) bool {
	if dl.attempt == 1 && !dl.manual && !dl.ordered && !redelivered {
		return true // a fresh parking: nothing can have overtaken it
	}
	if !dl.requested.IsZero() {
		return d.currentRequest(ctx, dl, redelivered)
	}
	got, err := d.index.Delivery(ctx, dl.tenant, dl.id)
	if err != nil {
		// Unknown to the log (nothing logged yet), or the log cannot be
		// read: attempt it, at least once.
		return true
	}
	made := len(got.Attempts)
	if made > 0 {
		made = max(made, got.Attempts[made-1].N)
	}
	final := got.Status != deliverylog.StatusPending
	switch {
	case dl.manual:
		// Asked for by hand: made unless the log already has it.
		return made < dl.attempt
	case dl.ordered || redelivered:
		if final {
			return false
		}
		dl.attempt = max(dl.attempt, made+1)
		return true
	}
	// A scheduled retry: void once the delivery finished (a manual retry
	// succeeded) or its attempt was made.
	return !final && made < dl.attempt
}

// currentRequest reports whether the attempt a manual retry asked for at
// dl.requested is still to be made, and numbers it after the attempts the
// log shows. The number Retry reserved is no test: a scheduled attempt in
// flight when the retry was asked for takes it too, and the request's
// attempt must be made all the same (its outcome becomes the status; the
// log numbers it after the other). So a record read for the first time
// is made: no replica can have made it yet. One read again (its reader
// died, or handed it back) was made if the log, brought up to date, shows
// an attempt made at or after the request. A log that cannot be read
// counts as not made: at least once.
func (d *Dispatcher) currentRequest(ctx context.Context, dl *delivery, redelivered bool) bool {
	if redelivered {
		sctx, cancel := context.WithTimeout(ctx, syncWait)
		err := d.index.Sync(sctx)
		cancel()
		if err != nil {
			d.logger.Warn("manual retry: bring the attempt log up to date; the attempt is made", "delivery", dl.id, "err", err)
		}
	}
	got, err := d.index.Delivery(ctx, dl.tenant, dl.id)
	if err != nil {
		return true
	}
	if redelivered && slices.ContainsFunc(got.Attempts, func(a deliverylog.Attempt) bool { return !a.At.Before(dl.requested) }) {
		return false
	}
	dl.attempt = max(dl.attempt, attemptsMade(got)+1)
	return true
}

// syncWait bounds a wait for this replica's attempt log to catch up with
// the stream.
const syncWait = 5 * time.Second

// eventOf reads a retained event by its stream sequence, checking it is
// the event meant.
func (d *Dispatcher) eventOf(ctx context.Context, tenant, id string, seq uint64) (*event, error) {
	if seq == 0 {
		return nil, ErrEventGone
	}
	m, err := d.events.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, ErrEventGone
	}
	if err != nil {
		return nil, fmt.Errorf("read event %s: %w", id, err)
	}
	t, typ, perr := events.ParseSubject(m.Subject)
	if perr != nil || t != tenant || m.Header.Get(events.HeaderEventID) != id {
		return nil, ErrEventGone
	}
	return &event{tenant: tenant, id: id, typ: typ, seq: seq, body: m.Data, trace: d.cfg.Tracer.Stored(m.Header, tenant, id)}, nil
}

// Retry makes exactly one more attempt of a delivery now, whatever its
// status; the delivery's status becomes that attempt's outcome. It cancels
// the delivery's pending scheduled retry, so no later attempt follows.
func (d *Dispatcher) Retry(ctx context.Context, tenant, id string) (deliverylog.Delivery, error) {
	// Read-your-writes: the attempts every replica logged before the
	// request, so the attempt reserved below follows them. (One still in
	// flight may take the same number; see currentRequest.)
	sctx, cancel := context.WithTimeout(ctx, syncWait)
	err := d.index.Sync(sctx)
	cancel()
	if err != nil {
		return deliverylog.Delivery{}, fmt.Errorf("retry delivery %s: %w", id, err)
	}
	dlv, err := d.index.Delivery(ctx, tenant, id)
	if err != nil {
		return deliverylog.Delivery{}, err
	}
	ev, err := d.eventOf(ctx, tenant, dlv.EventID, dlv.EventSeq)
	if err != nil {
		return deliverylog.Delivery{}, err
	}
	if err := d.deliveries.Purge(ctx, jetstream.WithPurgeSubject(schedPrefix+id+".>")); err != nil {
		return deliverylog.Delivery{}, fmt.Errorf("retry delivery %s: cancel its schedule: %w", id, err)
	}
	now := d.cfg.Now().UTC()
	dl := &delivery{id: id, tenant: tenant, sub: dlv.SubscriptionID, ev: ev, attempt: attemptsMade(dlv) + 1,
		created: dlv.CreatedAt, manual: true, requested: now}
	rec := dl.record(deliverylog.StatusPending)
	rec.NextAttemptAt = &now
	// The log first: the attempt's own record then always follows this
	// one, which shows the delivery pending until it comes. (Should this
	// record come late all the same, the log drops it once it shows an
	// attempt made since now.)
	if err := d.wait(ctx, func(done func(error)) { d.commitThen(rec, nil, done) }); err != nil {
		return deliverylog.Delivery{}, fmt.Errorf("retry delivery %s: %w", id, err)
	}
	if err := d.publishParked(ctx, []*nats.Msg{parkMsg(dl, laneUnordered)}); err != nil {
		return deliverylog.Delivery{}, fmt.Errorf("retry delivery %s: %w", id, err)
	}
	d.parkers.want(parkKey{tenant: tenant, sub: dl.sub, lane: laneUnordered}, now)
	dlv.Status, dlv.NextAttemptAt = deliverylog.StatusPending, &now
	return dlv, nil
}

// wait runs an asynchronous operation and waits for its callback or ctx.
func (d *Dispatcher) wait(ctx context.Context, op func(done func(error))) error {
	ch := make(chan error, 1)
	op(func(err error) { ch <- err })
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// publishParked stores parked records and waits until all are stored.
func (d *Dispatcher) publishParked(ctx context.Context, msgs []*nats.Msg) error {
	d.m.parked.Add(float64(len(msgs)))
	return events.PublishAll(ctx, d.js, ackTimeout, msgs)
}

// SendTest delivers a webhook.test event to one subscription only,
// whatever its event types (and outside a FIFO subscription's order), and
// returns the event id. The event is stored like any other, and its
// delivery parked, so it survives a crash and can be retried by hand.
func (d *Dispatcher) SendTest(ctx context.Context, sub subscriptions.Subscription) (string, error) {
	now := d.cfg.Now().UTC()
	data, _ := json.Marshal(map[string]string{"subscriptionId": sub.ID, "message": "This is a test webhook from One Stack."})
	e := events.Event{ID: events.NewID(), Type: events.TypeWebhookTest, TenantID: sub.TenantID, OccurredAt: now, Data: data}
	msg := e.Msg(true)
	d.cfg.Tracer.Stamp(ctx, msg.Header)
	ack, err := d.js.PublishMsg(ctx, msg)
	if err != nil {
		return "", fmt.Errorf("store test event: %w: %w", events.ErrPublish, err)
	}
	ev := &event{tenant: sub.TenantID, id: e.ID, typ: e.Type, seq: ack.Sequence}
	dl := &delivery{id: DeliveryID(now, ack.Sequence, sub.ID), tenant: sub.TenantID, sub: sub.ID, ev: ev, attempt: 1, created: now}
	if err := d.publishParked(ctx, []*nats.Msg{parkMsg(dl, laneUnordered)}); err != nil {
		return "", fmt.Errorf("send test event: %w", err)
	}
	d.parkers.want(parkKey{tenant: sub.TenantID, sub: sub.ID, lane: laneUnordered}, now)
	return e.ID, nil
}
