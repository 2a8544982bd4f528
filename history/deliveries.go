package history

import (
	"context"
	"encoding/hex"

	"github.com/onestack/webhooks/api"
	"github.com/onestack/webhooks/deliverylog"
	"github.com/onestack/webhooks/dispatcher"
	"github.com/onestack/webhooks/subscriptions"
)

// Deliveries serves the API's deliveries from the dispatcher (what acts)
// and the attempt log's index (what reads), in the API's own types and
// errors, so the API knows neither of them nor NATS.
type Deliveries struct {
	disp  *dispatcher.Dispatcher
	index *deliverylog.Index
}

var _ api.Deliveries = Deliveries{}

// NewDeliveries returns the deliveries that disp makes and index reads.
func NewDeliveries(disp *dispatcher.Dispatcher, index *deliverylog.Index) Deliveries {
	return Deliveries{disp: disp, index: index}
}

// SendTest delivers a webhook.test event to sub only.
func (d Deliveries) SendTest(ctx context.Context, sub subscriptions.Subscription) (string, error) {
	id, err := d.disp.SendTest(ctx, sub)
	return id, storeErr(err)
}

// Delivery is one of tenant's deliveries, with its attempts.
func (d Deliveries) Delivery(ctx context.Context, tenant, id string) (api.Delivery, error) {
	return delivery(d.index.Delivery(ctx, tenant, id))
}

// Deliveries lists a subscription's deliveries as api.Deliveries says.
func (d Deliveries) Deliveries(ctx context.Context, tenant, sub, status, before string, limit int) ([]api.Delivery, bool, error) {
	list, more, err := d.index.List(ctx, tenant, sub, status, before, limit)
	if err != nil {
		return nil, false, storeErr(err)
	}
	return each(list, apiDelivery), more, nil
}

// Backlog counts a subscription's pending deliveries.
func (d Deliveries) Backlog(ctx context.Context, tenant, sub string) (int, error) {
	n, err := d.index.Pending(ctx, tenant, sub)
	return n, storeErr(err)
}

// Retry makes one more attempt of a delivery now.
func (d Deliveries) Retry(ctx context.Context, tenant, id string) (api.Delivery, error) {
	return delivery(d.disp.Retry(ctx, tenant, id))
}

// delivery is the API's answer of one delivery read or retried.
func delivery(dlv deliverylog.Delivery, err error) (api.Delivery, error) {
	if err != nil {
		return api.Delivery{}, storeErr(err)
	}
	return apiDelivery(dlv), nil
}

// each is f of each of list, in order.
func each[T, U any](list []T, f func(T) U) []U {
	out := make([]U, len(list))
	for i, v := range list {
		out[i] = f(v)
	}
	return out
}

// apiDelivery is d in the API's type.
func apiDelivery(d deliverylog.Delivery) api.Delivery {
	out := api.Delivery{
		ID: d.ID, EventID: d.EventID, EventType: d.EventType, SubscriptionID: d.SubscriptionID,
		Status: d.Status, NextAttemptAt: d.NextAttemptAt, CreatedAt: d.CreatedAt,
		Attempts: make([]api.Attempt, len(d.Attempts)),
	}
	for i, a := range d.Attempts {
		out.Attempts[i] = api.Attempt{At: a.At, StatusCode: a.StatusCode, Error: a.Error, DurationMs: a.DurationMs, ResponseBody: a.ResponseBody}
		if a.TraceID != ([16]byte{}) {
			out.Attempts[i].TraceID = hex.EncodeToString(a.TraceID[:])
		}
	}
	return out
}
