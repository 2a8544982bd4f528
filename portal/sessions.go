package portal

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// ErrNotFound is what a Store answers for a link or session it does not
// hold (never stored, expired, consumed or deleted).
var ErrNotFound = errors.New("not found")

// ErrChanged is what a Store answers for a conditional write to a session
// that was written or deleted since the revision the writer read.
var ErrChanged = errors.New("changed since read")

// Link is a one-time sign-in link as stored: never its token, which only
// the link's URL carries.
type Link struct {
	Tenant    string    `json:"tenant"`
	ExpiresAt time.Time `json:"expiresAt"`
}

// Session is a signed-in portal session as stored: never its token, which
// only the browser's cookie carries.
type Session struct {
	Tenant string `json:"tenant"`
	// KeyID is the API key the session signed in with; empty for a
	// session opened by a link. Revoking the key ends the session.
	KeyID string `json:"keyId,omitempty"`
	// CSRF is the token every form and htmx request of the session carries.
	CSRF      string    `json:"csrf"`
	CreatedAt time.Time `json:"createdAt"`
	// RefreshedAt is when ExpiresAt was last pushed back.
	RefreshedAt time.Time `json:"refreshedAt"`
	ExpiresAt   time.Time `json:"expiresAt"`
}

// Store keeps links and sessions where every replica of the server sees
// them. Ids are hex SHA-256 digests of the secret tokens, so what is
// stored cannot be replayed as a link or a cookie. Implementations are
// safe for concurrent use and answer ErrNotFound (wrapped or not) for
// anything they do not hold; other errors mean the store is unreachable.
type Store interface {
	// PutLink keeps a link under id until it is taken or its lifetime
	// (at least until l.ExpiresAt) ends.
	PutLink(ctx context.Context, id string, l Link) error
	// TakeLink returns the link under id and removes it atomically: of
	// callers racing for one link, exactly one gets it.
	TakeLink(ctx context.Context, id string) (Link, error)
	// PutSession creates or replaces one of tenant's sessions and keeps
	// it for at least the session lifetime from now.
	PutSession(ctx context.Context, tenant, id string, s Session) error
	// Session reads one of tenant's sessions and the revision it is
	// stored at.
	Session(ctx context.Context, tenant, id string) (Session, uint64, error)
	// UpdateSession replaces one of tenant's sessions on condition that
	// it is still stored at revision rev, and keeps it for at least the
	// session lifetime from now. It answers ErrChanged (wrapped or not)
	// when the session was written or deleted since: a session that
	// ended stays ended.
	UpdateSession(ctx context.Context, tenant, id string, s Session, rev uint64) error
	// DeleteSession removes a session; removing a missing one is no error.
	DeleteSession(ctx context.Context, tenant, id string) error
	// DeleteSessions removes every session of tenant and says how many.
	DeleteSessions(ctx context.Context, tenant string) (int, error)
}

// Lifetimes of links and sessions.
const (
	DefaultLinkTTL    = 10 * time.Minute
	DefaultSessionTTL = time.Hour
	// refreshEvery bounds how often a session's expiry is pushed back,
	// so browsing writes to the store at most once a minute per session.
	refreshEvery = time.Minute
)

// SessionsConfig sets up Sessions; the zero value of each field but Store
// means its default.
type SessionsConfig struct {
	Store Store
	// LinkTTL is how long a sign-in link stays valid (default 10 min).
	LinkTTL time.Duration
	// SessionTTL is how long a session lasts after its last use
	// (default 1 h, sliding).
	SessionTTL time.Duration
	Now        func() time.Time
}

// Sessions mints one-time links and opens, checks, slides and ends portal
// sessions. It implements the operator API's api.Portal.
type Sessions struct {
	cfg SessionsConfig
}

// NewSessions returns Sessions over cfg.Store.
func NewSessions(cfg SessionsConfig) *Sessions {
	if cfg.Store == nil {
		panic("portal: SessionsConfig.Store is required")
	}
	if cfg.LinkTTL <= 0 {
		cfg.LinkTTL = DefaultLinkTTL
	}
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = DefaultSessionTTL
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Sessions{cfg: cfg}
}

// LoginPath is where a link signs in.
const LoginPath = "/portal/login"

// NewLink mints a one-time sign-in link for tenant. The caller has checked
// that the tenant exists.
func (s *Sessions) NewLink(ctx context.Context, tenant string) (string, time.Time, error) {
	token := newToken()
	expires := s.cfg.Now().Add(s.cfg.LinkTTL).UTC().Truncate(time.Second)
	if err := s.cfg.Store.PutLink(ctx, digest(token), Link{Tenant: tenant, ExpiresAt: expires}); err != nil {
		return "", time.Time{}, fmt.Errorf("store portal link: %w", err)
	}
	return LoginPath + "?token=" + url.QueryEscape(token), expires, nil
}

