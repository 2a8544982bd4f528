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
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/onestack/webhooks/events"
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
}

func (c Config) withDefaults() Config {
	if c.Retention <= 0 {
		c.Retention = 14 * 24 * time.Hour
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

const (
	memTableBytes = 4 << 20
	applyMax      = 256
)

// Index is the event index. It is safe for concurrent use.
type Index struct {
	cfg    Config
	log    *slog.Logger
	db     *pebble.DB
	stream jetstream.Stream

	// writeMu orders apply and retention, which reads an id's key before
	// deleting it.
	writeMu  sync.Mutex
	applied  atomic.Uint64
	notifyMu sync.Mutex
	notify   chan struct{}

	closeMu sync.RWMutex
	closed  bool
	done    chan struct{}
	wg      sync.WaitGroup
	cc      jetstream.ConsumeContext
	msgs    chan jetstream.Msg
	stalled atomic.Bool
}

// Open opens the index in cfg.Dir and follows the events stream, which
// must exist, from the message after the last one applied.
func Open(ctx context.Context, js jetstream.JetStream, cfg Config, logger *slog.Logger) (*Index, error) {
	if cfg.Dir == "" {
		return nil, fmt.Errorf("event index: no directory: %w", ErrInvalid)
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
		MemTableStopWritesThreshold: 2,
		// Every batch carries its applied sequence: without a WAL a crash
		// loses the memtables and the index resumes from the last flushed
		// sequence, which the stream still holds.
		DisableWAL:         true,
		FormatMajorVersion: pebble.FormatNewest,
		Logger:             pebbleLogger{logger},
	}
	for i := range opts.Levels {
		opts.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	db, err := pebble.Open(cfg.Dir, opts)
	if err != nil {
		return nil, fmt.Errorf("open event index %s: %w: %w", cfg.Dir, ErrUnavailable, err)
	}
	ix := &Index{cfg: cfg, log: logger, db: db, done: make(chan struct{}), msgs: make(chan jetstream.Msg, 2*applyMax)}
	if v, err := ix.get(keyApplied); err != nil {
		db.Close()
		return nil, err
	} else if len(v) == 8 {
		ix.applied.Store(binary.BigEndian.Uint64(v))
	}
	if err := ix.follow(ctx, js); err != nil {
		db.Close()
		return nil, err
	}
	return ix, nil
}

func (ix *Index) get(key []byte) ([]byte, error) {
	v, closer, err := ix.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read event index: %w: %w", ErrUnavailable, err)
	}
	defer closer.Close()
	return append([]byte(nil), v...), nil
}

func (ix *Index) follow(ctx context.Context, js jetstream.JetStream) error {
	stream, err := js.Stream(ctx, events.StreamName)
	if err != nil {
		return fmt.Errorf("event index: stream %s: %w: %w", events.StreamName, ErrUnavailable, err)
	}
	ix.stream = stream
	info := stream.CachedInfo()
	created := []byte(info.Created.UTC().Format(time.RFC3339Nano))
	was, err := ix.get(keyStream)
	if err != nil {
		return err
	}
	if string(was) != string(created) || ix.applied.Load() > info.State.LastSeq {
		if was != nil {
			ix.log.Warn("event index: the stream is not the one the index was built from; rebuilding", "dir", ix.cfg.Dir)
		}
		b := ix.db.NewBatch()
		_ = b.DeleteRange([]byte{0}, []byte{0xff}, nil)
		_ = b.Set(keyStream, created, nil)
		err := b.Commit(pebble.NoSync)
		b.Close()
		if err != nil {
			return fmt.Errorf("reset event index: %w: %w", ErrUnavailable, err)
		}
		ix.applied.Store(0)
	}
	ccfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{events.SubjectAll}, DeliverPolicy: jetstream.DeliverAllPolicy}
	if a := ix.applied.Load(); a > 0 {
		ccfg.DeliverPolicy, ccfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, a+1
	}
	cons, err := stream.OrderedConsumer(ctx, ccfg)
	if err != nil {
		return fmt.Errorf("event index: consumer: %w: %w", ErrUnavailable, err)
	}
	ix.cc, err = cons.Consume(ix.receive,
		jetstream.PullMaxMessagesWithBytesLimit(2*applyMax, 32<<20),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			if !ix.stalled.Swap(true) {
				ix.log.Warn("event index: following the stream stalled; lookups may be stale until it resumes", "err", err)
			}
		}))
	if err != nil {
		return fmt.Errorf("event index: consume: %w: %w", ErrUnavailable, err)
	}
	ix.wg.Add(2)
	go ix.applyLoop()
	go ix.retentionLoop()
	return nil
}

func (ix *Index) receive(m jetstream.Msg) {
	if ix.stalled.Load() && ix.stalled.Swap(false) {
		ix.log.Info("event index: following the stream again")
	}
	select {
	case ix.msgs <- m:
	case <-ix.done:
	}
}

func (ix *Index) applyLoop() {
	defer ix.wg.Done()
	batch := make([]jetstream.Msg, 0, applyMax)
	for {
		select {
		case m := <-ix.msgs:
			batch = append(batch[:0], m)
		case <-ix.done:
			return
		}
	more:
		for len(batch) < applyMax {
			select {
			case m := <-ix.msgs:
				batch = append(batch, m)
			default:
				break more
			}
		}
		for wait := 100 * time.Millisecond; ; wait = min(2*wait, 5*time.Second) {
			err := ix.apply(batch)
			if err == nil {
				break
			}
			ix.log.Error("event index: applying events; retrying", "err", err)
			select {
			case <-time.After(wait):
			case <-ix.done:
				return
			}
		}
		clear(batch)
	}
}

