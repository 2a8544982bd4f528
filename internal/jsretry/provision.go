package jsretry

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// codeNoPeers is JetStream's "no suitable peers for placement": a cluster
// that has just formed, or has just lost or regained a node, does not yet
// know enough online peers to place every replica.
const codeNoPeers = 10005

// codeStoreCreate is JetStream's "error creating store for stream": among
// other causes, a stream made again under the name of one just deleted,
// whose storage the server still removes in the background.
const codeStoreCreate = 10049

// Provisionable reports whether err from creating or updating a stream,
// bucket or consumer may pass if the call is made again: those calls are
// idempotent, so an unanswered one may be repeated, a cluster short of
// online peers for a moment places the replicas once they are back, and a
// stream made again just after its deletion is created once the old
// storage is gone.
func Provisionable(err error) bool {
	var apiErr *jetstream.APIError
	return Unanswered(err) || (errors.As(err, &apiErr) && (apiErr.ErrorCode == codeNoPeers || apiErr.ErrorCode == codeStoreCreate))
}

// Provisioning's bounds: the whole budget when ctx has no deadline (a
// process starting beside a cluster that is still forming, or loaded,
// waits that long before it gives up), and one try, so that a request the
// cluster lost is made again instead of using up the budget.
const (
	provisionBudget = 30 * time.Second
	provisionTry    = 5 * time.Second
)

// Provision runs a create-or-update call (of a stream, bucket or consumer)
// until it succeeds or fails with an error Provisionable does not accept,
// within ctx's deadline (or a 30 s budget when it has none), each try
// bounded to 5 s.
func Provision[T any](ctx context.Context, op func(ctx context.Context) (T, error)) (T, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, provisionBudget)
		defer cancel()
	}
	var v T
	err := Do(ctx, Provisionable, func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, provisionTry)
		defer cancel()
		var err error
		v, err = op(ctx)
		return err
	})
	return v, err
}
