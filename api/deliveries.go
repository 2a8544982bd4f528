package api

import (
	"errors"
	"net/http"
	"time"

	"github.com/onestack/webhooks/dispatcher"
	"github.com/onestack/webhooks/subscriptions"
)

type attemptView struct {
	At           time.Time `json:"at"`
	StatusCode   *int      `json:"statusCode"`
	Error        *string   `json:"error"`
	DurationMs   int64     `json:"durationMs"`
	ResponseBody string    `json:"responseBody"`
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

func viewDelivery(d dispatcher.Delivery) deliveryView {
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
		v.Attempts[i] = av
	}
	return v
}

// deliveryErr maps the dispatcher's read errors.
func deliveryErr(err error) error {
	switch {
	case errors.Is(err, dispatcher.ErrNotFound):
		return errNotFound("delivery")
	case errors.Is(err, dispatcher.ErrEventGone):
		return &Error{Status: http.StatusNotFound, Code: CodeNotFound, Message: "the event of this delivery is no longer retained"}
	}
	return err
}

func (a *API) listDeliveries(w http.ResponseWriter, r *http.Request, c *caller) error {
	s, err := a.subscription(c, r.PathValue("id"))
	if err != nil {
		return err
	}
	limit, before, err := page(r)
	if err != nil {
		return err
	}
	status := r.URL.Query().Get("status")
	switch status {
	case "", dispatcher.StatusPending, dispatcher.StatusSucceeded, dispatcher.StatusFailed, dispatcher.StatusSkipped:
	default:
		return subscriptions.Invalid("status", "must be pending, succeeded, failed or skipped")
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
		return deliveryErr(err)
	}
	writeJSON(w, http.StatusOK, viewDelivery(d))
	return nil
}

func (a *API) retryDelivery(w http.ResponseWriter, r *http.Request, c *caller) error {
	d, err := a.cfg.Deliveries.Retry(r.Context(), c.tenant, r.PathValue("id"))
	if err != nil {
		return deliveryErr(err)
	}
	writeJSON(w, http.StatusAccepted, viewDelivery(d))
	return nil
}

func (a *API) replay(w http.ResponseWriter, r *http.Request, c *caller) error {
	s, err := a.subscription(c, r.PathValue("id"))
	if err != nil {
		return err
	}
	var in struct {
		Since *time.Time `json:"since"`
		Until *time.Time `json:"until"`
	}
	if err := decode(w, r, a.cfg.MaxBody, &in); err != nil {
		return err
	}
	var fields []subscriptions.FieldError
	if in.Since == nil {
		fields = append(fields, subscriptions.FieldError{Field: "since", Reason: "is required (RFC 3339)"})
	}
	if in.Since != nil && in.Until != nil && in.Until.Before(*in.Since) {
		fields = append(fields, subscriptions.FieldError{Field: "until", Reason: "must not be before since"})
	}
	if len(fields) > 0 {
		return &subscriptions.ValidationError{Fields: fields}
	}
	var until time.Time
	if in.Until != nil {
		until = *in.Until
	}
	n, err := a.cfg.Deliveries.Replay(r.Context(), s, *in.Since, until)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusAccepted, map[string]int{"replayed": n})
	return nil
}
