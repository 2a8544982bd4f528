// Package streamindex is the skeleton of the product's local indexes of a
// JetStream stream (the attempt log's, the events'): a pebble store on
// disk that follows the stream and answers reads, a cache that any replica
// can rebuild from the stream.
//
// A [Store] opens pebble with a bounded block cache and no WAL, and keeps
// the last applied stream sequence in the same batch as the data applied
// with it, so that after a crash or a restart it resumes from the last
// consistent sequence. [Store.Follow] follows the stream with an ordered
// consumer from the message after that one, rebuilding from scratch when
// the stream is not the one the store was built from (recreated, or
// shorter than what was applied); it applies messages in batches, and runs
// retention on a ticker. [Store.Sync] waits for what the stream holds,
// within a bound, [Store.Reading] guards a read against [Store.Close].
//
// Being a cache, a store gives way rather than stop the process: one that
// cannot be opened (corrupt or unreadable files) is moved aside and
// rebuilt from the stream; corruption found while running, or a panic in
// its goroutines, is reported to [Config.Health] and makes the next Open
// rebuild; and [Store.Close] stops waiting for a store that cannot flush
// when its context ends.
//
// What messages mean, the keys they make and how those expire are the
// index's own, given as [Config.Apply] and [Config.Expire]. Keys that
// start with 0x00 are the store's; an index uses keys from 0x01 up to, not
// including, 0xff.
package streamindex

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/onestack/webhooks/internal/health"
)

// The store's own keys.
var (
	keyApplied = []byte{0, 'a'} // last applied stream sequence, 8 bytes big-endian
	keyStream  = []byte{0, 's'} // creation time of the stream applied from
)

// Config places and sizes a Store, and says what its index does with the
// stream; zero sizes and intervals mean the defaults.
type Config struct {
	// Name names the index in log messages and errors, such as "delivery
	// index" (required).
	Name string
	// Dir is the store's directory (required). Deleting it costs a
	// rebuild, never data. A store that cannot be opened there is moved
	// to Dir.corrupt-<time> (replacing an earlier one) and rebuilt.
	Dir string
	// ErrUnavailable is the error every failure of the store wraps, and
	// every read after Close: the index package's sentinel (required).
	ErrUnavailable error
	// CacheBytes bounds the block cache (default 8 MiB). The store's memory
	// is about this plus MemTables × MemTableBytes, whatever it holds.
	CacheBytes int64
	// MemTableBytes is the size of one memtable (default 4 MiB).
	MemTableBytes uint64
	// MemTables is how many memtables may fill before writes wait for a
	// flush (default 2).
	MemTables int

	// Stream is the stream Follow follows.
	Stream string
	// FilterSubjects, if any, are the only subjects followed. Sync waits
	// for the stream's last sequence, so a stream's other subjects should
	// hold nothing (a filter guards against strays).
	FilterSubjects []string
	// BatchMsgs bounds the messages applied in one batch (default 64).
	BatchMsgs int
	// PullMaxBytes bounds the bytes of the messages pulled ahead (default
	// 16 MiB).
	PullMaxBytes int
	// Apply writes into b what msgs, the next messages of the stream in
	// stream order, mean for the index. It runs under the write lock,
	// never at the same time as another Apply or an Update; the store then
	// records the last message's sequence in b and commits it. A message
	// Apply cannot read is the index's to log and skip; an error (the
	// store failing) drops b, and the same messages are applied again
	// after a backoff.
	Apply func(b *pebble.Batch, msgs []Msg) error

	// Retention is how long the index keeps what a message made; it should
	// match the stream's (required with Expire).
	Retention time.Duration
	// RetentionEvery is how often Expire runs once following (default one
	// minute).
	RetentionEvery time.Duration
	// Now is the clock retention reads, and that names a directory moved
	// aside (default time.Now).
	Now func() time.Time
	// Expire forgets what the index made before cutoff (now - Retention)
	// and returns how much; [Store.ExpireRange] does the walking. Nil
	// means nothing expires.
	Expire func(cutoff time.Time) (int, error)

	// SyncWait bounds how long Sync waits for the store to catch up,
	// whatever its caller's context (default 5 s).
	SyncWait time.Duration
	// Health, if set, hears of what keeps the store from serving: a panic
	// in its goroutines (recovered, counted), corruption found while
	// running.
	Health *health.Health
}

