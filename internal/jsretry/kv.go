package jsretry

import (
	"context"
	"errors"

	"github.com/nats-io/nats.go/jetstream"
)

// KV writes that ride over a bucket's leader election or a reconnection
// within the caller's deadline, tried again only when they surely reached
// no leader (a write that may have been stored is not repeated: its
// revision check would refuse the repeat and report a conflict that is not
// one). Reads: LeaderGet.

// RevisionMismatch reports whether err is a conditional write's refusal: the
// key is not at the revision given (JetStream's 10071, or 10164 from a
// replicated bucket).
func RevisionMismatch(err error) bool {
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return true
	}
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// Create writes a key that must not exist.
func Create(ctx context.Context, kv jetstream.KeyValue, key string, value []byte) (uint64, error) {
	var rev uint64
	err := Do(ctx, Unsent, func(ctx context.Context) error {
		var err error
		rev, err = kv.Create(ctx, key, value)
		return err
	})
	return rev, err
}

// Update writes a key at revision last.
func Update(ctx context.Context, kv jetstream.KeyValue, key string, value []byte, last uint64) (uint64, error) {
	var rev uint64
	err := Do(ctx, Unsent, func(ctx context.Context) error {
		var err error
		rev, err = kv.Update(ctx, key, value, last)
		return err
	})
	return rev, err
}

// Delete deletes a key.
func Delete(ctx context.Context, kv jetstream.KeyValue, key string, opts ...jetstream.KVDeleteOpt) error {
	return Do(ctx, Unsent, func(ctx context.Context) error { return kv.Delete(ctx, key, opts...) })
}

// Purge removes a key and its history.
func Purge(ctx context.Context, kv jetstream.KeyValue, key string, opts ...jetstream.KVDeleteOpt) error {
	return Do(ctx, Unsent, func(ctx context.Context) error { return kv.Purge(ctx, key, opts...) })
}