// apply indexes msgs in one batch that also records the last sequence.
func (ix *Index) apply(msgs []jetstream.Msg) error {
	ix.writeMu.Lock()
	defer ix.writeMu.Unlock()
	applied := ix.applied.Load()
	b := ix.db.NewBatch()
	defer b.Close()
	var last uint64
	var kb, vb []byte
	for _, m := range msgs {
		md, err := m.Metadata()
		if err != nil || md.Sequence.Stream <= applied || md.Sequence.Stream <= last {
			continue
		}
		last = md.Sequence.Stream
		tenant, e, ok := decode(m, md)
		if !ok {
			ix.log.Warn("event index: an event without tenant, type or id skipped", "seq", last, "subject", m.Subject())
			continue
		}
		vb = appendString(appendString(vb[:0], e.Type), e.ID)
		_ = b.Set(listKey(kb[:0], tenant, e.OccurredAt, e.Seq), vb, nil)
		_ = b.Set(typeKey(kb[:0], tenant, e.Type, e.OccurredAt, e.Seq), []byte(e.ID), nil)
		vb = appendString(binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(vb[:0], timeBits(e.OccurredAt)), e.Seq), e.Type)
		_ = b.Set(idKey(kb[:0], tenant, e.ID), vb, nil)
		vb = appendString(appendString(appendString(vb[:0], tenant), e.Type), e.ID)
		vb = binary.BigEndian.AppendUint64(vb, timeBits(e.OccurredAt))
		_ = b.Set(storedKey(kb[:0], md.Timestamp, e.Seq), vb, nil)
	}
	if last == 0 {
		return nil
	}
	_ = b.Set(keyApplied, binary.BigEndian.AppendUint64(nil, last), nil)
	if err := b.Commit(pebble.NoSync); err != nil {
		return fmt.Errorf("apply to event index: %w: %w", ErrUnavailable, err)
	}
	ix.setApplied(last)
	return nil
}

// decode reads what the index keeps of a stored event: its tenant and
// type from the subject, its id from the header (or the body), when it
// occurred from the body (the time it was stored, if the body says none).
func decode(m jetstream.Msg, md *jetstream.MsgMetadata) (string, Event, bool) {
	tenant, typ, err := events.ParseSubject(m.Subject())
	if err != nil {
		return "", Event{}, false
	}
	var env struct {
		ID         string    `json:"id"`
		OccurredAt time.Time `json:"occurredAt"`
	}
	_ = json.Unmarshal(m.Data(), &env)
	e := Event{ID: m.Headers().Get(events.HeaderEventID), Type: typ, OccurredAt: env.OccurredAt.UTC(), Seq: md.Sequence.Stream}
	if e.ID == "" {
		e.ID = env.ID
	}
	if e.OccurredAt.IsZero() {
		e.OccurredAt = md.Timestamp.UTC()
	}
	return tenant, e, events.ValidID(e.ID) && len(typ) <= maxTypeLen
}

// Applied returns the stream sequence of the last event applied.
func (ix *Index) Applied() uint64 { return ix.applied.Load() }

func (ix *Index) setApplied(seq uint64) {
	ix.applied.Store(seq)
	ix.notifyMu.Lock()
	if ix.notify != nil {
		close(ix.notify)
		ix.notify = nil
	}
	ix.notifyMu.Unlock()
}

func (ix *Index) advanced() <-chan struct{} {
	ix.notifyMu.Lock()
	defer ix.notifyMu.Unlock()
	if ix.notify == nil {
		ix.notify = make(chan struct{})
	}
	return ix.notify
}

// Sync waits until the index has applied every event the stream held when
// it was called: a lookup after it sees every event stored before it.
func (ix *Index) Sync(ctx context.Context) error {
	info, err := ix.stream.Info(ctx)
	if err != nil {
		return fmt.Errorf("sync event index: %w: %w", ErrUnavailable, err)
	}
	for {
		ch := ix.advanced()
		if info.State.Msgs == 0 || ix.applied.Load() >= info.State.LastSeq {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("sync event index at %d of %d: %w", ix.applied.Load(), info.State.LastSeq, ctx.Err())
		case <-ix.done:
			return fmt.Errorf("sync event index: closed: %w", ErrUnavailable)
		}
	}
}

// Close stops following the stream, flushes and closes the store.
func (ix *Index) Close() error {
	ix.closeMu.Lock()
	if ix.closed {
		ix.closeMu.Unlock()
		return nil
	}
	ix.closed = true
	ix.closeMu.Unlock()
	if ix.cc != nil {
		ix.cc.Stop()
	}
	close(ix.done)
	ix.wg.Wait()
	ix.closeMu.Lock()
	defer ix.closeMu.Unlock()
	err := ix.db.Flush()
	if cerr := ix.db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("close event index: %w", err)
	}
	return nil
}

func (ix *Index) reading() (func(), error) {
	ix.closeMu.RLock()
	if ix.closed {
		ix.closeMu.RUnlock()
		return nil, fmt.Errorf("event index closed: %w", ErrUnavailable)
	}
	return ix.closeMu.RUnlock, nil
}

type pebbleLogger struct{ log *slog.Logger }

func (l pebbleLogger) Infof(format string, args ...any) {
	l.log.Debug("event index store: " + fmt.Sprintf(format, args...))
}

func (l pebbleLogger) Errorf(format string, args ...any) {
	l.log.Error("event index store: " + fmt.Sprintf(format, args...))
}

func (l pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	l.log.Error("event index store: " + msg)
	panic("event index store: " + msg)
}
