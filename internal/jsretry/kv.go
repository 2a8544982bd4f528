package jsretry

import (
	"context"

	"github.com/nats-io/nats.go/jetstream"
)

// KV writes that ride over a bucket's leader election or a reconnection
// within the caller's deadline, tried again only when they surely reached
// no leader (a write that may have been stored is not repeated: its
// revision check would refuse the repeat and report a conflict that is not
// one). Reads: LeaderGet.

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
