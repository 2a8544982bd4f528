// Package eventindex is a local, on-disk index of the EVENTS stream, so
// that a tenant can look its events up: list them newest first (by type,
// by time) and find one by id, each at the cost of the page asked for,
// never of the history kept.
//
// It follows the stream with an ordered consumer into a small pebble store
// of keys only (an event's body stays in the stream, read by sequence when
// asked for), resumes from the last sequence it applied after a restart,
// rebuilds itself when the stream is not the one it was built from, and
// forgets events as the stream's retention removes them. It also keeps
// the duplicate window of event ids past NATS's own (see [Index.Seen]) and
// each tenant's stored bytes ([Index.StoredBytes]). Like the attempt
// log's index it is a cache of a replicated stream: any replica can
// rebuild it. Its memory is bounded by its block cache and memtables,
// whatever the number of events.
package eventindex

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/onestack/webhooks/events"
	"github.com/onestack/webhooks/internal/health"
	"github.com/onestack/webhooks/internal/streamindex"
	"github.com/onestack/webhooks/problem"
)

// Errors of the package.
var (
	// ErrNotFound: no such event for this tenant (problem.ErrNotFound).
	ErrNotFound = problem.NotFound("event")
	// ErrUnavailable: the index's storage cannot be read, or it is behind
	// or closed (problem.ErrUnavailable).
	ErrUnavailable = problem.New(problem.ErrUnavailable, "event index unavailable")
	// ErrInvalid: a cursor this index did not make (which also wraps
	// problem.ErrInvalidCursor), or a bad configuration.
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
	log       *slog.Logger
	store     *streamindex.Store
	db        *pebble.DB // store.DB(), for reads
	retention time.Duration
	now       func() time.Time

	// reach is what the index is known to hold (see Seen).
	reach reach

	// Apply's scratch, under the store's write lock: bytes stored by
	// tenant and hour, a key and a value.
	deltas map[tenantHour]int64
	kb, vb []byte
	// written is what apply last wrote to the bytes keys (see addBytes).
	written map[tenantHour]bytesWrite
	// stored holds each tenant's last storedReading.
	stored sync.Map
}

type tenantHour struct {
	tenant string
	hour   uint64
}

// Open opens the index in cfg.Dir and follows the events stream, which
// must exist, from the message after the last one applied; an index whose
// files cannot be opened is moved aside and rebuilt (see
// [streamindex.Open]).
func Open(ctx context.Context, js jetstream.JetStream, cfg Config, logger *slog.Logger) (*Index, error) {
	ix, err := openStore(cfg, logger)
	if err != nil {
		return nil, err
	}
	if err := ix.store.Follow(ctx, js); err != nil {
		ix.store.Close(context.Background())
		return nil, err
	}
	return ix, nil
}

// openStore opens the index's store without following the stream.
func openStore(cfg Config, logger *slog.Logger) (*Index, error) {
	if cfg.Dir == "" {
		return nil, fmt.Errorf("event index: no directory: %w", ErrInvalid)
	}
	cfg = cfg.withDefaults()
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	ix := &Index{log: logger, retention: cfg.Retention, now: cfg.Now, deltas: map[tenantHour]int64{},
		written: map[tenantHour]bytesWrite{}}
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
	return ix, nil
}

// apply writes the keys of msgs into b, and adds their bytes to their
// tenants' stored bytes. It runs under the store's write lock, so the
// bytes it reads are every earlier batch's.
func (ix *Index) apply(b *pebble.Batch, msgs []streamindex.Msg) error {
	if len(msgs) == 0 {
		return nil
	}
	kb, vb := ix.kb, ix.vb
	defer func() { ix.kb, ix.vb = kb[:0], vb[:0] }()
	clear(ix.deltas)
	for i := range msgs {
		m := &msgs[i]
		tenant, e, ok := decode(m)
		if !ok {
			ix.log.Warn("event index: an event without tenant, type or id skipped", "seq", m.Seq, "subject", m.Subject)
			continue
		}
		size := storedSize(m)
		// A batch copies what it is given: kb and vb are scratch.
		vb = listValue(vb[:0], e.Type, e.ID)
		kb = listKey(kb[:0], tenant, e.OccurredAt, e.Seq)
		_ = b.Set(kb, vb, nil)
		vb = append(vb[:0], e.ID...)
		kb = typeKey(kb[:0], tenant, e.Type, e.OccurredAt, e.Seq)
		_ = b.Set(kb, vb, nil)
		vb = idValue(vb[:0], e.OccurredAt, e.Seq, e.Type, m.Stored)
		kb = idKey(kb[:0], tenant, e.ID)
		_ = b.Set(kb, vb, nil)
		vb = storedValue(vb[:0], tenant, e.Type, e.ID, e.OccurredAt)
		kb = storedKey(kb[:0], m.Stored, e.Seq)
		_ = b.Set(kb, vb, nil)
		ix.deltas[tenantHour{tenant, hourOf(m.Stored)}] += size
	}
	last := &msgs[len(msgs)-1]
	var err error
	if kb, err = ix.addBytes(b, kb, ix.deltas, last.Seq); err != nil {
		return err
	}
	ix.reach.applying(last.Seq, last.Stored)
	return nil
}

// decode reads what the index keeps of a stored event: its tenant and
// type from the subject, its id from the header (or the body), when it
// occurred from the body (the time it was stored, if the body says none).
// A body as events.Event.Marshal writes it is read from its first bytes
// (canonicalTime); any other is decoded whole.
func decode(m *streamindex.Msg) (string, Event, bool) {
	tenant, typ, err := events.ParseSubject(m.Subject)
	if err != nil {
		return "", Event{}, false
	}
	e := Event{ID: m.Header.Get(events.HeaderEventID), Type: typ, Seq: m.Seq}
	occurred, ok := canonicalTime(m.Data)
	if !ok || e.ID == "" {
		var env struct {
			ID         string    `json:"id"`
			OccurredAt time.Time `json:"occurredAt"`
		}
		_ = json.Unmarshal(m.Data, &env)
		if e.ID == "" {
			e.ID = env.ID
		}
		occurred = env.OccurredAt
	}
	e.OccurredAt = occurred.UTC()
	if e.OccurredAt.IsZero() {
		e.OccurredAt = m.Stored.UTC()
	}
	return tenant, e, events.ValidID(e.ID) && len(typ) <= maxTypeLen
}

// The start of a body as events.Event.Marshal writes it, up to its data.
var canonicalKeys = []string{`{"id":"`, `","type":"`, `","tenantId":"`, `","occurredAt":"`, `","data":`}

// canonicalTime reads occurredAt from a body that starts as
// events.Event.Marshal writes one: the keys in its order, each string
// without an escape (so it ends at the first quote), the time in RFC 3339.
// Anything else is not ok, and is decoded as JSON instead.
func canonicalTime(b []byte) (time.Time, bool) {
	var occurred []byte
	for i, key := range canonicalKeys {
		if !bytes.HasPrefix(b, []byte(key)) {
			return time.Time{}, false
		}
		b = b[len(key):]
		if i == len(canonicalKeys)-1 {
			break
		}
		end := bytes.IndexByte(b, '"')
		if end < 0 || bytes.IndexByte(b[:end], '\\') >= 0 {
			return time.Time{}, false
		}
		if i == len(canonicalKeys)-2 {
			occurred = b[:end]
		}
		b = b[end:]
	}
	t, err := time.Parse(time.RFC3339Nano, string(occurred))
	return t, err == nil
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
