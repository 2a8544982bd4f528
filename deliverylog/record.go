// Package deliverylog is the attempt log of the delivery engine.
//
// The dispatcher appends one [Record] for each change of a delivery (an
// attempt made, a retry scheduled, a delivery skipped) through a [Writer],
// which batches them into one JetStream message per tenant per flush on the
// DELIVERYLOG stream (see [EnsureStream]). An [Index] follows that stream
// into a local on-disk store and answers the deliveries API: one delivery by
// id, a subscription's deliveries newest first (optionally by status), and
// the deliveries of one event. The stream is the source of truth; the index
// is a cache of it that any replica can rebuild, and that resumes where it
// stopped after a restart.
package deliverylog

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/oklog/ulid/v2"

	"github.com/onestack/webhooks/problem"
)

// Delivery statuses.
const (
	StatusPending   = "pending"
	StatusSucceeded = "succeeded"
	StatusFailed    = "failed"
	StatusSkipped   = "skipped"
)

// MaxResponseExcerpt is how many bytes of a receiver's answer, and of an
// attempt's error text, a record keeps. [Writer.Append] cuts longer ones at
// a UTF-8 boundary at or below it.
const MaxResponseExcerpt = 1024

// MaxIDLen bounds the length in bytes of a tenant id, an event id and an
// event type; [Writer.Append] refuses a record with a longer one.
const MaxIDLen = 255

// Errors of the package.
var (
	// ErrNotFound: no such delivery for this tenant (problem.ErrNotFound).
	ErrNotFound = problem.NotFound("delivery")
	// ErrUnavailable: the index's storage or NATS cannot be reached, or the
	// index is closed (problem.ErrUnavailable).
	ErrUnavailable = problem.New(problem.ErrUnavailable, "delivery log unavailable")
	// ErrClosed: the writer is closed; a record given to it after Close, or
	// not stored before Close gave up, gets this error.
	ErrClosed = errors.New("delivery log writer closed")
	// ErrInvalid: a record, status, subscription id or cursor is malformed.
	// A cursor's also wraps problem.ErrInvalidCursor.
	ErrInvalid = errors.New("invalid delivery log argument")
)

// Attempt is one try of a delivery.
type Attempt struct {
	N            int // 1-based attempt number
	At           time.Time
	StatusCode   int
	Error        string
	DurationMs   int64
	ResponseBody string
	// TraceID is the W3C trace id of the attempt (the traceparent the
	// receiver got, and its span's trace); zero when unknown (attempts
	// logged before it was kept).
	TraceID [16]byte
}

// Record is one change of one delivery, as the dispatcher appends it.
//
// Times keep their instant to the nanosecond but not their location or
// monotonic reading: the index gives them back in UTC.
type Record struct {
	DeliveryID     string
	TenantID       string
	SubscriptionID string // may be left empty: it is part of DeliveryID
	EventID        string
	EventType      string
	// EventSeq is the event's sequence in the EVENTS stream (a retry reads
	// the body from there).
	EventSeq uint64
	// CreatedAt is when the delivery was created.
	CreatedAt time.Time
	Status    string
	// Attempt is the attempt this record reports, nil for none (skipped, or
	// a "pending: manual retry requested" record).
	Attempt       *Attempt
	NextAttemptAt *time.Time
	// Manual tells the attempt was asked for by hand. The stream keeps it;
	// the index has no field for it.
	Manual bool
}

// Delivery is a delivery as the index holds it: every attempt, the latest
// status. Attempts is never nil.
type Delivery struct {
	ID             string
	TenantID       string
	SubscriptionID string
	EventID        string
	EventType      string
	EventSeq       uint64
	Status         string
	Attempts       []Attempt
	NextAttemptAt  *time.Time
	CreatedAt      time.Time
}

const (
	deliveryPrefix = "dlv_"
	subPrefix      = "sub_"
	ulidLen        = 26
	deliveryIDLen  = len(deliveryPrefix) + 2*ulidLen
	subIDLen       = len(subPrefix) + ulidLen
)

// status codes as stored; the order is part of the format.
const (
	codePending byte = iota
	codeSucceeded
	codeFailed
	codeSkipped
	numStatuses
)

func statusCode(s string) (byte, bool) {
	switch s {
	case StatusPending:
		return codePending, true
	case StatusSucceeded:
		return codeSucceeded, true
	case StatusFailed:
		return codeFailed, true
	case StatusSkipped:
		return codeSkipped, true
	}
	return 0, false
}

var statusNames = [numStatuses]string{StatusPending, StatusSucceeded, StatusFailed, StatusSkipped}

// deliveryKey is a delivery id in binary: its own ULID, then its
// subscription's.
type deliveryKey struct {
	dlv, sub ulid.ULID
}

