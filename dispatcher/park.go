package dispatcher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/onestack/webhooks/events"
	"github.com/onestack/webhooks/internal/jsretry"
)

// The deliveries stream keeps only what waits: parked records, each on its
// subscription's subject and lane, and the schedules of retries, which the
// server turns into parked records when they are due.
const (
	// DeliveriesStream keeps parked deliveries and scheduled retries.
	DeliveriesStream = "DELIVERIES"

	parkPrefix  = "park."
	schedPrefix = "sched."
)

// A subscription's deliveries that do not come straight from the fan-out
// go through lanes: records parked in order (a FIFO subscription's replay,
// read one at a time), records parked in no order (everything else, read up
// to its window at once), and, for a FIFO subscription, its live order: the
// events stream itself, read one event at a time (laneFIFO), so the order
// is the order events were stored in, whichever replica reads them.
const (
	laneOrdered   = 'o'
	laneUnordered = 'u'
	laneFIFO      = 'f'
)

// parkKey names one lane of one subscription's parked records.
type parkKey struct {
	tenant, sub string
	lane        byte
}

// subject is the subject of the lane's records: park.<tenant>.<sub>.<lane>,
// or for the FIFO lane the tenant's events.
func (k parkKey) subject() string {
	if k.lane == laneFIFO {
		return events.SubjectPrefix + k.tenant + ".>"
	}
	return parkPrefix + k.tenant + "." + k.sub + "." + string(k.lane)
}

// stream is the stream the lane's consumer reads.
func (k parkKey) stream() string {
	if k.lane == laneFIFO {
		return events.StreamName
	}
	return DeliveriesStream
}

// consumer is the durable consumer that reads the lane.
func (k parkKey) consumer() string {
	if k.lane == laneFIFO {
		return "fifo_" + k.sub
	}
	return "park_" + string(k.lane) + "_" + k.sub
}

func parseParkSubject(s string) (parkKey, bool) {
	rest, ok := strings.CutPrefix(s, parkPrefix)
	if !ok {
		return parkKey{}, false
	}
	parts := strings.Split(rest, ".")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" || len(parts[2]) != 1 {
		return parkKey{}, false
	}
	lane := parts[2][0]
	if lane != laneOrdered && lane != laneUnordered {
		return parkKey{}, false
	}
	return parkKey{tenant: parts[0], sub: parts[1], lane: lane}, true
}

// parkRecord is what a parked delivery stores: who it is and which attempt
// comes next, naming its event by stream sequence, never carrying the body.
type parkRecord struct {
	Delivery string `json:"d"`
	Event    string `json:"e"`
	Seq      uint64 `json:"q"`
	Attempt  int    `json:"n"`
	Created  int64  `json:"c"` // Unix nanoseconds
	Manual   bool   `json:"m,omitempty"`
	// Requested is when a manual retry was asked for (Unix nanoseconds;
	// zero for other records).
	Requested int64 `json:"r,omitempty"`
}

func (r parkRecord) encode() []byte {
	b, _ := json.Marshal(r) // plain fields always encode
	return b
}

func decodeParkRecord(b []byte) (parkRecord, error) {
	var r parkRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return parkRecord{}, fmt.Errorf("decode parked record: %w", err)
	}
	if _, ok := SubscriptionOf(r.Delivery); !ok || r.Seq == 0 || r.Attempt < 1 || r.Event == "" {
		return parkRecord{}, errors.New("decode parked record: missing or malformed field")
	}
	return r, nil
}

// parkMsg is the message that parks d on lane, for its next attempt. Its
// id makes a repeat of the same parking (a fan-out run again after a
// crash) one stored record.
func parkMsg(d *delivery, lane byte) *nats.Msg {
	k := parkKey{tenant: d.tenant, sub: d.sub, lane: lane}
	id := "p:" + d.id + ":" + strconv.Itoa(d.attempt)
	switch {
	case !d.requested.IsZero():
		// One record per request: a second retry asked for before the
		// first one's attempt is logged reserves the same number, and
		// must not be dropped as a duplicate of the first.
		id = "r:" + d.id + ":" + strconv.FormatInt(d.requested.UnixNano(), 10)
	case d.manual:
		id = "m:" + d.id + ":" + strconv.Itoa(d.attempt)
	}
	return &nats.Msg{
		Subject: k.subject(),
		Header:  nats.Header{nats.MsgIdHdr: {id}},
		Data:    d.parkRecord().encode(),
	}
}

func (d *delivery) parkRecord() parkRecord {
	r := parkRecord{Delivery: d.id, Event: d.ev.id, Seq: d.ev.seq, Attempt: d.attempt, Created: d.created.UnixNano(), Manual: d.manual}
	if !d.requested.IsZero() {
		r.Requested = d.requested.UnixNano()
	}
	return r
}

// scheduleMsg is the message schedule that parks d's next attempt at at.
// Each schedule has its own subject (sched.<delivery>.<attempt>): the
// server purges a fired schedule's whole subject, and a manual retry
// cancels a delivery's pending schedules by purging sched.<delivery>.>.
func scheduleMsg(d *delivery, at time.Time) *nats.Msg {
	target := parkKey{tenant: d.tenant, sub: d.sub, lane: laneUnordered}.subject()
	n := strconv.Itoa(d.attempt)
	return &nats.Msg{
		Subject: schedPrefix + d.id + "." + n,
		Header: nats.Header{
			jetstream.ScheduleHeader:       {"@at " + at.UTC().Format(time.RFC3339Nano)},
			jetstream.ScheduleTargetHeader: {target},
			nats.MsgIdHdr:                  {"s:" + d.id + ":" + n},
		},
		Data: d.parkRecord().encode(),
	}
}

// maxBytes is JetStream's MaxBytes for a bound n: -1 (none) for 0.
func maxBytes(n int64) int64 {
	if n <= 0 {
		return -1
	}
	return n
}

// ensureDeliveriesStream creates the stream of parked records and
// schedules: a work queue, so a record is gone once acknowledged.
func ensureDeliveriesStream(ctx context.Context, js jetstream.JetStream, c Config) (jetstream.Stream, error) {
	s, err := jsretry.Provision(ctx, func(ctx context.Context) (jetstream.Stream, error) {
		return js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
			Name:        DeliveriesStream,
			Description: "Deliveries that wait: parked records and scheduled retries",
			Subjects:    []string{parkPrefix + ">", schedPrefix + ">"},
			Storage:     jetstream.FileStorage,
			Retention:   jetstream.WorkQueuePolicy,
			// DiscardOld: message schedules cannot be used with DiscardNew.
			MaxBytes:          maxBytes(c.DeliveriesMaxBytes),
			Discard:           jetstream.DiscardOld,
			Duplicates:        c.DedupeWindow,
			Replicas:          c.Replicas,
			AllowMsgSchedules: true,
		})
	})
	if err != nil {
		return nil, fmt.Errorf("ensure stream %s: %w", DeliveriesStream, err)
	}
	return s, nil
}
