package api

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/onestack/webhooks/events"
	"github.com/onestack/webhooks/problem"
)

// EventLog is what the API asks of the events a tenant published and
// the stream retains. Implementations return ErrEventNotFound,
// ErrInvalidCursor and ErrUnavailable, wrapped as they like.
type EventLog interface {
	// Events lists a page of tenant's events, newest first, and the
	// cursor of the next page ("" on the last).
	Events(ctx context.Context, tenant string, q EventQuery) ([]EventSummary, string, error)
	// Event reads one of tenant's events with the deliveries it made.
	Event(ctx context.Context, tenant, id string) (EventDetail, error)
}

// EventQuery selects a page of events.
type EventQuery struct {
	// Type keeps one type ("" for all).
	Type string
	// Since and Until bound when the events occurred, both included.
	Since, Until time.Time
	Cursor       string
	Limit        int
}

// EventSummary is an event as listed.
type EventSummary struct {
	ID         string
	Type       string
	OccurredAt time.Time
}

// EventDetail is one event, its data and its deliveries.
type EventDetail struct {
	EventSummary
	Data       json.RawMessage
	Deliveries []Delivery
}

// ErrEventNotFound: no such event retained for this tenant.
var ErrEventNotFound error = problem.NotFound("event")

type eventSummaryView struct {
	ID         string    `json:"id"`
	Type       string    `json:"type"`
	OccurredAt time.Time `json:"occurredAt"`
}

type eventView struct {
	eventSummaryView
	Data       json.RawMessage `json:"data"`
	Deliveries []deliveryView  `json:"deliveries"`
}

func (a *API) eventLog() (EventLog, error) {
	if a.cfg.Events == nil {
		return nil, &Error{Status: http.StatusNotFound, Code: CodeNotFound, Message: "event lookup is not enabled on this server"}
	}
	return a.cfg.Events, nil
}

func (a *API) listEvents(w http.ResponseWriter, r *http.Request, c *caller) error {
	log, err := a.eventLog()
	if err != nil {
		return err
	}
	limit, cursor, err := page(r)
	if err != nil {
		return err
	}
	q := EventQuery{Cursor: cursor, Limit: limit}
	v := r.URL.Query()
	var fields []problem.FieldError
	if q.Type = v.Get("type"); q.Type != "" && !events.ValidTypeName(q.Type) {
		fields = append(fields, problem.FieldError{Field: "type", Reason: "is not an event type name"})
	}
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"since", &q.Since}, {"until", &q.Until}} {
		if s := v.Get(p.name); s != "" {
			t, err := time.Parse(time.RFC3339Nano, s)
			if err != nil {
				fields = append(fields, problem.FieldError{Field: p.name, Reason: "must be an RFC 3339 time"})
				continue
			}
			*p.dst = t
		}
	}
	if !q.Since.IsZero() && !q.Until.IsZero() && q.Until.Before(q.Since) {
		fields = append(fields, problem.FieldError{Field: "until", Reason: "must not be before since"})
	}
	if len(fields) > 0 {
		return &problem.ValidationError{Fields: fields}
	}
	list, next, err := log.Events(r.Context(), c.tenant, q)
	if err != nil {
		return err
	}
	out := listPage[eventSummaryView]{Data: make([]eventSummaryView, len(list))}
	for i, e := range list {
		out.Data[i] = eventSummaryView{ID: e.ID, Type: e.Type, OccurredAt: e.OccurredAt.UTC()}
	}
	if next != "" {
		out.NextCursor = encodeCursor(next)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) getEvent(w http.ResponseWriter, r *http.Request, c *caller) error {
	log, err := a.eventLog()
	if err != nil {
		return err
	}
	id := r.PathValue("id")
	if !events.ValidID(id) {
		return errNotFound("event")
	}
	e, err := log.Event(r.Context(), c.tenant, id)
	if err != nil {
		return err
	}
	out := eventView{
		eventSummaryView: eventSummaryView{ID: e.ID, Type: e.Type, OccurredAt: e.OccurredAt.UTC()},
		Data:             e.Data, Deliveries: make([]deliveryView, len(e.Deliveries)),
	}
	for i, d := range e.Deliveries {
		out.Deliveries[i] = viewDelivery(d)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