func (c Config) withDefaults() Config {
	if c.CacheBytes <= 0 {
		c.CacheBytes = 8 << 20
	}
	if c.MemTableBytes == 0 {
		c.MemTableBytes = 4 << 20
	}
	if c.MemTables <= 0 {
		c.MemTables = 2
	}
	if c.BatchMsgs <= 0 {
		c.BatchMsgs = 64
	}
	if c.PullMaxBytes <= 0 {
		c.PullMaxBytes = 16 << 20
	}
	if c.RetentionEvery <= 0 {
		c.RetentionEvery = time.Minute
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.SyncWait <= 0 {
		c.SyncWait = 5 * time.Second
	}
	return c
}

// Validate reports a missing name, directory or error, or an Expire
// without a Retention.
func (c Config) Validate() error {
	switch {
	case c.Name == "", c.ErrUnavailable == nil:
		return errors.New("stream index config: no name or no unavailable error")
	case c.Dir == "":
		return fmt.Errorf("%s config: no directory", c.Name)
	case c.Expire != nil && c.Retention <= 0:
		return fmt.Errorf("%s config: Expire without a Retention", c.Name)
	}
	return nil
}

// Msg is one stream message, as Apply gets it.
type Msg struct {
	Seq     uint64    // its stream sequence
	Stored  time.Time // when the stream stored it
	Subject string
	Header  nats.Header
	Data    []byte
}

// Store is a pebble store that follows a stream. It is safe for
// concurrent use.
type Store struct {
	cfg    Config
	log    *slog.Logger
	db     *pebble.DB
	stream jetstream.Stream // nil until Follow

	// writeMu orders Apply, Commit and Update, each a read-modify-write.
	writeMu sync.Mutex

	applied     atomic.Uint64 // last applied stream sequence
	msgsApplied atomic.Uint64 // messages applied since Open
	notifyMu    sync.Mutex
	notify      chan struct{} // closed when applied moves; nil without waiters

	closeMu   sync.RWMutex // reads hold it shared; Close exclusive
	release   func()       // closeMu.RUnlock, made once: Reading's result
	closed    bool
	done      chan struct{} // closed by Close
	closeOnce sync.Once
	closeErr  error         // set before closedCh is closed
	closedCh  chan struct{} // closed when Close has closed the store
	wg        sync.WaitGroup
	cc        jetstream.ConsumeContext
	msgs      chan jetstream.Msg
	stalled   atomic.Bool // following the stream fails; logged once
}

// Open opens the store in cfg.Dir without following the stream (Follow
// does), and reads the sequence it last applied. A store that cannot be
// opened (its files corrupt or unreadable), or that was marked for a
// rebuild while running, is moved aside, logged, and a new one made in its
// place, which Follow fills from the stream; one that another process has
// open is left alone.
func Open(cfg Config, logger *slog.Logger) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Store{cfg: cfg, log: logger, done: make(chan struct{}), closedCh: make(chan struct{}),
		msgs: make(chan jetstream.Msg, 2*cfg.BatchMsgs)}
	s.release = s.closeMu.RUnlock
	err := s.open()
	if err == nil {
		return s, nil
	}
	aside, merr := s.moveAside()
	if merr != nil {
		return nil, errors.Join(err, merr)
	}
	logger.Error(cfg.Name+": its store could not be opened; moved aside, rebuilding from the stream",
		"dir", cfg.Dir, "moved_to", aside, "err", err)
	if err := s.open(); err != nil {
		return nil, err
	}
	cfg.Health.Clear(cfg.Name) // what the failed open reported
	return s, nil
}

// rebuildMarker, in a store's directory, makes the next Open move it aside
// (pebble ignores files it does not name).
const rebuildMarker = "REBUILD"

