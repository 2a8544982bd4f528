package jsretry

import (
	"context"
	"errors"

	"github.com/nats-io/nats.go/jetstream"
)

// codeNoPeers is JetStream's "no suitable peers for placement": a cluster
// that has just formed, or has just lost or regained a node, does not yet
// know enough online peers to place every replica.
const codeNoPeers = 10005

// Provisionable reports whether err from creating or updating a stream,
// bucket or consumer may pass if the call is made again: those calls are
// idempotent, so an unanswered one may be repeated, and a cluster short of
// online peers for a moment places the replicas once they are back.
func Provisionable(err error) bool {
	var apiErr *jetstream.APIError
	return Unanswered(err) || (errors.As(err, &apiErr) && apiErr.ErrorCode == codeNoPeers)
}

// Provision runs a create-or-update call (of a stream, bucket or consumer)
// until it succeeds or fails with an error Provisionable does not accept,
// within ctx's deadline (or a 10 s budget when it has none).
func Provision[T any](ctx context.Context, op func(ctx context.Context) (T, error)) (T, error) {
	var v T
	err := Do(ctx, Provisionable, func(ctx context.Context) error {
		var err error
		v, err = op(ctx)
		return err
	})
	return v, err
}
