package opevents

import (
	"encoding/json"
	"time"

	"github.com/onestack/webhooks/events"
	"github.com/onestack/webhooks/jobs"
	"github.com/onestack/webhooks/subscriptions"
)

// Endpoint names the subscription an event is about.
type Endpoint struct {
	Tenant, Subscription, URL string
}

// Failing is subscription.failing for an endpoint whose run of failures h
// was just found failing (h.FailingEvent is its id), after an attempt
// that failed with lastErr (and lastStatus, if it answered).
func Failing(ep Endpoint, h subscriptions.Health, lastErr string, lastStatus int) events.Event {
	data, _ := json.Marshal(struct {
		TenantID       string    `json:"tenantId"`
		SubscriptionID string    `json:"subscriptionId"`
		URL            string    `json:"url"`
		Failures       int       `json:"failures"`
		FailingSince   time.Time `json:"failingSince"`
		LastError      string    `json:"lastError,omitempty"`
		LastStatusCode int       `json:"lastStatusCode,omitempty"`
	}{ep.Tenant, ep.Subscription, ep.URL, h.Failures, h.FirstFailure.UTC(), lastErr, lastStatus})
	id := h.FailingEvent
	if id == "" {
		id = events.NewID()
	}
	return events.Event{ID: id, Type: events.TypeSubscriptionFailing, TenantID: ep.Tenant, OccurredAt: h.FailingAt.UTC(), Data: data}
}

// Recovered is subscription.recovered for an endpoint whose failing run h
// a success at now ended. Its id is the failing event's, marked: two
// replicas ending the same run raise one event.
func Recovered(ep Endpoint, h subscriptions.Health, now time.Time) events.Event {
	data, _ := json.Marshal(struct {
		TenantID       string    `json:"tenantId"`
		SubscriptionID string    `json:"subscriptionId"`
		URL            string    `json:"url"`
		FailingSince   time.Time `json:"failingSince"`
		FailingAt      time.Time `json:"failingAt"`
		RecoveredAt    time.Time `json:"recoveredAt"`
	}{ep.Tenant, ep.Subscription, ep.URL, h.FirstFailure.UTC(), h.FailingAt.UTC(), now.UTC()})
	id := events.NewID()
	if h.FailingEvent != "" {
		id = h.FailingEvent + "_recovered"
	}
	return events.Event{ID: id, Type: events.TypeSubscriptionRecovered, TenantID: ep.Tenant, OccurredAt: now.UTC(), Data: data}
}

// Disabled is subscription.disabled for an endpoint turned off for reason.
func Disabled(ep Endpoint, reason string, now time.Time) events.Event {
	data, _ := json.Marshal(struct {
		TenantID       string `json:"tenantId"`
		SubscriptionID string `json:"subscriptionId"`
		URL            string `json:"url,omitempty"`
		Reason         string `json:"reason"`
	}{ep.Tenant, ep.Subscription, ep.URL, reason})
	return events.Event{ID: events.NewID(), Type: events.TypeSubscriptionDisabled, TenantID: ep.Tenant, OccurredAt: now.UTC(), Data: data}
}

// Exhausted is delivery.exhausted for a delivery given up after attempts.
func Exhausted(ep Endpoint, delivery, eventID, eventType string, attempts int, now time.Time) events.Event {
	data, _ := json.Marshal(struct {
		TenantID       string `json:"tenantId"`
		DeliveryID     string `json:"deliveryId"`
		SubscriptionID string `json:"subscriptionId"`
		EventID        string `json:"eventId"`
		EventType      string `json:"eventType"`
		Attempts       int    `json:"attempts"`
	}{ep.Tenant, delivery, ep.Subscription, eventID, eventType, attempts})
	return events.Event{ID: events.NewID(), Type: events.TypeDeliveryExhausted, TenantID: ep.Tenant, OccurredAt: now.UTC(), Data: data}
}

// JobFinished is job.finished for a job that ended (done or failed). Its
// id is made of the job's, so the one end of a job is one event.
func JobFinished(j jobs.Job) events.Event {
	at := j.UpdatedAt.UTC()
	data, _ := json.Marshal(struct {
		TenantID       string    `json:"tenantId"`
		JobID          string    `json:"jobId"`
		Kind           string    `json:"kind"`
		SubscriptionID string    `json:"subscriptionId,omitempty"`
		Status         string    `json:"status"`
		Total          int64     `json:"total"`
		Sent           int64     `json:"sent"`
		Filtered       int64     `json:"filtered"`
		Error          string    `json:"error,omitempty"`
		CreatedAt      time.Time `json:"createdAt"`
		FinishedAt     time.Time `json:"finishedAt"`
	}{j.TenantID, j.ID, j.Kind, j.SubscriptionID, j.Status, j.Total, j.Sent, j.Filtered, j.Error, j.CreatedAt.UTC(), at})
	return events.Event{ID: events.IDPrefix + j.ID, Type: events.TypeJobFinished, TenantID: j.TenantID, OccurredAt: at, Data: data}
}

// JobFinished raises job.finished for j in the background.
func (e *Emitter) JobFinished(j jobs.Job) {
	if e == nil || j.TenantID == e.cfg.Operator {
		return
	}
	e.Publish(JobFinished(j))
}
