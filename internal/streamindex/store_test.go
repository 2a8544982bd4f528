package streamindex_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/onestack/webhooks/internal/jsretry"
	"github.com/onestack/webhooks/internal/natstest"
	"github.com/onestack/webhooks/internal/poll"
	"github.com/onestack/webhooks/internal/streamindex"
)

var errUnavailable = errors.New("test index unavailable")

const (
	streamName = "TESTIDX"
	waitLimit  = 30 * time.Second
)

// kvApply is the test's index: a message on subject "t.<key>" sets key
// 'k' + <key> to its data.
func kvApply(b *pebble.Batch, msgs []streamindex.Msg) error {
	for _, m := range msgs {
		_ = b.Set(append([]byte{'k'}, m.Subject[len("t."):]...), m.Data, nil)
	}
	return nil
}

func config(dir string) streamindex.Config {
	return streamindex.Config{
		Name: "test index", Dir: dir, ErrUnavailable: errUnavailable,
		Stream: streamName, FilterSubjects: []string{"t.>"}, BatchMsgs: 4,
		Apply: kvApply,
	}
}

func startStream(t *testing.T) jetstream.JetStream {
	t.Helper()
	_, js := natstest.Start(t, natstest.Options{}).Connect(t)
	createStream(t, js)
	return js
}

// createStream makes the test stream, as the product does, through
// jsretry.Provision: made again at once after a delete, it can meet the
// server still removing the old one's storage.
func createStream(t *testing.T, js jetstream.JetStream) {
	t.Helper()
	if _, err := jsretry.Provision(t.Context(), func(ctx context.Context) (jetstream.Stream, error) {
		return js.CreateStream(ctx, jetstream.StreamConfig{Name: streamName, Subjects: []string{"t.>", "other.>"}})
	}); err != nil {
		t.Fatal(err)
	}
}

func publish(t *testing.T, js jetstream.JetStream, subject, data string) uint64 {
	t.Helper()
	ack, err := js.Publish(t.Context(), subject, []byte(data))
	if err != nil {
		t.Fatal(err)
	}
	return ack.Sequence
}

func follow(t *testing.T, js jetstream.JetStream, cfg streamindex.Config) *streamindex.Store {
	t.Helper()
	s, err := streamindex.Open(cfg, nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { closeStore(s) })
	if err := s.Follow(t.Context(), js); err != nil {
		t.Fatalf("Follow: %v", err)
	}
	return s
}

// closeStore closes s within waitLimit, after the test's context ended.
func closeStore(s *streamindex.Store) {
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	_ = s.Close(ctx)
}

func syncStore(t *testing.T, s *streamindex.Store) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitLimit)
	defer cancel()
	if err := s.Sync(ctx); err != nil {
		t.Fatalf("Sync: %v", err)
	}
}

// contents returns the index's keys (the store's own left out) and values.
func contents(t *testing.T, s *streamindex.Store) map[string]string {
	t.Helper()
	it, err := s.DB().NewIter(&pebble.IterOptions{LowerBound: []byte{1}})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	out := map[string]string{}
	for valid := it.First(); valid; valid = it.Next() {
		out[string(it.Key())] = string(it.Value())
	}
	return out
}