// open opens pebble in the store's directory and reads the applied
// sequence; a panic of pebble's while opening is returned as an error.
func (s *Store) open() (err error) {
	cfg := s.cfg
	if _, err := os.Stat(filepath.Join(cfg.Dir, rebuildMarker)); err == nil {
		return fmt.Errorf("open %s %s: marked for a rebuild: %w", cfg.Name, cfg.Dir, cfg.ErrUnavailable)
	}
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("open %s %s: %w: pebble panicked: %v", cfg.Name, cfg.Dir, cfg.ErrUnavailable, v)
		}
	}()
	// Pebble reserves its memtables in the block cache: a cache of
	// CacheBytes alone would hold nothing once MemTables were full (every
	// read going to disk), so the memtables are added to it.
	cache := pebble.NewCache(cfg.CacheBytes + int64(cfg.MemTables)*int64(cfg.MemTableBytes))
	defer cache.Unref()
	opts := &pebble.Options{
		Cache:                       cache,
		MemTableSize:                cfg.MemTableBytes,
		MemTableStopWritesThreshold: cfg.MemTables,
		// The stream is the source of truth and every batch carries its
		// applied sequence: without a WAL a crash loses the memtables, and
		// the store resumes from the last flushed, consistent sequence,
		// which the stream still holds.
		DisableWAL:         true,
		FormatMajorVersion: pebble.FormatNewest,
		Logger:             pebbleLogger{s: s},
		// Pebble's default for corruption found in a read is to end the
		// process; the read fails instead, and the next start rebuilds.
		EventListener: &pebble.EventListener{DataCorruption: func(info pebble.DataCorruptionInfo) {
			s.log.Error(cfg.Name+" store: corrupt", "info", info.String())
			s.broken("corrupt: " + info.String())
		}},
	}
	// Compactions are most of an index's cost: the store holds little
	// (deliveries and events age out), so its files stay uncompressed
	// (disk is cheaper than the CPU to compress every byte at every
	// level). Its base level keeps pebble's size (64 MiB): one base level
	// as large as the whole index (it was 256 MiB) made every L0
	// compaction rewrite more of it as the index grew, the cost per event
	// growing with the history kept (eventindex's BenchmarkApply).
	opts.L0CompactionThreshold = 8
	opts.L0StopWritesThreshold = 32
	for i := range opts.Levels {
		opts.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
		opts.Levels[i].Compression = func() *sstable.CompressionProfile { return sstable.NoCompression }
	}
	db, err := pebble.Open(cfg.Dir, opts)
	if err != nil {
		return fmt.Errorf("open %s %s: %w: %w", cfg.Name, cfg.Dir, cfg.ErrUnavailable, err)
	}
	s.db = db
	seq, err := s.Get(keyApplied)
	if err != nil {
		db.Close()
		s.db = nil
		return err
	}
	if len(seq) == 8 {
		s.applied.Store(binary.BigEndian.Uint64(seq))
	}
	return nil
}

// moveAside renames the store's directory to Dir.corrupt-<time>, having
// removed an earlier one, unless it is locked (another process has it open)
// or absent, and returns the new name.
func (s *Store) moveAside() (string, error) {
	lock, err := pebble.LockDirectory(s.cfg.Dir, vfs.Default)
	if err != nil {
		return "", fmt.Errorf("%s: not moved aside: %w", s.cfg.Name, err)
	}
	if err := lock.Close(); err != nil {
		return "", fmt.Errorf("%s: not moved aside: %w", s.cfg.Name, err)
	}
	earlier, _ := filepath.Glob(s.cfg.Dir + ".corrupt-*")
	for _, dir := range earlier {
		if err := os.RemoveAll(dir); err != nil {
			return "", fmt.Errorf("%s: remove %s: %w", s.cfg.Name, dir, err)
		}
	}
	aside := s.cfg.Dir + ".corrupt-" + s.cfg.Now().UTC().Format("20060102T150405Z")
	if err := os.Rename(s.cfg.Dir, aside); err != nil {
		return "", fmt.Errorf("%s: move aside: %w", s.cfg.Name, err)
	}
	return aside, nil
}

