package api

import (
	"net/http"
	"time"

	"github.com/onestack/webhooks/problem"
)

// Delivery statuses.
const (
	StatusPending   = "pending"
	StatusSucceeded = "succeeded"
	StatusFailed    = "failed"
	StatusSkipped   = "skipped"
)

// Delivery is one event going to one subscription, with every attempt.
type Delivery struct {
	ID             string
	EventID        string
	EventType      string
	SubscriptionID string
	Status         string
	Attempts       []Attempt
	NextAttemptAt  *time.Time
	CreatedAt      time.Time
}

// Attempt is one try of a delivery; StatusCode is zero and Error set when
// no answer came.
type Attempt struct {
	At           time.Time
	StatusCode   int
	Error        string
	DurationMs   int64
	ResponseBody string
	// TraceID is the attempt's W3C trace id, 32 lower-case hex digits (the
	// traceparent the receiver got); empty when unknown.
	TraceID string
}

// Errors a Deliveries implementation may return, of the problem
// vocabulary.
var (
	ErrDeliveryNotFound error = problem.NotFound("delivery")
	ErrEventGone        error = problem.New(problem.ErrNotFound, "the event of this delivery is no longer retained")
	ErrInvalidCursor    error = problem.ErrInvalidCursor
	// ErrUnavailable: a dependency (NATS, the attempt log) cannot be reached.
	ErrUnavailable = problem.ErrUnavailable
)

type attemptView struct {
	At           time.Time `json:"at"`
	StatusCode   *int      `json:"statusCode"`
	Error        *string   `json:"error"`
	DurationMs   int64     `json:"durationMs"`
	ResponseBody string    `json:"responseBody"`
	TraceID      *string   `json:"traceId"`
}

type deliveryView struct {
	ID             string        `json:"id"`
	EventID        string        `json:"eventId"`
	EventType      string        `json:"eventType"`
	SubscriptionID string        `json:"subscriptionId"`
	Status         string        `json:"status"`
	Attempts       []attemptView `json:"attempts"`
	NextAttemptAt  *time.Time    `json:"nextAttemptAt"`
	CreatedAt      time.Time     `json:"createdAt"`
}

func viewDelivery(d Delivery) deliveryView {
	v := deliveryView{ID: d.ID, EventID: d.EventID, EventType: d.EventType, SubscriptionID: d.SubscriptionID,
		Status: d.Status, NextAttemptAt: d.NextAttemptAt, CreatedAt: d.CreatedAt, Attempts: make([]attemptView, len(d.Attempts))}
	for i, at := range d.Attempts {
		av := attemptView{At: at.At, DurationMs: at.DurationMs, ResponseBody: at.ResponseBody}
		if at.StatusCode != 0 {
			code := at.StatusCode
			av.StatusCode = &code
		}
		if at.Error != "" {
			msg := at.Error
			av.Error = &msg
		}
		if at.TraceID != "" {
			id := at.TraceID
			av.TraceID = &id
		}
		v.Attempts[i] = av
	}
	return v
}

func (a *API) listDeliveries(w http.ResponseWriter, r *http.Request, c *caller) error {
	s, err := a.subscription(r, c, r.PathValue("id"))
	if err != nil {
		return err
	}
	limit, before, err := page(r)
	if err != nil {
		return err
	}
	status := r.URL.Query().Get("status")
	switch status {
	case "", StatusPending, StatusSucceeded, StatusFailed, StatusSkipped:
	default:
		return problem.Invalid("status", "must be pending, succeeded, failed or skipped")
	}
	list, more, err := a.cfg.Deliveries.Deliveries(r.Context(), c.tenant, s.ID, status, before, limit)
	if err != nil {
		return err
	}
	out := listPage[deliveryView]{Data: make([]deliveryView, len(list))}
	for i, d := range list {
		out.Data[i] = viewDelivery(d)
	}
	if more && len(list) > 0 {
		out.NextCursor = encodeCursor(list[len(list)-1].ID)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) getDelivery(w http.ResponseWriter, r *http.Request, c *caller) error {
	d, err := a.cfg.Deliveries.Delivery(r.Context(), c.tenant, r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, viewDelivery(d))
	return nil
}

func (a *API) retryDelivery(w http.ResponseWriter, r *http.Request, c *caller) error {
	d, err := a.cfg.Deliveries.Retry(r.Context(), c.tenant, r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusAccepted, viewDelivery(d))
	return nil
}

func (a *API) replay(w http.ResponseWriter, r *http.Request, c *caller) error {
	s, err := a.subscription(r, c, r.PathValue("id"))
	if err != nil {
		return err
	}
	var in timeRange
	if err := decode(w, r, a.cfg.MaxBody, &in); err != nil {
		return err
	}
	if fields := in.check(); len(fields) > 0 {
		return &problem.ValidationError{Fields: fields}
	}
	if err := a.startReplay(w, r, s, *in.Since, in.until()); err != nil {
		return err
	}
	a.noticeUsage(c)
	return nil
}

// timeRange is the range of a replay or a recovery: since is required,
// until (zero: now) must not be before it.
type timeRange struct {
	Since *time.Time `json:"since"`
	Until *time.Time `json:"until"`
}

// check returns the range's field errors.
func (t timeRange) check() []problem.FieldError {
	var fields []problem.FieldError
	if t.Since == nil {
		fields = append(fields, problem.FieldError{Field: "since", Reason: "is required (RFC 3339)"})
	}
	if t.Since != nil && t.Until != nil && t.Until.Before(*t.Since) {
		fields = append(fields, problem.FieldError{Field: "until", Reason: "must not be before since"})
	}
	return fields
}

// until is the range's end, zero when open.
func (t timeRange) until() time.Time {
	if t.Until == nil {
		return time.Time{}
	}
	return *t.Until
}