// TestFollowResumeRebuild: the store applies the stream's subjects it
// follows; reopened, it resumes after the last message applied; on a
// recreated stream, it starts over.
func TestFollowResumeRebuild(t *testing.T) {
	t.Parallel()
	js := startStream(t)
	dir := t.TempDir()
	publish(t, js, "other.x", "not followed")
	want := map[string]string{}
	var last uint64
	for i := range 10 {
		last = publish(t, js, "t."+strconv.Itoa(i), "v"+strconv.Itoa(i))
		want["k"+strconv.Itoa(i)] = "v" + strconv.Itoa(i)
	}

	s := follow(t, js, config(dir))
	syncStore(t, s)
	if diff := cmp.Diff(want, contents(t, s)); diff != "" {
		t.Errorf("after the first open (-want +got):\n%s", diff)
	}
	if s.Applied() != last || s.MessagesApplied() != 10 {
		t.Errorf("Applied() = %d, MessagesApplied() = %d; want %d, 10", s.Applied(), s.MessagesApplied(), last)
	}
	if err := s.Close(t.Context()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(t.Context()); err != nil {
		t.Errorf("second Close = %v, want nil", err)
	}
	if _, err := s.Reading(); !errors.Is(err, errUnavailable) {
		t.Errorf("Reading after Close = %v, want errUnavailable", err)
	}

	publish(t, js, "t.1", "v1 again")
	publish(t, js, "t.new", "new")
	want["k1"], want["knew"] = "v1 again", "new"
	s = follow(t, js, config(dir))
	syncStore(t, s)
	if diff := cmp.Diff(want, contents(t, s)); diff != "" {
		t.Errorf("after reopening (-want +got):\n%s", diff)
	}
	if got := s.MessagesApplied(); got != 2 {
		t.Errorf("reopened store applied %d messages, want the 2 new ones", got)
	}
	if err := s.Close(t.Context()); err != nil {
		t.Fatalf("Close: %v", err)
	}

	if err := js.DeleteStream(t.Context(), streamName); err != nil {
		t.Fatal(err)
	}
	createStream(t, js)
	publish(t, js, "t.fresh", "fresh")
	s = follow(t, js, config(dir))
	syncStore(t, s)
	if diff := cmp.Diff(map[string]string{"kfresh": "fresh"}, contents(t, s)); diff != "" {
		t.Errorf("on a recreated stream (-want +got):\n%s", diff)
	}
	if s.Applied() != 1 || s.MessagesApplied() != 1 {
		t.Errorf("on a recreated stream: Applied() = %d, MessagesApplied() = %d; want 1, 1", s.Applied(), s.MessagesApplied())
	}
}

// TestApplyRetries: a batch Apply fails is dropped and applied again.
func TestApplyRetries(t *testing.T) {
	t.Parallel()
	js := startStream(t)
	cfg := config(t.TempDir())
	var failures atomic.Int32
	cfg.Apply = func(b *pebble.Batch, msgs []streamindex.Msg) error {
		_ = kvApply(b, msgs)
		if failures.Add(1) == 1 {
			return errors.New("store failing")
		}
		return nil
	}
	s := follow(t, js, cfg)
	publish(t, js, "t.a", "1")
	syncStore(t, s)
	if diff := cmp.Diff(map[string]string{"ka": "1"}, contents(t, s)); diff != "" {
		t.Errorf("after a failed apply (-want +got):\n%s", diff)
	}
	if failures.Load() < 2 {
		t.Errorf("Apply called %d times, want a retry", failures.Load())
	}
}

// TestRetention: Follow runs Expire with now - Retention; ExpireRange
// deletes a range in chunks, with what fn deletes alongside each key.
func TestRetention(t *testing.T) {
	t.Parallel()
	js := startStream(t)
	cfg := config(t.TempDir())
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	cutoffs := make(chan time.Time, 1)
	cfg.Now = func() time.Time { return now }
	cfg.Retention = time.Hour
	cfg.RetentionEvery = time.Hour // the test runs it
	cfg.Expire = func(cutoff time.Time) (int, error) {
		select {
		case cutoffs <- cutoff:
		default:
		}
		return 0, nil
	}
	s := follow(t, js, cfg)
	if got, want := poll.Receive(t, waitLimit, "Expire called when following starts", cutoffs), now.Add(-time.Hour); !got.Equal(want) {
		t.Errorf("Expire cutoff = %v, want %v", got, want)
	}

	// Keys 'x' i (i < n) each with a companion 'y' i.
	const n = 2*streamindex.ExpireChunk + 100
	key := func(kind byte, i int) []byte { return fmt.Appendf([]byte{kind}, "%06d", i) }
	err := s.Commit(1, 0, func(b *pebble.Batch) error {
		for i := range n {
			_ = b.Set(key('x', i), key('y', i), nil)
			_ = b.Set(key('y', i), nil, nil)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	const upTo = 2*streamindex.ExpireChunk + 50
	deleted, err := s.ExpireRange([]byte{'x'}, key('x', upTo), func(b *pebble.Batch, _, value []byte) error {
		return b.Delete(value, nil)
	})
	if err != nil || deleted != upTo {
		t.Fatalf("ExpireRange = %d, %v; want %d", deleted, err, upTo)
	}
	got := contents(t, s)
	if len(got) != 2*(n-upTo) {
		t.Errorf("%d keys left, want %d", len(got), 2*(n-upTo))
	}
	for _, i := range []int{0, upTo - 1} {
		if _, ok := got[string(key('x', i))]; ok {
			t.Errorf("key x%06d left", i)
		}
		if _, ok := got[string(key('y', i))]; ok {
			t.Errorf("companion y%06d left", i)
		}
	}
	if _, ok := got[string(key('y', upTo))]; !ok {
		t.Errorf("companion y%06d, past the range, deleted", upTo)
	}
	stop := errors.New("stop")
	if _, err := s.ExpireRange([]byte{'x'}, []byte{'y'}, func(*pebble.Batch, []byte, []byte) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("ExpireRange with a failing fn = %v, want its error", err)
	}
	if left := len(contents(t, s)); left != 2*(n-upTo) {
		t.Errorf("a failed chunk deleted keys: %d left, want %d", left, 2*(n-upTo))
	}
}

// TestCommitAndUpdate: Commit records the sequence with the data; an
// error of fn drops the batch; reads see what was committed.
func TestCommitAndUpdate(t *testing.T) {
	t.Parallel()
	s, err := streamindex.Open(config(t.TempDir()), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer closeStore(s)
	if err := s.Sync(t.Context()); err != nil {
		t.Errorf("Sync before Follow = %v, want nil", err)
	}
	if err := s.Commit(7, 3, func(b *pebble.Batch) error { return b.Set([]byte("ka"), []byte("1"), nil) }); err != nil {
		t.Fatal(err)
	}
	failing := errors.New("failing")
	if err := s.Commit(8, 1, func(b *pebble.Batch) error { _ = b.Set([]byte("kb"), nil, nil); return failing }); !errors.Is(err, failing) {
		t.Errorf("Commit with a failing fn = %v, want its error", err)
	}
	if err := s.Update(func(b *pebble.Batch) error { return b.Set([]byte("kc"), []byte("3"), nil) }); err != nil {
		t.Fatal(err)
	}
	if s.Applied() != 7 || s.MessagesApplied() != 3 {
		t.Errorf("Applied() = %d, MessagesApplied() = %d; want 7, 3", s.Applied(), s.MessagesApplied())
	}
	if diff := cmp.Diff(map[string]string{"ka": "1", "kc": "3"}, contents(t, s)); diff != "" {
		t.Errorf("contents (-want +got):\n%s", diff)
	}
	if v, err := s.Get([]byte("kz")); v != nil || err != nil {
		t.Errorf("Get(absent) = %q, %v; want nil, nil", v, err)
	}
}

// TestReopenKeepsApplied: the applied sequence survives Close without
// following (a store built through Commit alone).
func TestReopenKeepsApplied(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, err := streamindex.Open(config(dir), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(42, 1, func(*pebble.Batch) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	s, err = streamindex.Open(config(dir), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer closeStore(s)
	if s.Applied() != 42 || s.MessagesApplied() != 0 {
		t.Errorf("reopened: Applied() = %d, MessagesApplied() = %d; want 42, 0", s.Applied(), s.MessagesApplied())
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	ok := config("dir")
	tests := []struct {
		name string
		edit func(*streamindex.Config)
		ok   bool
	}{
		{"complete", func(*streamindex.Config) {}, true},
		{"no name", func(c *streamindex.Config) { c.Name = "" }, false},
		{"no directory", func(c *streamindex.Config) { c.Dir = "" }, false},
		{"no error", func(c *streamindex.Config) { c.ErrUnavailable = nil }, false},
		{"expire without retention", func(c *streamindex.Config) {
			c.Expire = func(time.Time) (int, error) { return 0, nil }
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.edit(&c)
			if err := c.Validate(); (err == nil) != tt.ok {
				t.Errorf("Validate() = %v, want ok %v", err, tt.ok)
			}
		})
	}
}

// TestBlockCacheBesideMemTables: Pebble reserves its memtables in the
// block cache, so a store whose memtables are full must still cache the
// blocks its reads load (each Get of a flushed key read from disk again
// was most of the event index's duplicate check).
func TestBlockCacheBesideMemTables(t *testing.T) {
	t.Parallel()
	cfg := config(t.TempDir())
	cfg.CacheBytes, cfg.MemTableBytes, cfg.MemTables = 1<<20, 1<<20, 2
	s, err := streamindex.Open(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer closeStore(s)
	val := make([]byte, 100)
	key := func(i int) []byte { return fmt.Appendf(nil, "k%08d", i) }
	// Enough to flush a few tables and fill the memtables again.
	const keys = 40_000
	for seq := uint64(1); seq <= keys/1000; seq++ {
		if err := s.Commit(seq, 1000, func(b *pebble.Batch) error {
			for i := range 1000 {
				_ = b.Set(key(int(seq-1)*1000+i), val, nil)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DB().Flush(); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		for i := 0; i < keys; i += 97 {
			if v, err := s.Get(key(i)); v == nil || err != nil {
				t.Fatalf("Get(%s) = %q, %v; want its value", key(i), v, err)
			}
		}
	}
	m := s.DB().Metrics().BlockCache
	if m.Count == 0 || m.Hits <= m.Misses {
		t.Errorf("block cache after reading the same keys 3 times: %d blocks, %d hits, %d misses; want blocks and more hits than misses", m.Count, m.Hits, m.Misses)
	}
}