// broken reports what keeps the store from serving, and marks its
// directory so that the next Open rebuilds it.
func (s *Store) broken(problem string) {
	s.cfg.Health.Set(s.cfg.Name, problem+"; rebuilt from the stream at the next start")
	if err := os.WriteFile(filepath.Join(s.cfg.Dir, rebuildMarker), []byte(problem+"\n"), 0o644); err != nil {
		s.log.Error(s.cfg.Name+": cannot mark the store for a rebuild", "err", err)
	}
}

// DB is the store, for the index's reads; writes go through Commit and
// Update.
func (s *Store) DB() *pebble.DB { return s.db }

// Get returns a copy of key's value, nil if there is none.
func (s *Store) Get(key []byte) ([]byte, error) {
	v, found, err := s.AppendValue(nil, key)
	if !found {
		return nil, err
	}
	return v, nil
}

// AppendValue appends key's value to dst and returns it, with whether
// there is one: a read on a hot path passes its scratch buffer, and
// allocates nothing.
func (s *Store) AppendValue(dst, key []byte) (value []byte, found bool, err error) {
	v, closer, err := s.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return dst, false, nil
	}
	if err != nil {
		return dst, false, fmt.Errorf("read %s: %w: %w", s.cfg.Name, s.cfg.ErrUnavailable, err)
	}
	dst = append(dst, v...)
	closer.Close()
	return dst, true, nil
}

// Applied returns the stream sequence of the last message applied.
func (s *Store) Applied() uint64 { return s.applied.Load() }

// MessagesApplied returns how many stream messages the store has applied
// since it was opened: zero right after a restart that resumed where it
// stopped, every retained message after a rebuild.
func (s *Store) MessagesApplied() uint64 { return s.msgsApplied.Load() }

// Commit runs fn with a new batch under the write lock, then records seq
// as the last applied stream sequence in the same batch and commits it,
// counting msgs messages applied. An error of fn drops the batch.
func (s *Store) Commit(seq, msgs uint64, fn func(b *pebble.Batch) error) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	err := s.commit(func(b *pebble.Batch) error {
		if err := fn(b); err != nil {
			return err
		}
		// A batch's Set fails only once committed, and copies its value.
		var v [8]byte
		binary.BigEndian.PutUint64(v[:], seq)
		return b.Set(keyApplied, v[:], nil)
	})
	if err != nil {
		return err
	}
	s.msgsApplied.Add(msgs)
	s.setApplied(seq)
	return nil
}

// Update runs fn with a new batch under the write lock, then commits the
// batch unless it is empty. An error of fn drops the batch.
func (s *Store) Update(fn func(b *pebble.Batch) error) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	return s.commit(fn)
}

// commit runs fn with a new batch and commits it unless it is empty; the
// caller holds writeMu.
func (s *Store) commit(fn func(b *pebble.Batch) error) error {
	b := s.db.NewBatch()
	defer b.Close()
	if err := fn(b); err != nil {
		return err
	}
	if b.Empty() {
		return nil
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		return fmt.Errorf("write %s: %w: %w", s.cfg.Name, s.cfg.ErrUnavailable, err)
	}
	return nil
}

// advanced returns a channel closed when Applied next moves.
func (s *Store) advanced() <-chan struct{} {
	s.notifyMu.Lock()
	defer s.notifyMu.Unlock()
	if s.notify == nil {
		s.notify = make(chan struct{})
	}
	return s.notify
}

func (s *Store) setApplied(seq uint64) {
	s.applied.Store(seq)
	s.notifyMu.Lock()
	if s.notify != nil {
		close(s.notify)
		s.notify = nil
	}
	s.notifyMu.Unlock()
}

