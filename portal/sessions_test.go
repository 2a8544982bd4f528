package portal

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

// memStore is a Store in memory, for the tests of Sessions. Like a KV
// bucket, it counts one revision for every write and deletion.
type memStore struct {
	mu       sync.Mutex
	links    map[string]Link
	sessions map[string]Session
	revs     map[string]uint64 // a session's last revision
	rev      uint64
}

func newMemStore() *memStore {
	return &memStore{links: map[string]Link{}, sessions: map[string]Session{}, revs: map[string]uint64{}}
}

func (m *memStore) PutLink(_ context.Context, id string, l Link) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.links[id] = l
	return nil
}

func (m *memStore) TakeLink(_ context.Context, id string) (Link, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	l, ok := m.links[id]
	if !ok {
		return Link{}, ErrNotFound
	}
	delete(m.links, id)
	return l, nil
}

func (m *memStore) PutSession(_ context.Context, tenant, id string, s Session) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.put(tenant+"."+id, s)
	return nil
}

func (m *memStore) UpdateSession(_ context.Context, tenant, id string, s Session, rev uint64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.revs[tenant+"."+id] != rev {
		return ErrChanged
	}
	m.put(tenant+"."+id, s)
	return nil
}

func (m *memStore) put(k string, s Session) {
	m.rev++
	m.sessions[k], m.revs[k] = s, m.rev
}

func (m *memStore) Session(_ context.Context, tenant, id string) (Session, uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.sessions[tenant+"."+id]
	if !ok {
		return Session{}, 0, ErrNotFound
	}
	return s, m.revs[tenant+"."+id], nil
}

func (m *memStore) DeleteSession(_ context.Context, tenant, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.delete(tenant + "." + id)
	return nil
}

// delete leaves a deletion's revision behind, as a KV purge marker does.
func (m *memStore) delete(k string) {
	m.rev++
	delete(m.sessions, k)
	m.revs[k] = m.rev
}

func (m *memStore) DeleteSessions(_ context.Context, tenant string) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for k := range m.sessions {
		if strings.HasPrefix(k, tenant+".") {
			m.delete(k)
			n++
		}
	}
	return n, nil
}

// clock is a settable time source.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

func tokenOf(t *testing.T, path string) string {
	t.Helper()
	_, tok, ok := strings.Cut(path, "?token=")
	if !ok || !strings.HasPrefix(path, LoginPath) {
		t.Fatalf("link path %q is not %s?token=...", path, LoginPath)
	}
	return tok
}

func TestLinks(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name    string
		wait    time.Duration
		uses    int
		wantErr []error
	}{
		{"used at once", 0, 1, []error{nil}},
		{"used twice", time.Minute, 2, []error{nil, errLinkUsed}},
		{"just before 10 minutes", 10*time.Minute - time.Second, 1, []error{nil}},
		{"at 10 minutes", 10 * time.Minute, 1, []error{errLinkUsed}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &clock{t: time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)}
			s := NewSessions(SessionsConfig{Store: newMemStore(), Now: c.now})
			path, expires, err := s.NewLink(ctx, "ten_A")
			if err != nil {
				t.Fatal(err)
			}
			if want := c.t.Add(10 * time.Minute); !expires.Equal(want) {
				t.Errorf("expiresAt = %v, want %v", expires, want)
			}
			c.advance(tt.wait)
			tok := tokenOf(t, path)
			for i := range tt.uses {
				cookie, ses, err := s.redeem(ctx, tok)
				if !errors.Is(err, tt.wantErr[i]) {
					t.Fatalf("use %d: redeem = %v, want %v", i+1, err, tt.wantErr[i])
				}
				if err == nil && (ses.Tenant != "ten_A" || !strings.HasPrefix(cookie, "ten_A.") || ses.CSRF == "") {
					t.Errorf("use %d: session %+v, cookie %q", i+1, ses, cookie)
				}
			}
		})
	}
	s := NewSessions(SessionsConfig{Store: newMemStore()})
	for _, bad := range []string{"", "x", strings.Repeat("A", 43), "not base64!"} {
		if _, _, err := s.redeem(ctx, bad); !errors.Is(err, errLinkUsed) {
			t.Errorf("redeem(%q) = %v, want errLinkUsed", bad, err)
		}
	}
}

// TestSessionSlides: a session lasts an hour after its last use, its
// expiry is pushed back at most once a minute, and it ends on request.
func TestSessionSlides(t *testing.T) {
	ctx := context.Background()
	c := &clock{t: time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)}
	store := newMemStore()
	s := NewSessions(SessionsConfig{Store: store, Now: c.now})
	cookie, _, err := s.open(ctx, "ten_A", "key_1")
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		wait      time.Duration
		refreshed bool
		live      bool
	}{
		{30 * time.Second, false, true},
		{50 * time.Minute, true, true}, // 50.5 min in: slid to 13:50:30
		{59 * time.Minute, true, true}, // 59 min after the slide
		{61 * time.Minute, false, false},
	}
	for i, st := range steps {
		c.advance(st.wait)
		ses, refreshed, err := s.load(ctx, cookie)
		if st.live != (err == nil) || refreshed != st.refreshed {
			t.Fatalf("step %d (+%v): load = %+v, refreshed %v, %v; want live %v, refreshed %v", i, st.wait, ses, refreshed, err, st.live, st.refreshed)
		}
		if err == nil && ses.KeyID != "key_1" {
			t.Errorf("step %d: KeyID = %q", i, ses.KeyID)
		}
	}
	cookie, _, _ = s.open(ctx, "ten_A", "")
	other, _, _ := s.open(ctx, "ten_B", "")
	if err := s.end(ctx, cookie); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.load(ctx, cookie); !errors.Is(err, errNoSession) {
		t.Errorf("after end: load = %v, want errNoSession", err)
	}
	if _, _, err := s.load(ctx, other); err != nil {
		t.Errorf("another tenant's session after end: %v", err)
	}
	// A cookie naming another tenant than its session's is refused.
	_, tok, _ := strings.Cut(other, ".")
	if _, _, err := s.load(ctx, "ten_A."+tok); !errors.Is(err, errNoSession) {
		t.Errorf("a session's token under another tenant: %v, want errNoSession", err)
	}
	for _, bad := range []string{"", "ten_A", "ten_A.x", "nope." + tok, "ten_A/../.x"} {
		if _, _, err := s.load(ctx, bad); !errors.Is(err, errNoSession) {
			t.Errorf("load(%q) = %v, want errNoSession", bad, err)
		}
	}
}

