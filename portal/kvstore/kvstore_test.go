package kvstore

import (
	"context"
	"errors"
	"strings"
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
	if _, _, err := s.Session(ctx, "ten_A", "x"); !errors.Is(err, portal.ErrNotFound) {
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
	got, _, err := s.Session(ctx, "ten_A", "a1")
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
	if _, _, err := s.Session(ctx, "ten_A", "a2"); !errors.Is(err, portal.ErrNotFound) {
		t.Errorf("after DeleteSessions: %v", err)
	}
	if _, _, err := s.Session(ctx, "ten_AB", "b1"); err != nil {
		t.Errorf("a tenant whose id extends the other's lost its session: %v", err)
	}
}

// TestUpdateSession: a session is updated only at the revision last read;
// one deleted since (a sign-out, a revocation) or written since is left
// as it is.
func TestUpdateSession(t *testing.T) {
	t.Parallel()
	s := open(t)
	ctx := context.Background()
	tests := []struct {
		name   string
		since  func(id string) error // what happens between the read and the update
		stored bool                  // whether the session is stored after the race
	}{
		{"nothing", func(string) error { return nil }, true},
		{"sign-out", func(id string) error { return s.DeleteSession(ctx, "ten_U", id) }, false},
		{"revocation", func(string) error { _, err := s.DeleteSessions(ctx, "ten_U"); return err }, false},
		{"another write", func(id string) error {
			return s.PutSession(ctx, "ten_U", id, portal.Session{Tenant: "ten_U", CSRF: "other"})
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := "s_" + strings.ReplaceAll(tt.name, " ", "_")
			if err := s.PutSession(ctx, "ten_U", id, portal.Session{Tenant: "ten_U", CSRF: "first"}); err != nil {
				t.Fatal(err)
			}
			_, rev, err := s.Session(ctx, "ten_U", id)
			if err != nil {
				t.Fatal(err)
			}
			if err := tt.since(id); err != nil {
				t.Fatal(err)
			}
			err = s.UpdateSession(ctx, "ten_U", id, portal.Session{Tenant: "ten_U", CSRF: "update"}, rev)
			wantCSRF := "update"
			if tt.name != "nothing" {
				if !errors.Is(err, portal.ErrChanged) {
					t.Errorf("UpdateSession = %v, want ErrChanged", err)
				}
				wantCSRF = "other"
			} else if err != nil {
				t.Errorf("UpdateSession = %v", err)
			}
			got, _, err := s.Session(ctx, "ten_U", id)
			switch {
			case !tt.stored && !errors.Is(err, portal.ErrNotFound):
				t.Errorf("after the update, Session = %+v, %v; want ErrNotFound", got, err)
			case tt.stored && (err != nil || got.CSRF != wantCSRF):
				t.Errorf("after the update, Session = %+v, %v; want CSRF %q", got, err, wantCSRF)
			}
		})
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
