package deliverylog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"
)

// A batch, the payload of one stream message, is a version byte then
// records back to back. The tenant is the message's subject, so no record
// repeats it. Version 1 record:
//
//	flags          1 byte: bits 0-1 status, bit 2 attempt, bit 3 next attempt,
//	               bit 4 manual, bit 5 event id is "evt_" + a ULID,
//	               bit 6 the attempt has a trace id
//	delivery ULID  16 bytes (its creation time, in ms, is the base of CreatedAt)
//	sub ULID       16 bytes (the subscription id is "sub_" + its text)
//	created        varint, ns after the delivery ULID's time
//	event id       (bit 5) its ULID, 16 bytes; else uvarint length, bytes
//	event type     uvarint length, bytes
//	event seq      uvarint
//	attempt        (bit 2) uvarint N, varint ns after created, varint status
//	               code, varint duration ms, error and body as length, bytes
//	trace id       (bit 6) the attempt's trace id, 16 bytes
//	next attempt   (bit 3) varint ns after created
//
// Integers are Go's encoding/binary varints (signed ones zig-zag).
const batchV1 byte = 1

const (
	flagStatus  = 0x03
	flagAttempt = 1 << 2
	flagNext    = 1 << 3
	flagManual  = 1 << 4
	flagEvent   = 1 << 5
	flagTrace   = 1 << 6
	flagsKnown  = flagStatus | flagAttempt | flagNext | flagManual | flagEvent | flagTrace
)

const eventPrefix = "evt_"

// eventULID returns the ULID of an event id "evt_<ULID>" in canonical form.
func eventULID(id string) (ulid.ULID, bool) {
	rest, ok := strings.CutPrefix(id, eventPrefix)
	if !ok || len(rest) != ulidLen || !canonicalULIDs(rest) {
		return ulid.ULID{}, false
	}
	u, err := ulid.ParseStrict(rest)
	return u, err == nil
}

func eventIDOf(u ulid.ULID) string {
	var b [len(eventPrefix) + ulidLen]byte
	copy(b[:], eventPrefix)
	_ = u.MarshalTextTo(b[len(eventPrefix):])
	return string(b[:])
}

var errCorrupt = errors.New("corrupt delivery log data")

// ulidNanos is the time of u in ns since 1970; arithmetic wraps, which
// keeps encoding and decoding exact inverses for any input.
func ulidNanos(u ulid.ULID) int64 {
	return int64(u.Time() * uint64(time.Millisecond))
}

// appendRecord encodes r, already checked by prepare, whose delivery id is k.
func appendRecord(dst []byte, k deliveryKey, r *Record) []byte {
	code, _ := statusCode(r.Status)
	flags := code
	if r.Attempt != nil {
		flags |= flagAttempt
		if r.Attempt.TraceID != ([16]byte{}) {
			flags |= flagTrace
		}
	}
	if r.NextAttemptAt != nil {
		flags |= flagNext
	}
	if r.Manual {
		flags |= flagManual
	}
	ev, evOK := eventULID(r.EventID)
	if evOK {
		flags |= flagEvent
	}
	dst = append(dst, flags)
	dst = append(dst, k.dlv[:]...)
	dst = append(dst, k.sub[:]...)
	created := r.CreatedAt.UnixNano()
	dst = binary.AppendVarint(dst, created-ulidNanos(k.dlv))
	if evOK {
		dst = append(dst, ev[:]...)
	} else {
		dst = appendString(dst, r.EventID)
	}
	dst = appendString(dst, r.EventType)
	dst = binary.AppendUvarint(dst, r.EventSeq)
	if a := r.Attempt; a != nil {
		dst = appendAttempt(dst, a, created)
		if flags&flagTrace != 0 {
			dst = append(dst, a.TraceID[:]...)
		}
	}
	if r.NextAttemptAt != nil {
		dst = binary.AppendVarint(dst, r.NextAttemptAt.UnixNano()-created)
	}
	return dst
}