func TestSafeNext(t *testing.T) {
	for in, want := range map[string]string{
		"/portal/subscriptions/sub_1": "/portal/subscriptions/sub_1",
		"":                            "/portal/subscriptions",
		"https://evil.example/":       "/portal/subscriptions",
		"//evil.example/portal/":      "/portal/subscriptions",
		"/portal//evil":               "/portal/subscriptions",
		"/portal/login?token=x":       "/portal/subscriptions",
		"/api/subscriptions":          "/portal/subscriptions",
		"/portal/\\evil":              "/portal/subscriptions",
	} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestFormBody(t *testing.T) {
	f := subscriptionForm{URL: " https://x.example/h ", EventTypes: []string{"ticket.updated"}, Patterns: "board.*, ticket.updated *",
		Metadata: "team = ops\n\nenv=prod", RateLimit: "2.5", Ordering: "fifo", Active: true}
	body, problems := f.newSubscription()
	if len(problems) != 0 {
		t.Fatalf("problems = %v", problems)
	}
	if strings.Join(body.EventTypes, ",") != "ticket.updated,board.*,*" || body.RateLimit == nil || *body.RateLimit != 2.5 ||
		body.Active == nil || !*body.Active || body.Metadata["team"] != "ops" || body.Ordering != "fifo" {
		t.Errorf("body = %+v", body)
	}
	f = subscriptionForm{Metadata: "ok=1\nbroken", RateLimit: "fast"}
	_, problems = f.patch()
	if len(problems) != 2 || problems[0].Field != "metadata" || !strings.Contains(problems[0].Reason, "line 2") || problems[1].Field != "rateLimit" {
		t.Errorf("problems = %v", problems)
	}
	var g subscriptionForm
	g.setErrors([]fieldError{{Field: "eventTypes[1]", Reason: "is not a catalog type"}, {Field: "url", Reason: "must be https"}, {Field: "secret", Reason: "bad"}})
	if g.Errors["eventTypes"] != "eventTypes[1]: is not a catalog type" || g.Errors["url"] != "must be https" || !strings.Contains(g.Problem, "secret: bad") {
		t.Errorf("errors = %v, problem %q", g.Errors, g.Problem)
	}
}

// endingStore ends sessions between a session's read and the write that
// follows it, as a sign-out or an operator's revocation served by another
// replica at that moment would.
type endingStore struct {
	*memStore
	afterRead func()
}

func (e *endingStore) Session(ctx context.Context, tenant, id string) (Session, uint64, error) {
	ses, rev, err := e.memStore.Session(ctx, tenant, id)
	if f := e.afterRead; f != nil {
		e.afterRead = nil
		f()
	}
	return ses, rev, err
}

// TestRefreshAfterEnd: a refresh racing a sign-out or a revocation does
// not bring the session back; one racing another replica's refresh of the
// same session keeps it.
func TestRefreshAfterEnd(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		race func(s *Sessions, cookie string) error
		live bool
	}{
		{"sign-out", func(s *Sessions, cookie string) error { return s.end(ctx, cookie) }, false},
		{"revocation", func(s *Sessions, _ string) error { _, err := s.EndSessions(ctx, "ten_A"); return err }, false},
		{"another refresh", func(s *Sessions, cookie string) error { _, _, err := s.load(ctx, cookie); return err }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &clock{t: time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)}
			store := &endingStore{memStore: newMemStore()}
			s := NewSessions(SessionsConfig{Store: store, Now: c.now})
			cookie, _, err := s.open(ctx, "ten_A", "")
			if err != nil {
				t.Fatal(err)
			}
			c.advance(2 * time.Minute) // due for a refresh
			store.afterRead = func() {
				if err := tt.race(s, cookie); err != nil {
					t.Errorf("racing call: %v", err)
				}
			}
			wantErr := errNoSession
			if tt.live {
				wantErr = nil
			}
			ses, _, err := s.load(ctx, cookie)
			if !errors.Is(err, wantErr) {
				t.Errorf("load during the race = %v, want %v", err, wantErr)
			}
			if want := c.t.Add(time.Hour); tt.live && !ses.ExpiresAt.Equal(want) {
				t.Errorf("expiresAt = %v, want %v", ses.ExpiresAt, want)
			}
			if _, _, err := s.load(ctx, cookie); !errors.Is(err, wantErr) {
				t.Errorf("load after the race = %v, want %v", err, wantErr)
			}
			if n, want := len(store.sessions), map[bool]int{false: 0, true: 1}[tt.live]; n != want {
				t.Errorf("%d sessions stored after the race, want %d", n, want)
			}
		})
	}
}
