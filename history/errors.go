package history

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/onestack/webhooks/problem"
)

// natsDown are the errors of NATS itself that mean it cannot be reached
// now, or did not answer in time.
var natsDown = []error{
	nats.ErrConnectionClosed, nats.ErrTimeout, nats.ErrNoResponders, jetstream.ErrNoStreamResponse,
	nats.ErrConnectionReconnecting, nats.ErrDisconnected, context.DeadlineExceeded,
}

// storeErr returns err, an error of the stores this package reads, as one
// of the problem vocabulary: the stores' own errors are already; an error
// of NATS itself, which reaches here unwrapped from a stream read, is
// marked problem.ErrUnavailable.
func storeErr(err error) error {
	if err == nil || errors.Is(err, problem.ErrUnavailable) {
		return err
	}
	for _, down := range natsDown {
		if errors.Is(err, down) {
			return fmt.Errorf("%w: %w", problem.ErrUnavailable, err)
		}
	}
	return err
}
