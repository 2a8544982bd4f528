package history

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/onestack/webhooks/api"
	"github.com/onestack/webhooks/deliverylog"
	"github.com/onestack/webhooks/dispatcher"
	"github.com/onestack/webhooks/eventindex"
	"github.com/onestack/webhooks/jobs"
	"github.com/onestack/webhooks/subscriptions"
)

// TestErrorsAnswered checks that each cause is answered as its API
// sentinel, wrapped so the cause stays, and that other errors pass as
// they are.
func TestErrorsAnswered(t *testing.T) {
	other := errors.New("something else")
	common := func(err error) error { return apiErr(err) }
	for _, tc := range []struct {
		name      string
		mapf      func(error) error
		cause, as error
	}{
		{"delivery not found", common, deliverylog.ErrNotFound, api.ErrDeliveryNotFound},
		{"event gone", common, dispatcher.ErrEventGone, api.ErrEventGone},
		{"bad cursor", common, deliverylog.ErrInvalid, api.ErrInvalidCursor},
		{"nats timeout", common, nats.ErrTimeout, api.ErrUnavailable},
		{"deadline", common, context.DeadlineExceeded, api.ErrUnavailable},
		{"other", common, other, other},
		{"event not found", lookupErr, eventindex.ErrNotFound, api.ErrEventNotFound},
		{"event cursor", lookupErr, eventindex.ErrInvalid, api.ErrInvalidCursor},
		{"event index down", lookupErr, eventindex.ErrUnavailable, api.ErrUnavailable},
		{"lookup falls back", lookupErr, nats.ErrNoResponders, api.ErrUnavailable},
		{"job not found", recoveryErr, jobs.ErrNotFound, api.ErrJobNotFound},
		{"subscription gone", recoveryErr, dispatcher.ErrSubscriptionGone, subscriptions.ErrNotFound},
		{"jobs down", recoveryErr, jobs.ErrUnavailable, api.ErrUnavailable},
		{"recovery falls back", recoveryErr, deliverylog.ErrNotFound, api.ErrDeliveryNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.mapf(fmt.Errorf("doing it: %w", tc.cause))
			if !errors.Is(err, tc.as) || !errors.Is(err, tc.cause) {
				t.Fatalf("got %v; want it to be %v and keep %v", err, tc.as, tc.cause)
			}
		})
	}
	if apiErr(nil) != nil {
		t.Fatal("apiErr(nil) is not nil")
	}
}
