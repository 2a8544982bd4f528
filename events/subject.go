package events

import (
	"errors"
	"strings"
)

// Subjects and headers of events on NATS.
const (
	// SubjectPrefix starts every event subject: events.<tenant>.<type>.
	SubjectPrefix = "events."
	// SubjectAll matches every event subject.
	SubjectAll = "events.>"
	// HeaderEventID carries the event id, so consumers need not decode bodies.
	HeaderEventID = "Event-Id"
)

// ErrBadSubject is returned for a subject that is not an event subject.
var ErrBadSubject = errors.New("not an event subject")

// Subject returns the subject an event of type t of tenant travels on.
func Subject(tenant, t string) string {
	return SubjectPrefix + tenant + "." + t
}

// ParseSubject splits an event subject into tenant and type.
func ParseSubject(subject string) (tenant, typ string, err error) {
	rest, ok := strings.CutPrefix(subject, SubjectPrefix)
	if !ok {
		return "", "", ErrBadSubject
	}
	tenant, typ, ok = strings.Cut(rest, ".")
	if !ok || tenant == "" || typ == "" {
		return "", "", ErrBadSubject
	}
	return tenant, typ, nil
}
