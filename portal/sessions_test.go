package portal

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

// memStore is a Store in memory, for the tests of Sessions.
type memStore struct {
	mu       sync.Mutex
	links    map[string]Link
	sessions map[string]Session
}

func newMemStore() *memStore {
	return &memStore{links: map[string]Link{}, sessions: map[string]Session{}}
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
	m.sessions[tenant+"."+id] = s
	return nil
}

func (m *memStore) Session(_ context.Context, tenant, id string) (Session, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.sessions[tenant+"."+id]
	if !ok {
		return Session{}, ErrNotFound
	}
	return s, nil
}

func (m *memStore) DeleteSession(_ context.Context, tenant, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.sessions, tenant+"."+id)
	return nil
}

func (m *memStore) DeleteSessions(_ context.Context, tenant string) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for k := range m.sessions {
		if strings.HasPrefix(k, tenant+".") {
			delete(m.sessions, k)
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
	body, problems := f.body(true)
	if len(problems) != 0 {
		t.Fatalf("problems = %v", problems)
	}
	types := body["eventTypes"].([]string)
	if strings.Join(types, ",") != "ticket.updated,board.*,*" || body["rateLimit"] != 2.5 || body["active"] != true ||
		body["metadata"].(map[string]string)["team"] != "ops" || body["ordering"] != "fifo" {
		t.Errorf("body = %v", body)
	}
	f = subscriptionForm{Metadata: "ok=1\nbroken", RateLimit: "fast"}
	_, problems = f.body(false)
	if len(problems) != 2 || problems[0].Field != "metadata" || !strings.Contains(problems[0].Reason, "line 2") || problems[1].Field != "rateLimit" {
		t.Errorf("problems = %v", problems)
	}
	var g subscriptionForm
	g.setErrors([]fieldError{{"eventTypes[1]", "is not a catalog type"}, {"url", "must be https"}, {"secret", "bad"}})
	if g.Errors["eventTypes"] != "eventTypes[1]: is not a catalog type" || g.Errors["url"] != "must be https" || !strings.Contains(g.Problem, "secret: bad") {
		t.Errorf("errors = %v, problem %q", g.Errors, g.Problem)
	}
}
