package deliverylog

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/nats-io/nats.go/jetstream"
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
	// CacheBytes bounds the store's block cache (default 16 MiB). The
	// index's memory is about this plus its memtables (up to 4 × 8 MiB),
	// whatever the number of deliveries.
	CacheBytes int64
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
		c.CacheBytes = 16 << 20
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

const (
	memTableBytes = 8 << 20
	memTables     = 4
	// applyMaxMsgs bounds the messages applied in one store batch.
	applyMaxMsgs = 64
)

// Index is the local, on-disk index of the attempt log: it follows the
// stream and answers reads. It is safe for concurrent use.
type Index struct {
	cfg    IndexConfig
	log    *slog.Logger
	db     *pebble.DB
	stream jetstream.Stream // nil for an index fed by apply alone (tests)

	// writeMu orders apply and retention, each a read-modify-write.
	writeMu sync.Mutex
	dirty   map[string]*pending // apply's scratch
	keys    []*pending          // apply's scratch
	cutoff  atomic.Int64        // ns: deliveries created before are deleted

	applied     atomic.Uint64 // last applied stream sequence
	msgsApplied atomic.Uint64 // messages applied since open
	notifyMu    sync.Mutex
	notify      chan struct{} // closed when applied moves; nil without waiters

	closeMu sync.RWMutex // reads hold it shared; Close exclusive
	closed  bool
	done    chan struct{} // closed by Close
	wg      sync.WaitGroup
	cc      jetstream.ConsumeContext
	msgs    chan jetstream.Msg
	stalled atomic.Bool // following the stream fails; logged once
}

// OpenIndex opens the index in cfg.Dir and follows the DELIVERYLOG stream
// from the message after the last one it applied (from the first one
// retained, if older ones have expired). It rebuilds from scratch only if
// the stream is not the one it was built from (recreated, or shorter than
// what was applied). The stream must exist ([EnsureStream]).
func OpenIndex(ctx context.Context, js jetstream.JetStream, cfg IndexConfig, logger *slog.Logger) (*Index, error) {
	ix, err := openStore(cfg, logger)
	if err != nil {
		return nil, err
	}
	if err := ix.follow(ctx, js); err != nil {
		ix.db.Close()
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
	cache := pebble.NewCache(cfg.CacheBytes)
	defer cache.Unref()
	opts := &pebble.Options{
		Cache:                       cache,
		MemTableSize:                memTableBytes,
		MemTableStopWritesThreshold: memTables,
		// The stream is the source of truth and every batch carries its
		// applied sequence: without a WAL a crash loses the memtables, and
		// the index resumes from the last flushed, consistent sequence.
		DisableWAL:         true,
		FormatMajorVersion: pebble.FormatNewest,
		Logger:             pebbleLogger{logger},
	}
	for i := range opts.Levels {
		opts.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	db, err := pebble.Open(cfg.Dir, opts)
	if err != nil {
		return nil, fmt.Errorf("open delivery index %s: %w: %w", cfg.Dir, ErrUnavailable, err)
	}
	ix := &Index{
		cfg:   cfg,
		log:   logger,
		db:    db,
		dirty: make(map[string]*pending),
		done:  make(chan struct{}),
		msgs:  make(chan jetstream.Msg, 2*applyMaxMsgs),
	}
	ix.cutoff.Store(minNanos)
	seq, err := ix.meta(keyApplied)
	if err != nil {
		db.Close()
		return nil, err
	}
	if len(seq) == 8 {
		ix.applied.Store(binary.BigEndian.Uint64(seq))
	}
	return ix, nil
}

const minNanos = -1 << 63

func (ix *Index) meta(key []byte) ([]byte, error) {
	v, closer, err := ix.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read delivery index: %w: %w", ErrUnavailable, err)
	}
	defer closer.Close()
	return append([]byte(nil), v...), nil
}

// follow starts applying the stream and deleting expired deliveries.
func (ix *Index) follow(ctx context.Context, js jetstream.JetStream) error {
	stream, err := js.Stream(ctx, StreamName)
	if err != nil {
		return fmt.Errorf("delivery index: stream %s: %w: %w", StreamName, ErrUnavailable, err)
	}
	ix.stream = stream
	info := stream.CachedInfo()
	created := []byte(info.Created.UTC().Format(time.RFC3339Nano))
	was, err := ix.meta(keyStream)
	if err != nil {
		return err
	}
	if string(was) != string(created) || ix.applied.Load() > info.State.LastSeq {
		if was != nil {
			ix.log.Warn("delivery index: the stream is not the one the index was built from; rebuilding", "dir", ix.cfg.Dir, "applied", ix.applied.Load(), "stream_last_seq", info.State.LastSeq)
		}
		if err := ix.reset(created); err != nil {
			return err
		}
	}
	ccfg := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy}
	if a := ix.applied.Load(); a > 0 {
		ccfg = jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: a + 1}
	}
	cons, err := stream.OrderedConsumer(ctx, ccfg)
	if err != nil {
		return fmt.Errorf("delivery index: consumer: %w: %w", ErrUnavailable, err)
	}
	ix.cc, err = cons.Consume(ix.receive,
		jetstream.PullMaxMessagesWithBytesLimit(2*applyMaxMsgs, 16<<20),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			if !ix.stalled.Swap(true) {
				ix.log.Warn("delivery index: following the stream stalled; reads may be stale until it resumes", "err", err)
			}
		}))
	if err != nil {
		return fmt.Errorf("delivery index: consume: %w: %w", ErrUnavailable, err)
	}
	ix.wg.Add(2)
	go ix.applyLoop()
	go ix.retentionLoop()
	return nil
}