// Sync waits until the store has applied everything the stream held when
// Sync was called (one stream info request, then a wait), so that a read
// after it sees every message stored before it: read-your-writes. It gives
// up after Config.SyncWait, or when ctx ends, with an error that wraps
// ErrUnavailable and the context's (the store is behind, or its follower
// stopped). Before Follow it returns at once.
func (s *Store) Sync(ctx context.Context) error {
	if s.stream == nil {
		return nil
	}
	ctx, cancel := context.WithTimeoutCause(ctx, s.cfg.SyncWait,
		fmt.Errorf("not caught up within %v: %w", s.cfg.SyncWait, context.DeadlineExceeded))
	defer cancel()
	info, err := s.stream.Info(ctx)
	if err != nil {
		return fmt.Errorf("sync %s: %w: %w", s.cfg.Name, s.cfg.ErrUnavailable, err)
	}
	if info.State.Msgs == 0 {
		return nil
	}
	for {
		ch := s.advanced()
		if s.applied.Load() >= info.State.LastSeq {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("sync %s: at %d of %d: %w: %w", s.cfg.Name, s.applied.Load(), info.State.LastSeq, s.cfg.ErrUnavailable, context.Cause(ctx))
		case <-s.done:
			return fmt.Errorf("sync %s: closed: %w", s.cfg.Name, s.cfg.ErrUnavailable)
		}
	}
}

// Done returns a channel closed when Close starts: long work, such as
// retention, stops at it.
func (s *Store) Done() <-chan struct{} { return s.done }

// Reading guards a read against Close: it returns the function that ends
// the read, or an error wrapping ErrUnavailable once Close has started.
func (s *Store) Reading() (release func(), err error) {
	s.closeMu.RLock()
	if s.closed {
		s.closeMu.RUnlock()
		return nil, fmt.Errorf("%s closed: %w", s.cfg.Name, s.cfg.ErrUnavailable)
	}
	return s.release, nil
}

// Close stops following the stream, waits for the store's goroutines and
// for the reads in progress, flushes and closes the store. Reads after it
// return ErrUnavailable; a second Close does nothing. When ctx ends first
// (storage that cannot flush waits forever), Close stops waiting and
// returns an error, leaving the store to close in the background: what it
// had not flushed is applied again from the stream at the next start.
func (s *Store) Close(ctx context.Context) error {
	first := false
	s.closeOnce.Do(func() {
		first = true
		go func() {
			s.closeErr = s.close()
			close(s.closedCh)
		}()
	})
	select {
	case <-s.closedCh:
		if first {
			return s.closeErr
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("close %s: stopped waiting, left closing: %w", s.cfg.Name, ctx.Err())
	}
}

func (s *Store) close() error {
	s.closeMu.Lock()
	s.closed = true // no read starts from now on
	s.closeMu.Unlock()
	if s.cc != nil {
		s.cc.Stop()
	}
	close(s.done)
	s.wg.Wait()
	s.closeMu.Lock() // wait for the reads in progress
	defer s.closeMu.Unlock()
	// Without a WAL, what is only in memtables would be lost: flush it so
	// that the next open resumes exactly here.
	err := s.db.Flush()
	if cerr := s.db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("close %s: %w", s.cfg.Name, err)
	}
	return nil
}

// pebbleLogger sends the store's messages to slog.
type pebbleLogger struct{ s *Store }

func (l pebbleLogger) Infof(format string, args ...any) {
	l.s.log.Debug(l.s.cfg.Name + " store: " + fmt.Sprintf(format, args...))
}

func (l pebbleLogger) Errorf(format string, args ...any) {
	l.s.log.Error(l.s.cfg.Name + " store: " + fmt.Sprintf(format, args...))
}

// Fatalf is pebble's word that the store cannot go on, and must not
// return: it marks the store for a rebuild and panics, which ends the
// goroutine that called it (the store's own recover theirs, see
// [health.Health.Recover]; Open turns one into an error).
func (l pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	l.s.log.Error(l.s.cfg.Name + " store: fatal: " + msg)
	l.s.broken("fatal: " + msg)
	panic(l.s.cfg.Name + " store: " + msg)
}
