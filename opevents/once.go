package opevents

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/onestack/webhooks/internal/jsretry"
)

// OnceBucket is the KV bucket that decides which replica raises an
// operational event several replicas may all find due (a tenant's limit
// this hour, a certificate about to expire): the one whose create of the
// event's key succeeds.
const OnceBucket = "operational_once"

// onceMarkerTTL is how long the marker of a key whose TTL ran out stays
// in the bucket (JetStream requires markers for per-key TTLs).
const onceMarkerTTL = time.Minute

// onceMaxAge bounds any key's life in the bucket, a backstop over the
// TTL each key is created with (the longest, an expired certificate's,
// is a year).
const onceMaxAge = expiredTTL + 24*time.Hour

// OnceConfig places the bucket.
type OnceConfig struct {
	// Replicas is the bucket's replication factor (default 1).
	Replicas int
	// MaxBytes bounds the bucket (0: none). A full bucket decides nothing:
	// the events it cannot decide are not raised, and counted as dropped.
	MaxBytes int64
}

// Once decides, across replicas, which one raises an event: the first
// create of its key in OnceBucket. Each key lives for the TTL it was
// created with, so an event due again after it is raised again. It does
// not rely on the events stream's duplicate window, which is short.
type Once struct {
	js jetstream.JetStream
	kv jetstream.KeyValue
}

// OpenOnce creates the bucket if needed (every replica does at start).
func OpenOnce(ctx context.Context, js jetstream.JetStream, cfg OnceConfig) (*Once, error) {
	if cfg.Replicas <= 0 {
		cfg.Replicas = 1
	}
	kv, err := jsretry.Provision(ctx, func(ctx context.Context) (jetstream.KeyValue, error) {
		return js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:         OnceBucket,
			Description:    "Which replica raised an operational event due on every replica (limit events, certificate warnings)",
			History:        1,
			TTL:            onceMaxAge,
			MaxBytes:       cfg.MaxBytes,
			Storage:        jetstream.FileStorage,
			Replicas:       cfg.Replicas,
			LimitMarkerTTL: onceMarkerTTL,
		})
	})
	if err != nil {
		return nil, fmt.Errorf("open bucket %s: %w", OnceBucket, err)
	}
	return &Once{js: js, kv: kv}, nil
}

// Claim reports whether this call is the one of the cluster that claims
// key for ttl: exactly one caller gets true until the key's TTL runs out.
// A create whose answer was lost is tried again, and recognised as this
// call's own by the token it wrote, so it is not taken for another
// replica's.
func (o *Once) Claim(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	token := make([]byte, 16)
	rand.Read(token)
	value := []byte(hex.EncodeToString(token))
	err := jsretry.Do(ctx, jsretry.Unanswered, func(ctx context.Context) error {
		_, err := o.kv.Create(ctx, key, value, jetstream.KeyTTL(max(ttl, time.Second)))
		return err
	})
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, jetstream.ErrKeyExists):
		e, gerr := jsretry.LeaderGet(ctx, o.js, OnceBucket, key)
		return gerr == nil && bytes.Equal(e.Value(), value), nil
	default:
		return false, fmt.Errorf("claim %s: %w", key, err)
	}
}