func appendAttempt(dst []byte, a *Attempt, base int64) []byte {
	dst = binary.AppendUvarint(dst, uint64(a.N))
	dst = binary.AppendVarint(dst, a.At.UnixNano()-base)
	dst = binary.AppendVarint(dst, int64(a.StatusCode))
	dst = binary.AppendVarint(dst, a.DurationMs)
	dst = appendString(dst, a.Error)
	return appendString(dst, a.ResponseBody)
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// decodeBatch appends to out the records of one message of tenant.
func decodeBatch(tenant string, data []byte, out []Record) ([]Record, error) {
	if len(data) == 0 || data[0] != batchV1 {
		return out, fmt.Errorf("batch version: %w", errCorrupt)
	}
	d := decoder{b: data[1:]}
	for len(d.b) > 0 {
		r, ok := d.record(tenant)
		if !ok {
			return out, fmt.Errorf("record %d of batch: %w", len(out), errCorrupt)
		}
		out = append(out, r)
	}
	return out, nil
}

// decoder reads varints and strings from b; after a failure its methods
// keep failing.
type decoder struct {
	b   []byte
	bad bool
}

func (d *decoder) record(tenant string) (Record, bool) {
	flags := d.byte()
	var k deliveryKey
	copy(k.dlv[:], d.bytes(16))
	copy(k.sub[:], d.bytes(16))
	if d.bad || flags&^flagsKnown != 0 || flags&flagTrace != 0 && flags&flagAttempt == 0 {
		return Record{}, false
	}
	created := ulidNanos(k.dlv) + d.varint()
	var event string
	if flags&flagEvent != 0 {
		var u ulid.ULID
		copy(u[:], d.bytes(16))
		event = eventIDOf(u)
	} else {
		event = d.string(MaxIDLen)
	}
	r := Record{
		DeliveryID:     k.id(),
		TenantID:       tenant,
		SubscriptionID: k.subscriptionID(),
		EventID:        event,
		EventType:      d.string(MaxIDLen),
		EventSeq:       d.uvarint(),
		CreatedAt:      time.Unix(0, created).UTC(),
		Status:         statusNames[flags&flagStatus],
		Manual:         flags&flagManual != 0,
	}
	if flags&flagAttempt != 0 {
		a, ok := d.attempt(created)
		if !ok {
			return Record{}, false
		}
		if flags&flagTrace != 0 {
			copy(a.TraceID[:], d.bytes(16))
		}
		r.Attempt = &a
	}
	if flags&flagNext != 0 {
		t := time.Unix(0, created+d.varint()).UTC()
		r.NextAttemptAt = &t
	}
	return r, !d.bad
}

func (d *decoder) attempt(base int64) (Attempt, bool) {
	n := d.uvarint()
	a := Attempt{
		At:           time.Unix(0, base+d.varint()).UTC(),
		StatusCode:   int(d.varint()),
		DurationMs:   d.varint(),
		Error:        d.string(MaxResponseExcerpt),
		ResponseBody: d.string(MaxResponseExcerpt),
	}
	if n < 1 || n > math.MaxInt32 {
		return Attempt{}, false
	}
	a.N = int(n)
	return a, !d.bad
}

func (d *decoder) byte() byte {
	if d.bad || len(d.b) == 0 {
		d.bad = true
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) bytes(n int) []byte {
	if d.bad || len(d.b) < n {
		d.bad = true
		return nil
	}
	p := d.b[:n]
	d.b = d.b[n:]
	return p
}

func (d *decoder) uvarint() uint64 {
	if d.bad {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.bad = true
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.bad {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.bad = true
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) string(max int) string {
	n := d.uvarint()
	if d.bad || n > uint64(max) || n > uint64(len(d.b)) {
		d.bad = true
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

// A delivery as the index stores it, under a key that holds its tenant and
// ids (version 1):
//
//	version, status, flags (bit 0: next attempt, bit 1: trace ids) bytes
//	created varint ns since 1970; event seq uvarint; event id, event type
//	next attempt   (bit 0) varint ns after created
//	attempts       uvarint count, then each as in a record; with bit 1,
//	               each followed by a byte, 1 when its 16-byte trace id
//	               follows, else 0
const valueV1 byte = 1

func appendDeliveryValue(dst []byte, d *Delivery) []byte {
	code, _ := statusCode(d.Status)
	var flags byte
	if d.NextAttemptAt != nil {
		flags = valueNext
	}
	for i := range d.Attempts {
		if d.Attempts[i].TraceID != ([16]byte{}) {
			flags |= valueTraces
			break
		}
	}
	dst = append(dst, valueV1, code, flags)
	created := d.CreatedAt.UnixNano()
	dst = binary.AppendVarint(dst, created)
	dst = binary.AppendUvarint(dst, d.EventSeq)
	dst = appendString(dst, d.EventID)
	dst = appendString(dst, d.EventType)
	if d.NextAttemptAt != nil {
		dst = binary.AppendVarint(dst, d.NextAttemptAt.UnixNano()-created)
	}
	dst = binary.AppendUvarint(dst, uint64(len(d.Attempts)))
	for i := range d.Attempts {
		a := &d.Attempts[i]
		dst = appendAttempt(dst, a, created)
		switch {
		case flags&valueTraces == 0:
		case a.TraceID == [16]byte{}:
			dst = append(dst, 0)
		default:
			dst = append(dst, 1)
			dst = append(dst, a.TraceID[:]...)
		}
	}
	return dst
}

// Flags of a stored delivery.
const (
	valueNext   = 1 << 0
	valueTraces = 1 << 1
)

// decodeDeliveryValue fills the stored fields of d (not its ids).
func decodeDeliveryValue(val []byte, d *Delivery) error {
	r := decoder{b: val}
	if r.byte() != valueV1 {
		return fmt.Errorf("stored delivery version: %w", errCorrupt)
	}
	code, flags := r.byte(), r.byte()
	if code >= numStatuses || flags&^(valueNext|valueTraces) != 0 {
		return fmt.Errorf("stored delivery: %w", errCorrupt)
	}
	created := r.varint()
	d.Status = statusNames[code]
	d.CreatedAt = time.Unix(0, created).UTC()
	d.EventSeq = r.uvarint()
	d.EventID = r.string(MaxIDLen)
	d.EventType = r.string(MaxIDLen)
	d.NextAttemptAt = nil
	if flags&valueNext != 0 {
		t := time.Unix(0, created+r.varint()).UTC()
		d.NextAttemptAt = &t
	}
	n := r.uvarint()
	if r.bad || n > uint64(len(r.b)) {
		return fmt.Errorf("stored delivery: %w", errCorrupt)
	}
	d.Attempts = make([]Attempt, 0, n)
	for range n {
		a, ok := r.attempt(created)
		if !ok {
			return fmt.Errorf("stored delivery attempt: %w", errCorrupt)
		}
		if flags&valueTraces != 0 {
			switch r.byte() {
			case 0:
			case 1:
				copy(a.TraceID[:], r.bytes(16))
			default:
				return fmt.Errorf("stored delivery attempt trace: %w", errCorrupt)
			}
		}
		d.Attempts = append(d.Attempts, a)
	}
	if r.bad || len(r.b) != 0 {
		return fmt.Errorf("stored delivery: %w", errCorrupt)
	}
	return nil
}