// parseDeliveryID splits "dlv_<ULID><subscription ULID>"; it accepts only
// the canonical (upper-case) spelling, so that an id read back is the id
// written.
func parseDeliveryID(id string) (deliveryKey, bool) {
	rest, ok := strings.CutPrefix(id, deliveryPrefix)
	if !ok || len(rest) != 2*ulidLen || !canonicalULIDs(rest) {
		return deliveryKey{}, false
	}
	dlv, err := ulid.ParseStrict(rest[:ulidLen])
	if err != nil {
		return deliveryKey{}, false
	}
	sub, err := ulid.ParseStrict(rest[ulidLen:])
	if err != nil {
		return deliveryKey{}, false
	}
	return deliveryKey{dlv: dlv, sub: sub}, true
}

// parseSubscriptionID reads "sub_<ULID>".
func parseSubscriptionID(id string) (ulid.ULID, bool) {
	rest, ok := strings.CutPrefix(id, subPrefix)
	if !ok || len(rest) != ulidLen || !canonicalULIDs(rest) {
		return ulid.ULID{}, false
	}
	u, err := ulid.ParseStrict(rest)
	return u, err == nil
}

func canonicalULIDs(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'a' && c <= 'z' {
			return false
		}
	}
	return true
}

// id returns "dlv_<ULID><subscription ULID>".
func (k deliveryKey) id() string {
	var b [deliveryIDLen]byte
	copy(b[:], deliveryPrefix)
	_ = k.dlv.MarshalTextTo(b[len(deliveryPrefix) : len(deliveryPrefix)+ulidLen])
	_ = k.sub.MarshalTextTo(b[len(deliveryPrefix)+ulidLen:])
	return string(b[:])
}

// subscriptionID returns "sub_<ULID>".
func (k deliveryKey) subscriptionID() string {
	var b [subIDLen]byte
	copy(b[:], subPrefix)
	_ = k.sub.MarshalTextTo(b[len(subPrefix):])
	return string(b[:])
}

// validTenant reports whether tenant can be a subject token and a key part.
func validTenant(t string) bool {
	if t == "" || len(t) > MaxIDLen {
		return false
	}
	for i := 0; i < len(t); i++ {
		switch c := t[i]; {
		case c <= ' ', c == '.', c == '*', c == '>', c >= 0x7f:
			return false
		}
	}
	return true
}

// representable reports whether t fits the log's time encoding
// (nanoseconds since 1970 in an int64: years 1678 to 2262).
func representable(t time.Time) bool {
	return !t.IsZero() && time.Unix(0, t.UnixNano()).Equal(t)
}

// prepare checks r and cuts its long texts to [MaxResponseExcerpt]. It
// returns the parsed delivery id.
func prepare(r *Record) (deliveryKey, error) {
	k, ok := parseDeliveryID(r.DeliveryID)
	if !ok {
		return k, fmt.Errorf("record: delivery id %q: %w", r.DeliveryID, ErrInvalid)
	}
	if r.SubscriptionID != "" && (len(r.SubscriptionID) != subIDLen || r.SubscriptionID[len(subPrefix):] != r.DeliveryID[len(deliveryPrefix)+ulidLen:] || !strings.HasPrefix(r.SubscriptionID, subPrefix)) {
		return k, fmt.Errorf("record %s: subscription %q is not the delivery's: %w", r.DeliveryID, r.SubscriptionID, ErrInvalid)
	}
	if !validTenant(r.TenantID) {
		return k, fmt.Errorf("record %s: tenant %q: %w", r.DeliveryID, r.TenantID, ErrInvalid)
	}
	if len(r.EventID) > MaxIDLen || len(r.EventType) > MaxIDLen {
		return k, fmt.Errorf("record %s: event id or type longer than %d bytes: %w", r.DeliveryID, MaxIDLen, ErrInvalid)
	}
	if _, ok := statusCode(r.Status); !ok {
		return k, fmt.Errorf("record %s: status %q: %w", r.DeliveryID, r.Status, ErrInvalid)
	}
	if !representable(r.CreatedAt) {
		return k, fmt.Errorf("record %s: creation time %v: %w", r.DeliveryID, r.CreatedAt, ErrInvalid)
	}
	if r.NextAttemptAt != nil && !representable(*r.NextAttemptAt) {
		return k, fmt.Errorf("record %s: next attempt time %v: %w", r.DeliveryID, *r.NextAttemptAt, ErrInvalid)
	}
	if a := r.Attempt; a != nil {
		if a.N < 1 {
			return k, fmt.Errorf("record %s: attempt number %d: %w", r.DeliveryID, a.N, ErrInvalid)
		}
		if !representable(a.At) {
			return k, fmt.Errorf("record %s: attempt time %v: %w", r.DeliveryID, a.At, ErrInvalid)
		}
		if len(a.ResponseBody) > MaxResponseExcerpt || len(a.Error) > MaxResponseExcerpt {
			cut := *a
			cut.ResponseBody = truncate(cut.ResponseBody, MaxResponseExcerpt)
			cut.Error = truncate(cut.Error, MaxResponseExcerpt)
			r.Attempt = &cut
		}
	}
	return k, nil
}

// truncate cuts s to at most n bytes without splitting a UTF-8 sequence.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
