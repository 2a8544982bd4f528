// Package jsretry rides JetStream calls over the moments a cluster cannot
// answer (a stream or bucket electing a leader, a connection
// reconnecting): it retries with backoff within the caller's deadline
// instead of failing the request at once.
package jsretry

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Backoff between tries.
const (
	firstWait = 25 * time.Millisecond
	maxWait   = time.Second
)

// Budget bounds Do's tries when ctx has no deadline.
const Budget = 10 * time.Second

// codeClusterUnavailable is JetStream's "temporarily unavailable" (no
// leader, no quorum).
const codeClusterUnavailable = 10008

// codeStoreFailed is JetStream's refusal to store a message, answered 503:
// the stream or bucket is at a limit (maximum bytes or messages exceeded)
// or the server's store is out of room.
const codeStoreFailed = 10077

// Full reports whether err is JetStream refusing a message because a
// stream, a bucket or the server's store is at its limit: the message was
// not stored, and trying again at once would be refused the same way.
func Full(err error) bool {
	if err == nil {
		// Before the target below, which escapes: a success (the usual
		// case) allocates nothing.
		return false
	}
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == codeStoreFailed
}

// Unsent reports whether err means the request reached no stream leader,
// so nothing was stored: any call may be tried again. A store at its limit
// (see Full) also answers 503, but is not tried again.
func Unsent(err error) bool {
	var apiErr *jetstream.APIError
	if Full(err) {
		return false
	}
	return errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse) ||
		errors.Is(err, nats.ErrConnectionReconnecting) || errors.Is(err, nats.ErrDisconnected) ||
		(errors.As(err, &apiErr) && apiErr.Code == 503) ||
		(errors.As(err, &apiErr) && apiErr.ErrorCode == codeClusterUnavailable)
}

// Unanswered reports whether err means no answer came in time: the call may
// or may not have taken effect, so only a read, or a write the stream
// deduplicates, may be tried again.
func Unanswered(err error) bool {
	return Unsent(err) || errors.Is(err, nats.ErrTimeout) || errors.Is(err, context.DeadlineExceeded)
}

// Do calls op until it succeeds, fails with an error retry does not accept,
// or ctx's deadline (or Budget from now) would pass before the next try. op
// gets a context bounded by that deadline. The last error is returned.
func Do(ctx context.Context, retry func(error) bool, op func(ctx context.Context) error) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, Budget)
		defer cancel()
	}
	deadline, _ := ctx.Deadline()
	return Until(ctx, deadline, retry, op)
}

// Until is Do with the deadline given rather than carried by ctx, which
// spares a hot path a context and its timer per call: op gets ctx as it is
// and must bound its own waits by deadline. No try starts once the
// deadline would pass before it; the last error is returned.
func Until(ctx context.Context, deadline time.Time, retry func(error) bool, op func(ctx context.Context) error) error {
	wait := firstWait
	for {
		err := op(ctx)
		if err == nil || !retry(err) || ctx.Err() != nil {
			return err
		}
		pause := wait/2 + rand.N(wait/2+1) // jitter: replicas do not retry in step
		if time.Until(deadline) < pause {
			return err
		}
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		wait = min(2*wait, maxWait)
	}
}
