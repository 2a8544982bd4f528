// Package events holds what platform services publish: the event envelope,
// the catalog of event types, the NATS subjects events travel on, the
// JetStream stream that keeps them, and publishers and subscribers for them.
package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/oklog/ulid/v2"
)

// MaxDataBytes bounds an event's data object.
const MaxDataBytes = 256 << 10

// MaxIDLen bounds a client-chosen event id.
const MaxIDLen = 64

// IDPrefix starts every server-generated event id.
const IDPrefix = "evt_"

// Event is the envelope every receiver gets as the body of a webhook.
type Event struct {
	ID         string          `json:"id"`
	Type       string          `json:"type"`
	TenantID   string          `json:"tenantId"`
	OccurredAt time.Time       `json:"occurredAt"`
	Data       json.RawMessage `json:"data"`
}

// Errors of event validation; Validate wraps them with the offending field.
var (
	ErrRequired     = errors.New("is required")
	ErrUnknownType  = errors.New("is not an event type of the catalog")
	ErrInternalType = errors.New("is emitted only by the platform and cannot be published")
	ErrInvalidID    = errors.New("event id must be 1-64 letters, digits, '_' or '-'")
	ErrReservedID   = errors.New(`event id must not be "batch", the name of the batch route (/api/events/batch)`)
	ErrInvalidData  = errors.New("data must be a JSON object of at most 256 KiB")
	ErrNoTenant     = errors.New("event has no valid tenant")
)

// FieldError names the envelope field a validation error is about.
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

// NewID returns a fresh event id, sortable by creation time.
func NewID() string { return NewIDWithPrefix(IDPrefix) }

// NewIDWithPrefix returns a fresh id as NewID makes them, with prefix in
// place of IDPrefix (the API's request ids are "req_" ones), in one
// allocation.
func NewIDWithPrefix(prefix string) string {
	var buf [32]byte
	b := append(buf[:0], prefix...)
	n := len(b)
	b = append(b, make([]byte, ulid.EncodedSize)...)
	// The destination is EncodedSize long, the one error it can return.
	_ = ulid.Make().MarshalTextTo(b[n:])
	return string(b)
}

// ValidID reports whether id has the form of an event id: 1..64 of
// [A-Za-z0-9_-]. The same rule keeps ids safe inside NATS subjects and
// message ids. A new event's id must also not be ReservedID (Problems
// checks both); events stored before that rule keep being read.
func ValidID(id string) bool {
	if len(id) == 0 || len(id) > MaxIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// ReservedID is the one id of the right form that may not name a new
// event: GET /api/events/batch is the batch route, so an event under that
// id could never be read.
const ReservedID = "batch"

// Validate checks the envelope against the catalog and the size limits,
// and returns its first problem.
func (e *Event) Validate(c Catalog) error {
	if p := e.Problems(c); len(p) > 0 {
		return p[0]
	}
	return nil
}

// Problems lists every problem of the envelope, one per field.
func (e *Event) Problems(c Catalog) []*FieldError {
	var out []*FieldError
	switch {
	case !ValidID(e.ID):
		out = append(out, &FieldError{Field: "id", Err: ErrInvalidID})
	case e.ID == ReservedID:
		out = append(out, &FieldError{Field: "id", Err: ErrReservedID})
	}
	if !ValidID(e.TenantID) {
		out = append(out, &FieldError{Field: "tenantId", Err: ErrNoTenant})
	}
	// The type is looked up once, for all that is asked of it.
	typ := -1
	if e.Type != "" {
		typ = c.index(e.Type)
	}
	switch {
	case e.Type == "":
		out = append(out, &FieldError{Field: "type", Err: ErrRequired})
	case typ < 0:
		out = append(out, &FieldError{Field: "type", Err: fmt.Errorf("%q %w", e.Type, ErrUnknownType)})
	case c[typ].Internal:
		out = append(out, &FieldError{Field: "type", Err: fmt.Errorf("%q %w", e.Type, ErrInternalType)})
	}
	switch {
	case len(e.Data) == 0:
		out = append(out, &FieldError{Field: "data", Err: ErrRequired})
	case !validData(e.Data):
		out = append(out, &FieldError{Field: "data", Err: ErrInvalidData})
	default:
		out = append(out, c.schemaProblems(typ, e.Data)...)
	}
	return out
}

func validData(d json.RawMessage) bool {
	d = bytes.TrimSpace(d)
	return len(d) >= 2 && len(d) <= MaxDataBytes && d[0] == '{' && json.Valid(d)
}

// Marshal encodes the envelope as the webhook body. Data must already be
// valid JSON (Validate checks it); it is copied as is.
func (e *Event) Marshal() []byte {
	b := make([]byte, 0, 96+len(e.ID)+len(e.Type)+len(e.TenantID)+len(e.Data))
	b = append(b, `{"id":`...)
	b = appendString(b, e.ID)
	b = append(b, `,"type":`...)
	b = appendString(b, e.Type)
	b = append(b, `,"tenantId":`...)
	b = appendString(b, e.TenantID)
	b = append(b, `,"occurredAt":"`...)
	b = e.OccurredAt.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","data":`...)
	if len(e.Data) == 0 {
		b = append(b, "{}"...)
	} else {
		b = append(b, bytes.TrimSpace(e.Data)...)
	}
	return append(b, '}')
}

// appendString appends s as a JSON string. Ids and types are validated to
// plain ASCII before they get here; anything else is escaped by encoding/json.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= 0x80 {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// Parse decodes a webhook body back into an envelope.
func Parse(body []byte) (Event, error) {
	var e Event
	if err := json.Unmarshal(body, &e); err != nil {
		return Event{}, fmt.Errorf("decode event: %w", err)
	}
	return e, nil
}