// reset empties the index, for the stream whose creation time is created.
func (ix *Index) reset(created []byte) error {
	b := ix.db.NewBatch()
	defer b.Close()
	_ = b.DeleteRange([]byte{0}, []byte{0xff}, nil)
	_ = b.Set(keyStream, created, nil)
	if err := b.Commit(pebble.NoSync); err != nil {
		return fmt.Errorf("reset delivery index: %w: %w", ErrUnavailable, err)
	}
	if err := ix.db.Flush(); err != nil {
		return fmt.Errorf("reset delivery index: %w: %w", ErrUnavailable, err)
	}
	ix.applied.Store(0)
	return nil
}

// receive hands a message from the consumer to applyLoop.
func (ix *Index) receive(m jetstream.Msg) {
	if ix.stalled.Load() && ix.stalled.Swap(false) {
		ix.log.Info("delivery index: following the stream again")
	}
	select {
	case ix.msgs <- m:
	case <-ix.done:
	}
}

// applyLoop applies the messages received, as many as are waiting in one
// store batch.
func (ix *Index) applyLoop() {
	defer ix.wg.Done()
	batch := make([]jetstream.Msg, 0, applyMaxMsgs)
	var recs []Record
	for {
		select {
		case m := <-ix.msgs:
			batch = append(batch[:0], m)
		case <-ix.done:
			return
		}
	more:
		for len(batch) < applyMaxMsgs {
			select {
			case m := <-ix.msgs:
				batch = append(batch, m)
			default:
				break more
			}
		}
		var err error
		for wait := 100 * time.Millisecond; ; wait = min(2*wait, 5*time.Second) {
			if recs, err = ix.applyMsgs(batch, recs[:0]); err == nil {
				break
			}
			ix.log.Error("delivery index: applying messages; retrying", "err", err)
			select {
			case <-time.After(wait):
			case <-ix.done:
				return
			}
		}
		clear(batch)
	}
}

