// Package eventindex is a local, on-disk index of the EVENTS stream, so
// that a tenant can look its events up: list them newest first (by type,
// by time) and find one by id, each at the cost of the page asked for,
// never of the history kept.
//
// It follows the stream with an ordered consumer into a small pebble store
// of keys only (an event's body stays in the stream, read by sequence when
// asked for), resumes from the last sequence it applied after a restart,
// rebuilds itself when the stream is not the one it was built from, and
// forgets events as the stream's retention removes them. Like the attempt
// log's index it is a cache of a replicated stream: any replica can
// rebuild it. Its memory is bounded by its block cache and memtables,
// whatever the number of events.
package eventindex

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/onestack/webhooks/events"
	"github.com/onestack/webhooks/internal/health"
	"github.com/onestack/webhooks/internal/streamindex"
)

// Errors of the package.
var (
	ErrNotFound    = errors.New("event not found")
	ErrUnavailable = errors.New("event index unavailable")
	// ErrInvalid: a cursor this index did not make.
	ErrInvalid = errors.New("invalid event index argument")
)

// Config places and sizes an Index; zero values mean the defaults.
type Config struct {
	// Dir is the index's directory (required); deleting it costs a
	// rebuild, never data.
	Dir string
	// Retention is how long an event is kept after it was stored (default
	// 14 days); it should match the stream's.
	Retention time.Duration
	// RetentionEvery is how often expired events are forgotten (default one
	// minute).
	RetentionEvery time.Duration
	// CacheBytes bounds the store's block cache (default 8 MiB); its memory
	// is about this plus two 4 MiB memtables.
	CacheBytes int64
	// Now is the clock retention reads (default time.Now).
	Now func() time.Time
	// Health, if set, hears of what keeps the index from serving: a panic
	// in its goroutines, corruption found while running.
	Health *health.Health
}

func (c Config) withDefaults() Config {
	if c.Retention <= 0 {
		c.Retention = events.DefaultRetention
	}
	if c.RetentionEvery <= 0 {
		c.RetentionEvery = time.Minute
	}
	if c.CacheBytes <= 0 {
		c.CacheBytes = 8 << 20
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// The store's sizes: its memory is about CacheBytes plus two memtables.
const (
	memTableBytes = 4 << 20
	applyMax      = 256
)

// Index is the event index. It is safe for concurrent use.
type Index struct {
	log   *slog.Logger
	store *streamindex.Store
	db    *pebble.DB // store.DB(), for reads
}

// Open opens the index in cfg.Dir and follows the events stream, which
// must exist, from the message after the last one applied; an index whose
// files cannot be opened is moved aside and rebuilt (see
// [streamindex.Open]).
func Open(ctx context.Context, js jetstream.JetStream, cfg Config, logger *slog.Logger) (*Index, error) {
	if cfg.Dir == "" {
		return nil, fmt.Errorf("event index: no directory: %w", ErrInvalid)
	}
	cfg = cfg.withDefaults()
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	ix := &Index{log: logger}
	store, err := streamindex.Open(streamindex.Config{
		Name:           "event index",
		Dir:            cfg.Dir,
		ErrUnavailable: ErrUnavailable,
		CacheBytes:     cfg.CacheBytes,
		MemTableBytes:  memTableBytes,
		MemTables:      2,
		Stream:         events.StreamName,
		FilterSubjects: []string{events.SubjectAll},
		BatchMsgs:      applyMax,
		PullMaxBytes:   32 << 20,
		Apply:          ix.apply,
		Retention:      cfg.Retention,
		RetentionEvery: cfg.RetentionEvery,
		Now:            cfg.Now,
		Expire:         ix.expire,
		Health:         cfg.Health,
	}, logger)
	if err != nil {
		return nil, err
	}
	ix.store, ix.db = store, store.DB()
	if err := store.Follow(ctx, js); err != nil {
		store.Close(context.Background())
		return nil, err
	}
	return ix, nil
}

// apply writes the keys of msgs into b.
func (ix *Index) apply(b *pebble.Batch, msgs []streamindex.Msg) error {
	var kb, vb []byte
	for i := range msgs {
		m := &msgs[i]
		tenant, e, ok := decode(m)
		if !ok {
			ix.log.Warn("event index: an event without tenant, type or id skipped", "seq", m.Seq, "subject", m.Subject)
			continue
		}
		// A batch copies what it is given: kb and vb are scratch.
		vb = listValue(vb[:0], e.Type, e.ID)
		_ = b.Set(listKey(kb[:0], tenant, e.OccurredAt, e.Seq), vb, nil)
		_ = b.Set(typeKey(kb[:0], tenant, e.Type, e.OccurredAt, e.Seq), []byte(e.ID), nil)
		vb = idValue(vb[:0], e.OccurredAt, e.Seq, e.Type)
		_ = b.Set(idKey(kb[:0], tenant, e.ID), vb, nil)
		vb = storedValue(vb[:0], tenant, e.Type, e.ID, e.OccurredAt)
		_ = b.Set(storedKey(kb[:0], m.Stored, e.Seq), vb, nil)
	}
	return nil
}

// decode reads what the index keeps of a stored event: its tenant and
// type from the subject, its id from the header (or the body), when it
// occurred from the body (the time it was stored, if the body says none).
func decode(m *streamindex.Msg) (string, Event, bool) {
	tenant, typ, err := events.ParseSubject(m.Subject)
	if err != nil {
		return "", Event{}, false
	}
	var env struct {
		ID         string    `json:"id"`
		OccurredAt time.Time `json:"occurredAt"`
	}
	_ = json.Unmarshal(m.Data, &env)
	e := Event{ID: m.Header.Get(events.HeaderEventID), Type: typ, OccurredAt: env.OccurredAt.UTC(), Seq: m.Seq}
	if e.ID == "" {
		e.ID = env.ID
	}
	if e.OccurredAt.IsZero() {
		e.OccurredAt = m.Stored.UTC()
	}
	return tenant, e, events.ValidID(e.ID) && len(typ) <= maxTypeLen
}

// Applied returns the stream sequence of the last event applied.
func (ix *Index) Applied() uint64 { return ix.store.Applied() }

// Sync waits until the index has applied every event the stream held when
// it was called: a lookup after it sees every event stored before it.
func (ix *Index) Sync(ctx context.Context) error { return ix.store.Sync(ctx) }

// Close stops following the stream, flushes and closes the store. When ctx
// ends first (storage that cannot flush), it stops waiting and returns an
// error: what was not flushed is applied again at the next start.
func (ix *Index) Close(ctx context.Context) error { return ix.store.Close(ctx) }
