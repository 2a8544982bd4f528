package opevents

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/onestack/webhooks/events"
	"github.com/onestack/webhooks/internal/natstest"
	"github.com/onestack/webhooks/internal/poll"
)

// tinyWindow is the least duplicate window NATS takes.
const tinyWindow = 100 * time.Millisecond

// onceStack is a NATS server with the events stream, its duplicate window
// tiny, and the once bucket.
func onceStack(t *testing.T) (jetstream.JetStream, *Once) {
	t.Helper()
	ns := natstest.Start(t, natstest.Options{})
	_, js := ns.Connect(t)
	ctx := context.Background()
	if _, err := events.EnsureStream(ctx, js, events.StreamConfig{DedupeWindow: tinyWindow}); err != nil {
		t.Fatal(err)
	}
	once, err := OpenOnce(ctx, js, OnceConfig{MaxBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	return js, once
}

// pastWindow waits until the stream has forgotten a message id published
// now: whatever two emitters publish after it is not deduplicated by it.
func pastWindow(t *testing.T, js jetstream.JetStream) {
	t.Helper()
	probe := &nats.Msg{Subject: events.Subject("ten_probe", "ticket.updated"), Header: nats.Header{nats.MsgIdHdr: {"probe-" + t.Name()}}, Data: []byte("{}")}
	ctx := context.Background()
	if _, err := js.PublishMsg(ctx, probe); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 30*time.Second, "the stream forgets a message id", func() bool {
		ack, err := js.PublishMsg(ctx, probe)
		return err == nil && !ack.Duplicate
	})
}

// stored counts the messages stored on subject.
func stored(t *testing.T, js jetstream.JetStream, subject string) uint64 {
	t.Helper()
	s, err := js.Stream(context.Background(), events.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background(), jetstream.WithSubjectFilter(subject))
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Subjects[subject]
}

// TestLimitEventOnceAcrossEmitters: two emitters (two replicas) raise the
// same tenant's limit event in the same hour, one after the other with
// the stream's duplicate window passed between them, or at once; the
// event is stored once for the tenant and once for the operator, and
// logged once.
func TestLimitEventOnceAcrossEmitters(t *testing.T) {
	at := time.Date(2026, 12, 3, 9, 10, 0, 0, time.UTC)
	tests := []struct {
		name     string
		together bool
	}{
		{"one after the other, past the duplicate window", false},
		{"at once", true},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			js, once := onceStack(t)
			tenant := fmt.Sprintf("ten_%d", i)
			var logs [2]lineCount
			emitters := make([]*Emitter, 2)
			for j := range emitters {
				emitters[j] = New(js, Config{Operator: "ten_operator", Once: once, Now: func() time.Time { return at }}, nil, logs[j].logger())
			}
			closeAll := func(es ...*Emitter) {
				for _, e := range es {
					ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
					e.Close(ctx)
					cancel()
				}
			}
			if tt.together {
				var wg sync.WaitGroup
				for _, e := range emitters {
					wg.Go(func() { e.LimitExceeded(tenant, "subscriptions", 2, 2) })
				}
				wg.Wait()
				closeAll(emitters...)
			} else {
				emitters[0].LimitExceeded(tenant, "subscriptions", 2, 2)
				closeAll(emitters[0])
				pastWindow(t, js)
				emitters[1].LimitExceeded(tenant, "subscriptions", 2, 2)
				closeAll(emitters[1])
			}
			for _, subject := range []string{events.Subject(tenant, events.TypeLimitExceeded), events.Subject("ten_operator", events.TypeLimitExceeded)} {
				if n := stored(t, js, subject); n != 1 {
					t.Errorf("%s holds %d events, want 1", subject, n)
				}
			}
			if n := logs[0].n() + logs[1].n(); n != 1 {
				t.Errorf("logged %d times by the two emitters, want once", n)
			}
		})
	}
}

// TestClaim: a key is claimed once until its TTL runs out, then again; a
// create whose answer was lost (the key holds this claim's own token) is
// this caller's.
func TestClaim(t *testing.T) {
	_, once := onceStack(t)
	ctx := context.Background()
	if ok, err := once.Claim(ctx, "ten_a.k", time.Hour); !ok || err != nil {
		t.Fatalf("first Claim = %v, %v; want true", ok, err)
	}
	if ok, err := once.Claim(ctx, "ten_a.k", time.Hour); ok || err != nil {
		t.Errorf("second Claim = %v, %v; want false", ok, err)
	}
	if ok, err := once.Claim(ctx, "ten_a.short", time.Second); !ok || err != nil {
		t.Fatalf("Claim of another key = %v, %v; want true", ok, err)
	}
	poll.Until(t, 30*time.Second, "the key is claimable again past its TTL", func() bool {
		ok, err := once.Claim(ctx, "ten_a.short", time.Second)
		if err != nil {
			t.Fatalf("Claim: %v", err)
		}
		return ok
	})
	// Many at once: one wins.
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for range 8 {
		wg.Go(func() {
			ok, err := once.Claim(ctx, "ten_a.race", time.Hour)
			if err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("Claim: %v", err)
			}
			if ok {
				mu.Lock()
				wins++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if wins != 1 {
		t.Errorf("8 concurrent claims won %d times, want 1", wins)
	}
}
