// Package idempotency keeps the answers to requests made with an
// Idempotency-Key, so a client that repeats a request (after a timeout, a
// crash, a lost answer) gets the first answer again instead of a second
// resource. Answers live in a JetStream KV bucket that expires them after a
// day, shared by every replica.
package idempotency

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/onestack/webhooks/internal/jsretry"
	"github.com/onestack/webhooks/problem"
)

// Bucket is the KV bucket of stored answers.
const Bucket = "idempotency"

// Errors of Begin.
var (
	// ErrMismatch means the key was used before with a different request
	// (problem.ErrConflict).
	ErrMismatch = problem.New(problem.ErrConflict, "this Idempotency-Key was used with a different request")
	// ErrInProgress means the first request with the key is still running
	// (problem.ErrInProgress).
	ErrInProgress = problem.New(problem.ErrInProgress, "the first request with this Idempotency-Key is still running; retry later")
	// ErrUnavailable means the bucket (NATS) could not be reached
	// (problem.ErrUnavailable).
	ErrUnavailable = problem.New(problem.ErrUnavailable, "idempotency store unavailable")
)

// Config tunes the store. The zero value means the defaults.
type Config struct {
	// TTL is how long an answer is kept (default 24 h).
	TTL time.Duration
	// Wait is how long a duplicate waits for the first request to finish
	// (default 10 s).
	Wait time.Duration
	// StaleAfter is when a claim whose process never finished may be taken
	// over (default 1 min; requests are bounded well below it).
	StaleAfter time.Duration
	// Replicas is the bucket's replication factor (default 1).
	Replicas int
	// MaxBytes bounds the bucket (0: no bound); when it is full a new
	// answer is not stored (JetStream refuses it) and its request is
	// answered 503.
	MaxBytes int64
	Now      func() time.Time
}

// Store keeps answers. It is safe for concurrent use.
type Store struct {
	js  jetstream.JetStream
	kv  jetstream.KeyValue
	cfg Config
}

// Answer is a stored response.
type Answer struct {
	Status int               `json:"status"`
	Header map[string]string `json:"header,omitempty"`
	Body   []byte            `json:"body,omitempty"`
}

// record is what the bucket holds for one key.
type record struct {
	Fingerprint string    `json:"fingerprint"`
	Started     time.Time `json:"started"`
	Answer      *Answer   `json:"answer,omitempty"` // nil while in progress
}

// Open creates the bucket if needed.
func Open(ctx context.Context, js jetstream.JetStream, cfg Config) (*Store, error) {
	if cfg.TTL <= 0 {
		cfg.TTL = 24 * time.Hour
	}
	if cfg.Wait <= 0 {
		cfg.Wait = 10 * time.Second
	}
	if cfg.StaleAfter <= 0 {
		cfg.StaleAfter = time.Minute
	}
	if cfg.Replicas <= 0 {
		cfg.Replicas = 1
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	kv, err := jsretry.Provision(ctx, func(ctx context.Context) (jetstream.KeyValue, error) {
		return js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket: Bucket, History: 1, TTL: cfg.TTL, Storage: jetstream.FileStorage, Replicas: cfg.Replicas,
			MaxBytes: cfg.MaxBytes,
		})
	})
	if err != nil {
		return nil, fmt.Errorf("open bucket %s: %w", Bucket, err)
	}
	return &Store{js: js, kv: kv, cfg: cfg}, nil
}

// Claim is the right to run the first request with a key. Call Finish
// with its answer, or Abandon to let a repeat run it again.
type Claim struct {
	s   *Store
	key string
	rev uint64
	rec record
}

// Begin looks up (scope, key) for a request whose fingerprint (a hash of
// what makes it the same request) is given. It returns the stored answer to
// replay, or a Claim when this request is the first (or takes over a stale
// claim); ErrMismatch for another request under the same key; ErrInProgress
// when the first is still running after the configured wait.
func (s *Store) Begin(ctx context.Context, scope, key, fingerprint string) (*Answer, *Claim, error) {
	k := storeKey(scope, key)
	// The wait bounds this request's latency, in real time; the claim's
	// age is judged by the store's clock.
	wait := time.NewTimer(s.cfg.Wait)
	defer wait.Stop()
	for {
		fresh := record{Fingerprint: fingerprint, Started: s.cfg.Now().UTC()}
		b, _ := json.Marshal(fresh)
		rev, err := jsretry.Create(ctx, s.kv, k, b)
		if err == nil {
			return nil, &Claim{s: s, key: k, rev: rev, rec: fresh}, nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return nil, nil, fmt.Errorf("claim idempotency key: %w: %w", ErrUnavailable, err)
		}
		e, err := jsretry.LeaderGet(ctx, s.js, Bucket, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue // expired or abandoned in between: claim it
		}
		if err != nil {
			return nil, nil, fmt.Errorf("read idempotency key: %w: %w", ErrUnavailable, err)
		}
		var rec record
		if err := json.Unmarshal(e.Value(), &rec); err != nil {
			return nil, nil, fmt.Errorf("decode idempotency record: %w", err)
		}
		switch {
		case rec.Fingerprint != fingerprint:
			return nil, nil, ErrMismatch
		case rec.Answer != nil:
			return rec.Answer, nil, nil
		case s.cfg.Now().Sub(rec.Started) > s.cfg.StaleAfter:
			// The first request's process died: take the claim over, once.
			rev, err := jsretry.Update(ctx, s.kv, k, b, e.Revision())
			if err == nil {
				return nil, &Claim{s: s, key: k, rev: rev, rec: fresh}, nil
			}
		}
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-wait.C:
			return nil, nil, ErrInProgress
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Finish stores the answer for every repeat within the TTL.
func (c *Claim) Finish(ctx context.Context, a Answer) error {
	c.rec.Answer = &a
	b, err := json.Marshal(c.rec)
	if err != nil {
		return fmt.Errorf("encode idempotency answer: %w", err)
	}
	if _, err := jsretry.Update(ctx, c.s.kv, c.key, b, c.rev); err != nil {
		return fmt.Errorf("store idempotency answer: %w", err)
	}
	return nil
}

// Abandon releases the claim without an answer (the request failed in a
// way a repeat should try again), so the next repeat runs it.
func (c *Claim) Abandon(ctx context.Context) error {
	if err := jsretry.Delete(ctx, c.s.kv, c.key, jetstream.LastRevision(c.rev)); err != nil {
		return fmt.Errorf("abandon idempotency key: %w", err)
	}
	return nil
}

// storeKey hashes scope and key into a valid KV key.
func storeKey(scope, key string) string {
	sum := sha256.Sum256([]byte(scope + "\x00" + key))
	return hex.EncodeToString(sum[:])
}

// Fingerprint hashes the parts that make two requests the same.
func Fingerprint(parts ...[]byte) string {
	h := sha256.New()
	for _, p := range parts {
		var n [8]byte
		for i := range n {
			n[i] = byte(len(p) >> (8 * i))
		}
		h.Write(n[:])
		h.Write(p)
	}
	return hex.EncodeToString(h.Sum(nil))
}
