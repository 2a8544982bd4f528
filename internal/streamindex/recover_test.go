package streamindex_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/google/go-cmp/cmp"

	"github.com/onestack/webhooks/internal/health"
	"github.com/onestack/webhooks/internal/poll"
	"github.com/onestack/webhooks/internal/streamindex"
)

// TestOpenRebuildsABadDirectory: a store whose files cannot be read is
// moved aside at Open and rebuilt from the stream, answering as before.
func TestOpenRebuildsABadDirectory(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		spoil func(t *testing.T, dir string)
	}{
		{"garbage over its files", func(t *testing.T, dir string) {
			files, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range files {
				if err := os.WriteFile(filepath.Join(dir, f.Name()), []byte("not a pebble file"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}},
		{"a table's bytes flipped", func(t *testing.T, dir string) {
			tables, err := filepath.Glob(filepath.Join(dir, "*.sst"))
			if err != nil || len(tables) == 0 {
				t.Fatalf("no table in %s: %v", dir, err)
			}
			for _, name := range tables {
				b, err := os.ReadFile(name)
				if err != nil {
					t.Fatal(err)
				}
				for i := range len(b) / 2 {
					b[i] ^= 0xff
				}
				if err := os.WriteFile(name, b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}},
		{"a file unreadable", func(t *testing.T, dir string) {
			// A directory in place of a file: reading it fails, even as root.
			manifests, err := filepath.Glob(filepath.Join(dir, "MANIFEST-*"))
			if err != nil || len(manifests) == 0 {
				t.Fatalf("no MANIFEST in %s: %v", dir, err)
			}
			for _, m := range manifests {
				if err := os.Remove(m); err != nil {
					t.Fatal(err)
				}
				if err := os.Mkdir(m, 0o755); err != nil {
					t.Fatal(err)
				}
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			js := startStream(t)
			dir := filepath.Join(t.TempDir(), "index")
			want := map[string]string{}
			for i := range 10 {
				publish(t, js, "t."+strconv.Itoa(i), "v"+strconv.Itoa(i))
				want["k"+strconv.Itoa(i)] = "v" + strconv.Itoa(i)
			}
			s := follow(t, js, config(dir))
			syncStore(t, s)
			if err := s.Close(t.Context()); err != nil {
				t.Fatal(err)
			}
			tt.spoil(t, dir)

			cfg := config(dir)
			cfg.Health = health.New()
			cfg.Health.Set(cfg.Name, "corrupt") // as found while running
			s = follow(t, js, cfg)
			syncStore(t, s)
			if diff := cmp.Diff(want, contents(t, s)); diff != "" {
				t.Errorf("after the rebuild (-want +got):\n%s", diff)
			}
			aside, err := filepath.Glob(dir + ".corrupt-*")
			if err != nil || len(aside) != 1 {
				t.Errorf("directories moved aside: %q, %v; want one", aside, err)
			}
			if p := cfg.Health.Problems(); len(p) != 0 {
				t.Errorf("problems after the rebuild: %q, want none", p)
			}
		})
	}
}

// TestApplyPanicRecovered: a panic in the follower stops it, not the
// process; it is counted and reported.
func TestApplyPanicRecovered(t *testing.T) {
	t.Parallel()
	js := startStream(t)
	cfg := config(t.TempDir())
	cfg.Health = health.New()
	cfg.SyncWait = 100 * time.Millisecond
	cfg.Apply = func(*pebble.Batch, []streamindex.Msg) error { panic("apply broken") }
	s := follow(t, js, cfg)
	publish(t, js, "t.a", "1")
	poll.Until(t, waitLimit, "the panic counted", func() bool { return cfg.Health.Panics() == 1 })
	want := []string{"test index follower: stopped by a panic: apply broken"}
	if diff := cmp.Diff(want, cfg.Health.Problems()); diff != "" {
		t.Errorf("Problems() (-want +got):\n%s", diff)
	}
	ctx, cancel := context.WithTimeout(t.Context(), waitLimit)
	defer cancel()
	if err := s.Sync(ctx); !errors.Is(err, errUnavailable) {
		t.Errorf("Sync with the follower stopped = %v, want errUnavailable", err)
	}
}

// TestSyncBounded: Sync gives up when the store does not catch up, whatever
// the caller's context.
func TestSyncBounded(t *testing.T) {
	t.Parallel()
	js := startStream(t)
	cfg := config(t.TempDir())
	cfg.SyncWait = 100 * time.Millisecond
	release := make(chan struct{})
	cfg.Apply = func(b *pebble.Batch, msgs []streamindex.Msg) error {
		<-release
		return kvApply(b, msgs)
	}
	s := follow(t, js, cfg)
	t.Cleanup(func() { close(release) })
	publish(t, js, "t.a", "1")
	done := make(chan error, 1)
	go func() { done <- s.Sync(t.Context()) }()
	if err := poll.Receive(t, waitLimit, "Sync behind gave up", done); !errors.Is(err, errUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Sync behind = %v, want errUnavailable and context.DeadlineExceeded", err)
	}
}

// TestCloseWhenStorageLost: Close returns when its context ends although
// its directory is gone and pebble cannot flush.
func TestCloseWhenStorageLost(t *testing.T) {
	t.Parallel()
	js := startStream(t)
	dir := filepath.Join(t.TempDir(), "index")
	s := follow(t, js, config(dir))
	for i := range 10 {
		publish(t, js, "t."+strconv.Itoa(i), "v")
	}
	syncStore(t, s)
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Close(ctx) }()
	if err := poll.Receive(t, waitLimit, "Close with its directory gone returned", done); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Close with its directory gone = %v, want context.DeadlineExceeded", err)
	}
	// The directory back, the close left running can end.
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	closeStore(s)
}
