package deliverylog

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/onestack/webhooks/internal/health"
	"github.com/onestack/webhooks/internal/streamindex"
)

// IndexConfig places and sizes an [Index]; zero values mean the defaults.
type IndexConfig struct {
	// Dir is the index's directory (required). It holds a cache of the
	// stream: deleting it costs a rebuild, never data.
	Dir string
	// Retention is how long a delivery is kept after its creation (default
	// 30 days); it must match the stream's.
	Retention time.Duration
	// RetentionEvery is how often expired deliveries are deleted (default
	// one minute).
	RetentionEvery time.Duration
	// Now is the clock retention reads (default time.Now).
	Now func() time.Time
	// CacheBytes bounds the store's block cache (default 32 MiB: enough to
	// keep the Bloom filters that every new delivery's lookup reads; at
	// 16 MiB they were read from disk again and again). The
	// index's memory is about this plus its memtables (up to 4 × 8 MiB),
	// whatever the number of deliveries.
	CacheBytes int64
	// Health, if set, hears of what keeps the index from serving: a panic
	// in its goroutines, corruption found while running.
	Health *health.Health
}

func (c IndexConfig) withDefaults() IndexConfig {
	if c.Retention == 0 {
		c.Retention = DefaultRetention
	}
	if c.RetentionEvery == 0 {
		c.RetentionEvery = time.Minute
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.CacheBytes == 0 {
		c.CacheBytes = 32 << 20
	}
	return c
}

// Validate reports a missing directory or a negative setting.
func (c IndexConfig) Validate() error {
	c = c.withDefaults()
	switch {
	case c.Dir == "":
		return fmt.Errorf("index config: no directory: %w", ErrInvalid)
	case c.Retention < 0, c.RetentionEvery < 0, c.CacheBytes < 0:
		return fmt.Errorf("index config %+v: %w", c, ErrInvalid)
	}
	return nil
}

// The store's sizes: the index's memory is about CacheBytes plus its
// memtables, whatever the number of deliveries.
const (
	memTableBytes = 8 << 20
	memTables     = 4
	// applyMaxMsgs bounds the messages applied in one store batch.
	applyMaxMsgs = 64
)

// Index is the local, on-disk index of the attempt log: it follows the
// stream and answers reads. It is safe for concurrent use.
type Index struct {
	log   *slog.Logger
	store *streamindex.Store
	db    *pebble.DB // store.DB(), for reads

	// Under the store's write lock: apply's and retention's scratch, and
	// the retention cutoff apply checks.
	dirty  map[string]*pending
	keys   []*pending
	slab   []pending // the pendings of dirty
	recs   []Record
	kb     []byte // retention's and put's
	vb     []byte
	lkb    []byte       // loadAll's
	cutoff atomic.Int64 // ns: deliveries created before are deleted
}

// OpenIndex opens the index in cfg.Dir and follows the DELIVERYLOG stream
// from the message after the last one it applied (from the first one
// retained, if older ones have expired). It rebuilds from scratch if the
// stream is not the one it was built from (recreated, or shorter than
// what was applied), and if its files cannot be opened (moved aside, see
// [streamindex.Open]). The stream must exist ([EnsureStream]).
func OpenIndex(ctx context.Context, js jetstream.JetStream, cfg IndexConfig, logger *slog.Logger) (*Index, error) {
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

// openStore opens the store without following the stream.
func openStore(cfg IndexConfig, logger *slog.Logger) (*Index, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	ix := &Index{log: logger, dirty: make(map[string]*pending)}
	ix.cutoff.Store(minNanos)
	store, err := streamindex.Open(streamindex.Config{
		Name:           "delivery index",
		Dir:            cfg.Dir,
		ErrUnavailable: ErrUnavailable,
		CacheBytes:     cfg.CacheBytes,
		MemTableBytes:  memTableBytes,
		MemTables:      memTables,
		Stream:         StreamName,
		BatchMsgs:      applyMaxMsgs,
		PullMaxBytes:   16 << 20,
		Apply:          ix.applyMsgs,
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

const minNanos = -1 << 63

// applyMsgs decodes msgs and writes their records into b. A message that
// does not decode is logged and skipped.
func (ix *Index) applyMsgs(b *pebble.Batch, msgs []streamindex.Msg) error {
	recs := ix.recs[:0]
	for _, m := range msgs {
		tenant := m.Subject[min(len(subjectPrefix), len(m.Subject)):]
		before := len(recs)
		var err error
		recs, err = decodeBatch(tenant, m.Data, recs)
		if err != nil {
			recs = recs[:before]
			ix.log.Warn("delivery index: undecodable message skipped", "seq", m.Seq, "subject", m.Subject, "err", err)
		}
	}
	ix.recs = recs
	return ix.put(b, recs)
}

// MessagesApplied returns how many stream messages this Index has applied
// since it was opened: zero right after a restart that resumed where it
// stopped, every retained message after a rebuild.
func (ix *Index) MessagesApplied() uint64 { return ix.store.MessagesApplied() }

// Applied returns the stream sequence of the last message applied.
func (ix *Index) Applied() uint64 { return ix.store.Applied() }

// Sync waits until the index has applied everything the stream held when
// Sync was called (one stream info request, then a wait), so that a read
// after it sees every record stored before it: read-your-writes.
func (ix *Index) Sync(ctx context.Context) error { return ix.store.Sync(ctx) }

// Close stops following the stream, waits for the index's goroutines and
// closes the store; reads after it return ErrUnavailable. When ctx ends
// first (storage that cannot flush), it stops waiting and returns an
// error: what was not flushed is applied again at the next start.
func (ix *Index) Close(ctx context.Context) error { return ix.store.Close(ctx) }