// EndSessions signs every session of tenant out.
func (s *Sessions) EndSessions(ctx context.Context, tenant string) (int, error) {
	n, err := s.cfg.Store.DeleteSessions(ctx, tenant)
	if err != nil {
		return n, fmt.Errorf("end portal sessions of %s: %w", tenant, err)
	}
	return n, nil
}

// errLinkUsed means a link is unknown, used or expired: the three look
// alike to whoever holds it.
var errLinkUsed = errors.New("this sign-in link is unknown, already used or expired")

// redeem consumes a link's token and opens a session for its tenant. It
// returns the cookie value and the session.
func (s *Sessions) redeem(ctx context.Context, token string) (string, Session, error) {
	if !validToken(token) {
		return "", Session{}, errLinkUsed
	}
	l, err := s.cfg.Store.TakeLink(ctx, digest(token))
	if errors.Is(err, ErrNotFound) {
		return "", Session{}, errLinkUsed
	}
	if err != nil {
		return "", Session{}, fmt.Errorf("take portal link: %w", err)
	}
	if !s.cfg.Now().Before(l.ExpiresAt) {
		return "", Session{}, errLinkUsed
	}
	return s.open(ctx, l.Tenant, "")
}

// open starts a session for tenant (signed in with keyID, if any).
func (s *Sessions) open(ctx context.Context, tenant, keyID string) (string, Session, error) {
	token := newToken()
	now := s.cfg.Now().UTC()
	ses := Session{Tenant: tenant, KeyID: keyID, CSRF: newToken(), CreatedAt: now, RefreshedAt: now, ExpiresAt: now.Add(s.cfg.SessionTTL)}
	if err := s.cfg.Store.PutSession(ctx, tenant, digest(token), ses); err != nil {
		return "", Session{}, fmt.Errorf("store portal session: %w", err)
	}
	return tenant + "." + token, ses, nil
}

// errNoSession means a cookie names no live session.
var errNoSession = errors.New("no live session")

// load returns the session a cookie names, pushing its expiry back when
// it was last pushed more than a minute ago; refreshed says whether it
// was, so the cookie can be renewed too. The push is written on the
// revision read, so one landing after a sign-out or a revocation fails
// instead of bringing the session back.
func (s *Sessions) load(ctx context.Context, cookie string) (ses Session, refreshed bool, err error) {
	tenant, id, ok := parseCookie(cookie)
	if !ok {
		return Session{}, false, errNoSession
	}
	ses, rev, err := s.read(ctx, tenant, id)
	if err != nil {
		return Session{}, false, err
	}
	now := s.cfg.Now().UTC()
	if now.Sub(ses.RefreshedAt) < refreshEvery {
		return ses, false, nil
	}
	pushed := ses
	pushed.RefreshedAt, pushed.ExpiresAt = now, now.Add(s.cfg.SessionTTL)
	err = s.cfg.Store.UpdateSession(ctx, tenant, id, pushed, rev)
	if errors.Is(err, ErrChanged) {
		// Ended since the read, or refreshed by another request: the
		// store says which.
		ses, _, err = s.read(ctx, tenant, id)
		return ses, false, err
	}
	if err != nil {
		return Session{}, false, fmt.Errorf("refresh portal session: %w", err)
	}
	return pushed, true, nil
}

// read returns a live session of tenant and its revision, or errNoSession.
func (s *Sessions) read(ctx context.Context, tenant, id string) (Session, uint64, error) {
	ses, rev, err := s.cfg.Store.Session(ctx, tenant, id)
	if errors.Is(err, ErrNotFound) {
		return Session{}, 0, errNoSession
	}
	if err != nil {
		return Session{}, 0, fmt.Errorf("read portal session: %w", err)
	}
	if ses.Tenant != tenant || !s.cfg.Now().Before(ses.ExpiresAt) {
		return Session{}, 0, errNoSession
	}
	return ses, rev, nil
}

// end removes the session a cookie names.
func (s *Sessions) end(ctx context.Context, cookie string) error {
	tenant, id, ok := parseCookie(cookie)
	if !ok {
		return nil
	}
	return s.cfg.Store.DeleteSession(ctx, tenant, id)
}

// tokenBytes is the entropy of links, session cookies and CSRF tokens.
const tokenBytes = 32

func newToken() string {
	b := make([]byte, tokenBytes)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func validToken(t string) bool {
	b, err := base64.RawURLEncoding.DecodeString(t)
	return err == nil && len(b) == tokenBytes
}

// digest is the stored id of a token.
func digest(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// parseCookie splits "<tenant>.<token>" into the tenant and the stored id.
func parseCookie(v string) (tenant, id string, ok bool) {
	tenant, token, ok := strings.Cut(v, ".")
	if !ok || !strings.HasPrefix(tenant, "ten_") || len(tenant) > 64 || !validToken(token) {
		return "", "", false
	}
	for _, c := range tenant {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return "", "", false
		}
	}
	return tenant, digest(token), true
}

// sameToken compares two CSRF tokens in constant time.
func sameToken(a, b string) bool {
	return a != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}
