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
	w, err := kvwatch.Start(ctx, kv, mem.apply, slog.New(slog.NewTextHandler(&logs, nil)))
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
	if _, err := kvwatch.Start(t.Context(), kv, func(jetstream.KeyValueEntry) error { return nil }, nil); err == nil || !strings.Contains(err.Error(), "watch bucket test") {
		t.Errorf("Start on a closed connection = %v, want an error naming the bucket", err)
	}
}
