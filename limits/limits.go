// Package limits is the policy of a tenant's limits: their names and
// bounds, the defaults the operator sets with flags, the overrides a
// tenant's record holds, and the check that refuses a request that would
// take a tenant past one. It is pure: the stores count, this decides.
package limits

import (
	"fmt"
	"strconv"
	"strings"
)

// The names of the limits, as the API spells them.
const (
	// RequestsPerMinute is the tenant API's budget per minute (the
	// tenant's rateLimit).
	RequestsPerMinute = "requestsPerMinute"
	// Subscriptions bounds how many subscriptions a tenant has.
	Subscriptions = "subscriptions"
	// EventTypes bounds how many distinct event types and patterns
	// ("ticket.updated", "ticket.*", "*") a tenant's subscriptions name,
	// all of them together, each counted once.
	EventTypes = "eventTypes"
	// EventBytes bounds one event's data, in bytes as sent.
	EventBytes = "eventBytes"
	// StoredBytes bounds the bytes of the events a tenant has in the store.
	StoredBytes = "storedBytes"
	// AttemptsInFlight is a tenant's share of delivery attempts in flight
	// while other tenants have work; it never refuses a request.
	AttemptsInFlight = "attemptsInFlight"
	// Jobs bounds how many replay and recovery jobs a tenant has running
	// at once.
	Jobs = "jobs"
)

// Names lists every limit, in the order they are shown.
var Names = []string{RequestsPerMinute, Subscriptions, EventTypes, EventBytes, StoredBytes, AttemptsInFlight, Jobs}

// Bounds are the values a limit may be set to, by the operator's flags or
// a tenant's override.
type Bounds struct{ Min, Max int64 }

// MaxEventBytes is the largest eventBytes: the most any event's data may
// hold (events.MaxDataBytes), whatever a tenant's arrangement.
const MaxEventBytes = 256 << 10

// bounds holds each limit's Bounds.
var bounds = map[string]Bounds{
	RequestsPerMinute: {1, 1_000_000},
	Subscriptions:     {1, 100_000},
	EventTypes:        {1, 10_000},
	EventBytes:        {1, MaxEventBytes},
	StoredBytes:       {1, 1 << 50}, // 1 PiB
	AttemptsInFlight:  {1, 100_000},
	Jobs:              {1, 1_000},
}

// BoundsOf returns a limit's bounds, and false for an unknown name.
func BoundsOf(name string) (Bounds, bool) {
	b, ok := bounds[name]
	return b, ok
}

// Limits holds one value per limit. In a tenant's record a zero means
// "the default"; Over fills those in, so effective limits have every
// field set.
type Limits struct {
	RequestsPerMinute int64 `json:"requestsPerMinute,omitempty"`
	Subscriptions     int64 `json:"subscriptions,omitempty"`
	EventTypes        int64 `json:"eventTypes,omitempty"`
	EventBytes        int64 `json:"eventBytes,omitempty"`
	StoredBytes       int64 `json:"storedBytes,omitempty"`
	AttemptsInFlight  int64 `json:"attemptsInFlight,omitempty"`
	Jobs              int64 `json:"jobs,omitempty"`
}

// Defaults are the limits of a tenant without overrides unless the
// operator's flags say otherwise.
func Defaults() Limits {
	return Limits{
		RequestsPerMinute: 100,
		Subscriptions:     1_000,
		EventTypes:        100,
		EventBytes:        MaxEventBytes,
		StoredBytes:       10 << 30, // 10 GiB
		AttemptsInFlight:  256,
		Jobs:              5,
	}
}

// field returns the value of one limit in l, or nil for an unknown name.
func (l *Limits) field(name string) *int64 {
	switch name {
	case RequestsPerMinute:
		return &l.RequestsPerMinute
	case Subscriptions:
		return &l.Subscriptions
	case EventTypes:
		return &l.EventTypes
	case EventBytes:
		return &l.EventBytes
	case StoredBytes:
		return &l.StoredBytes
	case AttemptsInFlight:
		return &l.AttemptsInFlight
	case Jobs:
		return &l.Jobs
	}
	return nil
}

// Get returns one limit by name (0 for an unknown name).
func (l Limits) Get(name string) int64 {
	if f := l.field(name); f != nil {
		return *f
	}
	return 0
}

// Over returns l with each unset (zero) limit taken from d: a tenant's
// overrides l over the defaults d give its effective limits.
func (l Limits) Over(d Limits) Limits {
	for _, name := range Names {
		if f := l.field(name); *f <= 0 {
			*f = d.Get(name)
		}
	}
	return l
}

// Map returns every limit by name.
func (l Limits) Map() map[string]int64 {
	m := make(map[string]int64, len(Names))
	for _, name := range Names {
		m[name] = l.Get(name)
	}
	return m
}

// Problem is one limit set out of its bounds.
type Problem struct {
	Name   string
	Reason string
}

func (p Problem) Error() string { return p.Name + " " + p.Reason }

// Validate reports every set (non-zero) limit of l out of its bounds.
func (l Limits) Validate() []Problem {
	var out []Problem
	for _, name := range Names {
		if v := l.Get(name); v != 0 {
			if p, bad := check(name, v); bad {
				out = append(out, p)
			}
		}
	}
	return out
}

// check reports whether v is out of name's bounds, and why.
func check(name string, v int64) (Problem, bool) {
	if b := bounds[name]; v < b.Min || v > b.Max {
		return outOfBounds(name), true
	}
	return Problem{}, false
}

func outOfBounds(name string) Problem {
	b := bounds[name]
	return Problem{Name: name, Reason: "must be a whole number from " + group(b.Min) + " to " + group(b.Max)}
}

// group writes n with thousands separated by commas.
func group(n int64) string {
	s := strconv.FormatInt(n, 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// ExceededError refuses a request that would take a tenant past one of
// its limits. The API answers it 403 QUOTA_EXCEEDED (413
// PAYLOAD_TOO_LARGE for EventBytes) with details {limit, max, used}.
type ExceededError struct {
	// Limit is the limit's name.
	Limit string
	// Max is the tenant's limit; Used what it uses now (for EventBytes,
	// the size of the event refused).
	Max, Used int64
	// After is what the request would have brought Used to.
	After int64
}

func (e *ExceededError) Error() string {
	if e.Limit == EventBytes {
		return fmt.Sprintf("the event's data is %d bytes, over the tenant's eventBytes limit of %d", e.Used, e.Max)
	}
	return fmt.Sprintf("this would bring the tenant's %s to %d, over its limit of %d (it has %d)", e.Limit, e.After, e.Max, e.Used)
}

// Check decides a request that takes a tenant's use of the limit name
// from used to after, against its limit max: it is refused, with an
// *ExceededError, only when after passes max and is more than used.
// Staying level or going down is always allowed, so a tenant over a
// limit lowered since can still change and remove what it has.
func Check(name string, max, used, after int64) error {
	if after <= max || after <= used {
		return nil
	}
	return &ExceededError{Limit: name, Max: max, Used: used, After: after}
}

// CheckEventBytes refuses an event whose data is size bytes when that is
// over max.
func CheckEventBytes(max, size int64) error {
	if size <= max {
		return nil
	}
	return &ExceededError{Limit: EventBytes, Max: max, Used: size, After: size}
}
