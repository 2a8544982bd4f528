package kvstore

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/onestack/webhooks/internal/natstest"
	"github.com/onestack/webhooks/portal"
)

func open(t *testing.T) *Store {
	t.Helper()
	_, js := natstest.Start(t, natstest.Options{}).Connect(t)
	s, err := Open(context.Background(), js, Config{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestTakeLinkOnce races 20 takers for one link, on two stores (as two
// replicas would be): exactly one gets it.
func TestTakeLinkOnce(t *testing.T) {
	t.Parallel()
	ns := natstest.Start(t, natstest.Options{})
	var stores []*Store
	for range 2 {
		_, js := ns.Connect(t)
		s, err := Open(context.Background(), js, Config{})
		if err != nil {
			t.Fatal(err)
		}
		stores = append(stores, s)
	}
	ctx := context.Background()
	for round := range 5 {
		id := "link" + string(rune('a'+round))
		if err := stores[0].PutLink(ctx, id, portal.Link{Tenant: "ten_A", ExpiresAt: time.Now().Add(time.Minute)}); err != nil {
			t.Fatal(err)
		}
		var won, lost atomic.Int64
		var wg sync.WaitGroup
		for i := range 20 {
			wg.Go(func() {
				l, err := stores[i%2].TakeLink(ctx, id)
				switch {
				case err == nil && l.Tenant == "ten_A":
					won.Add(1)
				case errors.Is(err, portal.ErrNotFound):
					lost.Add(1)
				default:
					t.Errorf("TakeLink = %+v, %v", l, err)
				}
			})
		}
		wg.Wait()
		if won.Load() != 1 || lost.Load() != 19 {
			t.Errorf("round %d: %d takers won and %d lost, want 1 and 19", round, won.Load(), lost.Load())
		}
	}
}

func TestSessions(t *testing.T) {
	t.Parallel()
	s := open(t)
	ctx := context.Background()
	if _, err := s.Session(ctx, "ten_A", "x"); !errors.Is(err, portal.ErrNotFound) {
		t.Errorf("missing session: %v, want ErrNotFound", err)
	}
	if n, err := s.DeleteSessions(ctx, "ten_A"); n != 0 || err != nil {
		t.Errorf("DeleteSessions with none = %d, %v", n, err)
	}
	want := portal.Session{Tenant: "ten_A", KeyID: "key_1", CSRF: "c", ExpiresAt: time.Now().Add(time.Hour).UTC().Round(0)}
	for _, id := range []string{"a1", "a2", "a3"} {
		if err := s.PutSession(ctx, "ten_A", id, want); err != nil {
			t.Fatal(err)
		}
	}
	s.PutSession(ctx, "ten_AB", "b1", portal.Session{Tenant: "ten_AB"})
	got, err := s.Session(ctx, "ten_A", "a1")
	if err != nil || got.KeyID != "key_1" || got.CSRF != "c" || !got.ExpiresAt.Equal(want.ExpiresAt) {
		t.Errorf("Session = %+v, %v; want %+v", got, err, want)
	}
	if err := s.DeleteSession(ctx, "ten_A", "a1"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteSession(ctx, "ten_A", "a1"); err != nil {
		t.Errorf("deleting a deleted session: %v", err)
	}
	if n, err := s.DeleteSessions(ctx, "ten_A"); n != 2 || err != nil {
		t.Errorf("DeleteSessions = %d, %v; want the 2 left", n, err)
	}
	if _, err := s.Session(ctx, "ten_A", "a2"); !errors.Is(err, portal.ErrNotFound) {
		t.Errorf("after DeleteSessions: %v", err)
	}
	if _, err := s.Session(ctx, "ten_AB", "b1"); err != nil {
		t.Errorf("a tenant whose id extends the other's lost its session: %v", err)
	}
}

// TestBucketLifetimes: the buckets forget links after the link TTL and
// sessions after the session TTL.
func TestBucketLifetimes(t *testing.T) {
	t.Parallel()
	s := open(t)
	ctx := context.Background()
	for kv, want := range map[string]time.Duration{LinksBucket: portal.DefaultLinkTTL, SessionsBucket: portal.DefaultSessionTTL} {
		b := s.links
		if kv == SessionsBucket {
			b = s.sessions
		}
		st, err := b.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.TTL() != want {
			t.Errorf("%s TTL = %v, want %v", kv, st.TTL(), want)
		}
	}
}
