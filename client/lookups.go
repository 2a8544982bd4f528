package client

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"time"
)

// Event types, events, replays, recoveries and their jobs.

// EventTypeDetail is one event type with its JSON Schema and example.
type EventTypeDetail struct {
	Type        string          `json:"type"`
	Description string          `json:"description"`
	Internal    bool            `json:"internal"`
	Deprecated  bool            `json:"deprecated"`
	Schema      json.RawMessage `json:"schema"`
	Example     json.RawMessage `json:"example"`
}

// EventType reads one type of the catalog with its schema and example,
// revalidating a cached copy.
func (c *Client) EventType(ctx context.Context, typ string) (EventTypeDetail, error) {
	var out EventTypeDetail
	err := c.do(ctx, http.MethodGet, "/api/event-types/"+url.PathEscape(typ), nil, &out)
	return out, err
}

// EventSummary is an event as listed.
type EventSummary struct {
	ID         string    `json:"id"`
	Type       string    `json:"type"`
	OccurredAt time.Time `json:"occurredAt"`
}

// EventDetail is one event, its data and every delivery it made.
type EventDetail struct {
	EventSummary
	Data       json.RawMessage `json:"data"`
	Deliveries []Delivery      `json:"deliveries"`
}

// EventQuery selects a page of events; zero fields select everything.
type EventQuery struct {
	Type         string
	Since, Until time.Time
	Limit        int
	Cursor       string
}

// Events reads one page of the tenant's retained events, newest first;
// pass the returned cursor for the next ("" when there is none).
func (c *Client) Events(ctx context.Context, q EventQuery) ([]EventSummary, string, error) {
	v := url.Values{}
	if q.Type != "" {
		v.Set("type", q.Type)
	}
	if !q.Since.IsZero() {
		v.Set("since", q.Since.UTC().Format(time.RFC3339Nano))
	}
	if !q.Until.IsZero() {
		v.Set("until", q.Until.UTC().Format(time.RFC3339Nano))
	}
	return readPage[EventSummary](ctx, c, "/api/events", v, q.Limit, q.Cursor)
}

// Event reads one event with the deliveries it made.
func (c *Client) Event(ctx context.Context, id string) (EventDetail, error) {
	var out EventDetail
	err := c.do(ctx, http.MethodGet, "/api/events/"+url.PathEscape(id), nil, &out)
	return out, err
}

// Started is what a replay or recovery came to: done at once (Count events
// or deliveries sent) when it fit in a page, else a job (JobID) to follow
// with Job.
type Started struct {
	Count int
	JobID string
}

func (s *Started) decode(count string, raw map[string]json.RawMessage) {
	if v, ok := raw[count]; ok {
		json.Unmarshal(v, &s.Count)
	}
	if v, ok := raw["jobId"]; ok {
		json.Unmarshal(v, &s.JobID)
	}
}

// StartReplay delivers again every retained event of a subscription's
// types (that its filter accepts) since since (until until, when not
// zero). A zero since is not sent, and the API answers that it is
// required.
func (c *Client) StartReplay(ctx context.Context, id string, since, until time.Time) (Started, error) {
	in := timeRange(since, until)
	var raw map[string]json.RawMessage
	err := c.do(ctx, http.MethodPost, "/api/subscriptions/"+url.PathEscape(id)+"/replay", in, &raw)
	var s Started
	s.decode("replayed", raw)
	return s, err
}

// timeRange is the body of a replay or a recovery: the times that are
// not zero, in UTC.
func timeRange(since, until time.Time) map[string]any {
	in := map[string]any{}
	if !since.IsZero() {
		in["since"] = since.UTC()
	}
	if !until.IsZero() {
		in["until"] = until.UTC()
	}
	return in
}

// Recovery selects the deliveries Recover resends.
type Recovery struct {
	Since, Until time.Time
	// Status is failed (the default) or skipped.
	Status string
}

