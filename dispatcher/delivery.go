package dispatcher

import (
	"encoding/binary"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/oklog/ulid/v2"
	"go.opentelemetry.io/otel/trace"

	"github.com/onestack/webhooks/deliverylog"
	"github.com/onestack/webhooks/destination"
)

const (
	deliveryPrefix = "dlv_"
	subPrefix      = "sub_"
	ulidLen        = 26
)

// DeliveryID returns the id of the delivery to sub of the event stored at
// stream sequence seq at time at: "dlv_", a ULID made of at and seq, and
// the subscription's ULID. The same event and subscription always give the
// same id, so an event fanned out again (after a crash, or while its
// subscription is disabled) is the same delivery, one record in the log;
// ids still sort by creation time, and name their subscription.
func DeliveryID(at time.Time, seq uint64, sub string) string {
	var u ulid.ULID
	_ = u.SetTime(ulid.Timestamp(at)) // fails only past the year 10889
	var entropy [10]byte
	binary.BigEndian.PutUint64(entropy[:8], seq)
	_ = u.SetEntropy(entropy[:]) // ten bytes: never fails
	return withULID(u, sub)
}

// withULID is "dlv_", u and sub's ULID, made in one buffer: one
// allocation, the string.
func withULID(u ulid.ULID, sub string) string {
	var buf [len(deliveryPrefix) + 2*ulidLen]byte
	b := append(buf[:0], deliveryPrefix...)
	_ = u.MarshalTextTo(b[len(b) : len(b)+ulidLen]) // sized: never fails
	b = append(b[:len(b)+ulidLen], strings.TrimPrefix(sub, subPrefix)...)
	return string(b)
}

// NewDeliveryID returns a fresh id for a delivery to sub that no stored
// event position names, such as a replay's: "dlv_", a new ULID, and the
// subscription's.
func NewDeliveryID(sub string) string {
	return withULID(ulid.Make(), sub)
}

// SubscriptionOf returns the subscription a delivery id belongs to.
func SubscriptionOf(delivery string) (string, bool) {
	rest, ok := strings.CutPrefix(delivery, deliveryPrefix)
	if !ok || len(rest) != 2*ulidLen {
		return "", false
	}
	for _, part := range []string{rest[:ulidLen], rest[ulidLen:]} {
		if _, err := ulid.ParseStrict(part); err != nil {
			return "", false
		}
	}
	return subPrefix + rest[ulidLen:], true
}

// event is an event being delivered: its identity and body, read once.
// When it came from the fan-out, msg is its message in the events stream,
// acknowledged once every delivery of it is settled (remaining reaches
// zero), or handed back if any could not be settled.
type event struct {
	msg       jetstream.Msg
	tenant    string
	id        string
	typ       string
	seq       uint64
	body      []byte
	remaining atomic.Int32
	failed    atomic.Bool
	// again are the messages that brought the event again during its
	// fan-out, settled with it (see fanning).
	again []jetstream.Msg

	// trace is the trace context the event was stored with (or, stored
	// without one, the one derived from its id): the parent of every
	// attempt's span, on any replica, however late.
	trace trace.SpanContext
}

// delivery is one attempt to make, in memory.
type delivery struct {
	id      string
	tenant  string
	sub     string
	ev      *event
	attempt int // the number of the attempt to make, 1-based
	created time.Time
	// manual: asked for by hand, one attempt whatever the subscription's
	// state, and no schedule after it.
	manual bool
	// requested is when a manual retry (Retry) was asked for: its attempt
	// is made once for that request, whatever number the attempt log shows
	// by then (see current). Zero for every other delivery.
	requested time.Time
	// parked is the parked record this delivery was read from; nil for a
	// delivery straight from the fan-out. A parked delivery is settled by
	// acknowledging it, and a failed FIFO one is retried in place by
	// handing it back with the schedule's delay.
	parked  jetstream.Msg
	ordered bool

	// Set by the queue as the attempt starts: its destination, when, and
	// whether it is shed (its destination's breaker is open: not sent).
	dest    string
	started time.Time
	shed    bool
	// outcome is what the attempt said of its destination, set by the
	// worker before the queue is told it is done.
	outcome destination.Outcome
	// demoted: it ran past the time a worker is lent for; set by its
	// worker once the attempt is over.
	demoted bool
}

// record starts the log record of d with status.
func (d *delivery) record(status string) deliverylog.Record {
	return deliverylog.Record{
		DeliveryID: d.id, TenantID: d.tenant, SubscriptionID: d.sub,
		EventID: d.ev.id, EventType: d.ev.typ, EventSeq: d.ev.seq,
		CreatedAt: d.created, Status: status, Manual: d.manual,
	}
}
