package kvwatch_test

import (
	"bytes"
	"errors"
	"log/slog"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/onestack/webhooks/internal/health"
	"github.com/onestack/webhooks/internal/kvwatch"
	"github.com/onestack/webhooks/internal/natstest"
	"github.com/onestack/webhooks/internal/poll"
)

// memory is what a watch keeps: the bucket's live keys and values.
type memory struct {
	mu sync.Mutex
	m  map[string]string
}

func (m *memory) apply(e jetstream.KeyValueEntry) error {
	if string(e.Value()) == "undecodable" {
		return errors.New("not a value")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if e.Operation() == jetstream.KeyValuePut {
		m.m[e.Key()] = string(e.Value())
	} else {
		delete(m.m, e.Key())
	}
	return nil
}

func (m *memory) get() map[string]string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return maps.Clone(m.m)
}

func TestWatch(t *testing.T) {
	_, js := natstest.Start(t, natstest.Options{}).Connect(t)
	ctx := t.Context()
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "test"})
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{"a": "1", "b": "2", "bad": "undecodable", "c": "3"} {
		if _, err := kv.PutString(ctx, k, v); err != nil {
			t.Fatal(err)
		}
	}
	var logs bytes.Buffer // written by the watch, read after Stop
	mem := &memory{m: map[string]string{}}
	w, err := kvwatch.Start(ctx, kv, mem.apply, kvwatch.Config{}, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Loaded(ctx); err != nil {
		t.Fatalf("Loaded: %v", err)
	}
	if diff := cmp.Diff(map[string]string{"a": "1", "b": "2", "c": "3"}, mem.get()); diff != "" {
		t.Errorf("once loaded (-want +got):\n%s", diff)
	}

	if _, err := kv.PutString(ctx, "a", "1b"); err != nil {
		t.Fatal(err)
	}
	if err := kv.Delete(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"a": "1b", "c": "3"}
	poll.Until(t, 10*time.Second, "changes applied", func() bool { return cmp.Equal(want, mem.get()) })

	w.Stop()
	w.Stop() // a second Stop does nothing
	if _, err := kv.PutString(ctx, "d", "4"); err != nil {
		t.Fatal(err)
	}
	if err := w.Loaded(ctx); err != nil {
		t.Errorf("Loaded after Stop = %v, want nil (it had loaded)", err)
	}
	if diff := cmp.Diff(want, mem.get()); diff != "" {
		t.Errorf("a put after Stop was applied (-want +got):\n%s", diff)
	}
	if got := logs.String(); !strings.Contains(got, "skip an undecodable entry") || !strings.Contains(got, "key=bad") {
		t.Errorf("logs = %q, want the undecodable entry named", got)
	}
}

func TestStartFails(t *testing.T) {
	srv := natstest.Start(t, natstest.Options{})
	nc, js := srv.Connect(t)
	kv, err := js.CreateKeyValue(t.Context(), jetstream.KeyValueConfig{Bucket: "test"})
	if err != nil {
		t.Fatal(err)
	}
	nc.Close()
	if _, err := kvwatch.Start(t.Context(), kv, func(jetstream.KeyValueEntry) error { return nil }, kvwatch.Config{}, nil); err == nil || !strings.Contains(err.Error(), "watch bucket test") {
		t.Errorf("Start on a closed connection = %v, want an error naming the bucket", err)
	}
}

// TestWatchRestarts: a watch nats.go ends (it could not rebuild its
// consumer) is started again once it can be, and what it feeds ends up
// with exactly the bucket's keys: the changes made while it was down, and
// the removals, that of a key whose delete marker is gone too. While it is
// down its health names it; it is logged once and counted once.
func TestWatchRestarts(t *testing.T) {
	_, js := natstest.Start(t, natstest.Options{}).Connect(t)
	ctx := t.Context()
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "test"})
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{"a": "1", "b": "2", "c": "3", "d": "4"} {
		if _, err := kv.PutString(ctx, k, v); err != nil {
			t.Fatal(err)
		}
	}
	h := health.New()
	restarts := kvwatch.NewRestarts()
	var logs bytes.Buffer // written by the watch, read after Stop
	mem := &memory{m: map[string]string{}}
	w, err := kvwatch.Start(ctx, kv, mem.apply, kvwatch.Config{Health: h, Restarts: restarts}, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if err := w.Loaded(ctx); err != nil {
		t.Fatalf("Loaded: %v", err)
	}
	if got := count(t, restarts); got != 0 {
		t.Errorf("restarts of a new watch = %v, want 0", got)
	}

	mend := natstest.BreakWatches(t, js, "test")
	down := func() bool {
		p := h.Problems()
		return len(p) == 1 && strings.HasPrefix(p[0], "watch test: ")
	}
	poll.Until(t, 10*time.Second, "the ended watch named in the health", down)
	if _, err := kv.PutString(ctx, "a", "1b"); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.PutString(ctx, "e", "5"); err != nil {
		t.Fatal(err)
	}
	if err := kv.Delete(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	// c goes with its delete marker, as when the marker's TTL passes.
	st, err := js.Stream(ctx, "KV_test")
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Purge(ctx, jetstream.WithPurgeSubject("$KV.test.c")); err != nil {
		t.Fatal(err)
	}
	if !down() {
		t.Errorf("health = %q while consumers are refused, want the watch named", h.Problems())
	}
	mend()

	want := map[string]string{"a": "1b", "d": "4", "e": "5"}
	poll.Until(t, 30*time.Second, "the restarted watch caught up", func() bool { return cmp.Equal(want, mem.get()) })
	if diff := cmp.Diff(want, mem.get()); diff != "" {
		t.Errorf("after the restart (-want +got):\n%s", diff)
	}
	poll.Until(t, 10*time.Second, "the health cleared", func() bool { return len(h.Problems()) == 0 })
	if got := count(t, restarts); got != 1 {
		t.Errorf("restarts = %v, want 1", got)
	}
	// It follows the bucket again.
	if _, err := kv.PutString(ctx, "f", "6"); err != nil {
		t.Fatal(err)
	}
	want["f"] = "6"
	poll.Until(t, 10*time.Second, "a change after the restart applied", func() bool { return cmp.Equal(want, mem.get()) })
	w.Stop()
	if got := strings.Count(logs.String(), "level=WARN"); got != 1 {
		t.Errorf("logs = %q, want one warning for the outage", logs.String())
	}
}

// count reads the counter of restarts of bucket "test" (-1 if it has none).
func count(t *testing.T, restarts *prometheus.CounterVec) float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(restarts)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "bucket" && l.GetValue() == "test" {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return -1
}

// TestStopWhileDown: a watch stopped while it cannot be restarted stops,
// and takes its problem out of the health.
func TestStopWhileDown(t *testing.T) {
	_, js := natstest.Start(t, natstest.Options{}).Connect(t)
	ctx := t.Context()
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.PutString(ctx, "a", "1"); err != nil {
		t.Fatal(err)
	}
	h := health.New()
	mem := &memory{m: map[string]string{}}
	w, err := kvwatch.Start(ctx, kv, mem.apply, kvwatch.Config{Health: h}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Loaded(ctx); err != nil {
		t.Fatalf("Loaded: %v", err)
	}
	defer natstest.BreakWatches(t, js, "test")()
	poll.Until(t, 10*time.Second, "the ended watch named in the health", func() bool { return len(h.Problems()) == 1 })
	w.Stop()
	if p := h.Problems(); len(p) != 0 {
		t.Errorf("health after Stop = %q, want none", p)
	}
}
