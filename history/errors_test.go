package history

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/onestack/webhooks/deliverylog"
	"github.com/onestack/webhooks/dispatcher"
	"github.com/onestack/webhooks/eventindex"
	"github.com/onestack/webhooks/jobs"
	"github.com/onestack/webhooks/problem"
)

// TestErrorsAnswered checks that each cause reaches the API as an error
// of the problem vocabulary's kind, wrapped so the cause stays, and that
// other errors pass as they are. (The API's answer to each kind is
// api's TestAnswer.)
func TestErrorsAnswered(t *testing.T) {
	other := errors.New("something else")
	for _, tc := range []struct {
		name      string
		cause, as error
	}{
		{"delivery not found", deliverylog.ErrNotFound, problem.ErrNotFound},
		{"event gone", dispatcher.ErrEventGone, problem.ErrNotFound},
		{"delivery log down", deliverylog.ErrUnavailable, problem.ErrUnavailable},
		{"nats timeout", nats.ErrTimeout, problem.ErrUnavailable},
		{"no responders", nats.ErrNoResponders, problem.ErrUnavailable},
		{"deadline", context.DeadlineExceeded, problem.ErrUnavailable},
		{"other", other, other},
		{"event not found", eventindex.ErrNotFound, problem.ErrNotFound},
		{"event index down", eventindex.ErrUnavailable, problem.ErrUnavailable},
		{"job not found", jobs.ErrNotFound, problem.ErrNotFound},
		{"subscription gone", jobs.Permanent(dispatcher.ErrSubscriptionGone), problem.ErrNotFound},
		{"jobs down", jobs.ErrUnavailable, problem.ErrUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := storeErr(fmt.Errorf("doing it: %w", tc.cause))
			if !errors.Is(err, tc.as) || !errors.Is(err, tc.cause) {
				t.Fatalf("got %v; want it to be %v and keep %v", err, tc.as, tc.cause)
			}
		})
	}
	if storeErr(nil) != nil {
		t.Fatal("storeErr(nil) is not nil")
	}
}
