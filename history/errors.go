package history

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/onestack/webhooks/api"
	"github.com/onestack/webhooks/deliverylog"
	"github.com/onestack/webhooks/dispatcher"
	"github.com/onestack/webhooks/eventindex"
	"github.com/onestack/webhooks/events"
	"github.com/onestack/webhooks/jobs"
	"github.com/onestack/webhooks/subscriptions"
)

// answer pairs a cause with the API's sentinel it is answered as.
type answer struct{ cause, as error }

// answered wraps err in the sentinel of the first answer whose cause it
// is; nil when it is none's.
func answered(err error, answers ...answer) error {
	for _, a := range answers {
		if errors.Is(err, a.cause) {
			return fmt.Errorf("%w: %w", a.as, err)
		}
	}
	return nil
}

// apiErr maps the errors of its caller's part, first, to the API's
// sentinels, then the engine's and the log's; an error of NATS itself
// means a dependency is unavailable.
func apiErr(err error, first ...answer) error {
	if err == nil {
		return nil
	}
	if out := answered(err, first...); out != nil {
		return out
	}
	if out := answered(err,
		answer{deliverylog.ErrNotFound, api.ErrDeliveryNotFound},
		answer{dispatcher.ErrEventGone, api.ErrEventGone},
		answer{deliverylog.ErrInvalid, api.ErrInvalidCursor},
		answer{deliverylog.ErrUnavailable, api.ErrUnavailable}, answer{events.ErrPublish, api.ErrUnavailable},
		answer{nats.ErrConnectionClosed, api.ErrUnavailable}, answer{nats.ErrTimeout, api.ErrUnavailable},
		answer{nats.ErrNoResponders, api.ErrUnavailable}, answer{jetstream.ErrNoStreamResponse, api.ErrUnavailable},
		answer{nats.ErrConnectionReconnecting, api.ErrUnavailable}, answer{nats.ErrDisconnected, api.ErrUnavailable},
		answer{context.DeadlineExceeded, api.ErrUnavailable}); out != nil {
		return out
	}
	return err
}

// lookupErr maps the event index's errors, then as apiErr does.
func lookupErr(err error) error {
	return apiErr(err, answer{eventindex.ErrNotFound, api.ErrEventNotFound},
		answer{eventindex.ErrInvalid, api.ErrInvalidCursor}, answer{eventindex.ErrUnavailable, api.ErrUnavailable})
}

// recoveryErr maps the worker's and the runner's errors, then as apiErr
// does.
func recoveryErr(err error) error {
	return apiErr(err, answer{jobs.ErrNotFound, api.ErrJobNotFound},
		answer{dispatcher.ErrSubscriptionGone, subscriptions.ErrNotFound}, answer{jobs.ErrUnavailable, api.ErrUnavailable})
}