// applyMsgs decodes msgs and applies their records in one store batch. A
// message that does not decode is logged and skipped.
func (ix *Index) applyMsgs(msgs []jetstream.Msg, recs []Record) ([]Record, error) {
	var last, n uint64
	applied := ix.applied.Load()
	for _, m := range msgs {
		md, err := m.Metadata()
		if err != nil {
			ix.log.Warn("delivery index: message without metadata skipped", "subject", m.Subject(), "err", err)
			continue
		}
		seq := md.Sequence.Stream
		if seq <= applied || seq <= last {
			continue
		}
		last = seq
		n++
		tenant := m.Subject()[min(len(subjectPrefix), len(m.Subject())):]
		before := len(recs)
		recs, err = decodeBatch(tenant, m.Data(), recs)
		if err != nil {
			recs = recs[:before]
			ix.log.Warn("delivery index: undecodable message skipped", "seq", seq, "subject", m.Subject(), "err", err)
		}
	}
	if last == 0 {
		return recs, nil
	}
	return recs, ix.apply(recs, last, n)
}

// MessagesApplied returns how many stream messages this Index has applied
// since it was opened: zero right after a restart that resumed where it
// stopped, every retained message after a rebuild.
func (ix *Index) MessagesApplied() uint64 { return ix.msgsApplied.Load() }

// Applied returns the stream sequence of the last message applied.
func (ix *Index) Applied() uint64 { return ix.applied.Load() }

// advanced returns a channel closed when Applied next moves.
func (ix *Index) advanced() <-chan struct{} {
	ix.notifyMu.Lock()
	defer ix.notifyMu.Unlock()
	if ix.notify == nil {
		ix.notify = make(chan struct{})
	}
	return ix.notify
}

func (ix *Index) setApplied(seq uint64) {
	ix.applied.Store(seq)
	ix.notifyMu.Lock()
	if ix.notify != nil {
		close(ix.notify)
		ix.notify = nil
	}
	ix.notifyMu.Unlock()
}

// Sync waits until the index has applied everything the stream held when
// Sync was called (one stream info request, then a wait), so that a read
// after it sees every record stored before it: read-your-writes.
func (ix *Index) Sync(ctx context.Context) error {
	if ix.stream == nil {
		return nil
	}
	info, err := ix.stream.Info(ctx)
	if err != nil {
		return fmt.Errorf("sync delivery index: %w: %w", ErrUnavailable, err)
	}
	if info.State.Msgs == 0 {
		return nil
	}
	for {
		ch := ix.advanced()
		if ix.applied.Load() >= info.State.LastSeq {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("sync delivery index at %d of %d: %w", ix.applied.Load(), info.State.LastSeq, ctx.Err())
		case <-ix.done:
			return fmt.Errorf("sync delivery index: closed: %w", ErrUnavailable)
		}
	}
}

// Close stops following the stream, waits for the index's goroutines and
// closes the store; reads after it return ErrUnavailable.
func (ix *Index) Close() error {
	ix.closeMu.Lock()
	if ix.closed {
		ix.closeMu.Unlock()
		return nil
	}
	ix.closed = true // no read starts from now on
	ix.closeMu.Unlock()
	if ix.cc != nil {
		ix.cc.Stop()
	}
	close(ix.done)
	ix.wg.Wait()
	ix.closeMu.Lock() // wait for the reads in progress
	defer ix.closeMu.Unlock()
	// Without a WAL, what is only in memtables would be lost: flush it so
	// that the next open resumes exactly here.
	err := ix.db.Flush()
	if cerr := ix.db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("close delivery index: %w", err)
	}
	return nil
}

// reading guards a read against Close.
func (ix *Index) reading() (func(), error) {
	ix.closeMu.RLock()
	if ix.closed {
		ix.closeMu.RUnlock()
		return nil, fmt.Errorf("delivery index closed: %w", ErrUnavailable)
	}
	return ix.closeMu.RUnlock, nil
}

// pebbleLogger sends the store's messages to slog.
type pebbleLogger struct{ log *slog.Logger }

func (l pebbleLogger) Infof(format string, args ...any) {
	l.log.Debug("delivery index store: " + fmt.Sprintf(format, args...))
}

func (l pebbleLogger) Errorf(format string, args ...any) {
	l.log.Error("delivery index store: " + fmt.Sprintf(format, args...))
}

func (l pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	l.log.Error("delivery index store: " + msg)
	panic("delivery index store: " + msg)
}