// Recover resends, each exactly once more, a subscription's deliveries
// created in the range that ended in the status. As with StartReplay, a
// zero Since is not sent.
func (c *Client) Recover(ctx context.Context, id string, r Recovery) (Started, error) {
	in := timeRange(r.Since, r.Until)
	if r.Status != "" {
		in["status"] = r.Status
	}
	var raw map[string]json.RawMessage
	err := c.do(ctx, http.MethodPost, "/api/subscriptions/"+url.PathEscape(id)+"/recover", in, &raw)
	var s Started
	s.decode("recovered", raw)
	return s, err
}

// Job is a background replay or recovery.
type Job struct {
	ID             string    `json:"id"`
	Kind           string    `json:"kind"`
	SubscriptionID string    `json:"subscriptionId"`
	Status         string    `json:"status"`
	Total          int64     `json:"total"`
	Sent           int64     `json:"sent"`
	Filtered       int64     `json:"filtered"`
	Since          time.Time `json:"since"`
	Until          time.Time `json:"until"`
	Error          *string   `json:"error"`
	CreatedAt      time.Time `json:"createdAt"`
	UpdatedAt      time.Time `json:"updatedAt"`
}

// Job reads a job.
func (c *Client) Job(ctx context.Context, id string) (Job, error) {
	var out Job
	err := c.do(ctx, http.MethodGet, "/api/jobs/"+url.PathEscape(id), nil, &out)
	return out, err
}

// NewEventType registers an event type; Schema and Example may be nil.
type NewEventType struct {
	Type        string          `json:"type"`
	Description string          `json:"description"`
	Schema      json.RawMessage `json:"schema,omitempty"`
	Example     json.RawMessage `json:"example,omitempty"`
}

// EventTypePatch changes a type; nil fields are left as they are, and a
// JSON null Schema or Example removes it.
type EventTypePatch struct {
	Description *string         `json:"description,omitempty"`
	Schema      json.RawMessage `json:"schema,omitempty"`
	Example     json.RawMessage `json:"example,omitempty"`
	Deprecated  *bool           `json:"deprecated,omitempty"`
}

// RegisterEventType adds a type to the catalog.
func (a *Admin) RegisterEventType(ctx context.Context, t NewEventType) (EventTypeDetail, error) {
	var out EventTypeDetail
	err := a.c.do(ctx, http.MethodPost, "/admin/event-types", t, &out)
	return out, err
}

// UpdateEventType changes a type of the catalog.
func (a *Admin) UpdateEventType(ctx context.Context, typ string, p EventTypePatch) (EventTypeDetail, error) {
	var out EventTypeDetail
	err := a.c.do(ctx, http.MethodPatch, "/admin/event-types/"+url.PathEscape(typ), p, &out)
	return out, err
}

// DeprecateEventType flags a type: still delivered, refused to new
// subscriptions.
func (a *Admin) DeprecateEventType(ctx context.Context, typ string) (EventTypeDetail, error) {
	var out EventTypeDetail
	err := a.c.do(ctx, http.MethodDelete, "/admin/event-types/"+url.PathEscape(typ), nil, &out)
	return out, err
}

// Limits is a tenant's limits as in effect and what it uses of those
// that can be counted, by name (requestsPerMinute, subscriptions,
// eventTypes, eventBytes, storedBytes, attemptsInFlight, jobs, and any
// the server adds).
type Limits struct {
	Max   map[string]int64 `json:"limits"`
	Usage map[string]int64 `json:"usage"`
}

// Limits reads the tenant's limits and its usage (GET /api/limits).
func (c *Client) Limits(ctx context.Context) (Limits, error) {
	var out Limits
	err := c.do(ctx, http.MethodGet, "/api/limits", nil, &out)
	return out, err
}

// Jobs reads one page of the tenant's replay and recovery jobs, newest
// first; pass the returned cursor for the next ("" when there is none).
func (c *Client) Jobs(ctx context.Context, limit int, cursor string) ([]Job, string, error) {
	return readPage[Job](ctx, c, "/api/jobs", url.Values{}, limit, cursor)
}
