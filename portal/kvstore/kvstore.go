// Package kvstore keeps the tenant portal's one-time links and sessions in
// JetStream KV buckets, so that every webhookd replica sees them: a link
// minted through one replica signs in through another, and a sign-out or
// revocation holds everywhere. The buckets' MaxAge is the storage lifetime:
// a link's bucket forgets it after the link TTL, a session's bucket after
// the session TTL since its last write (sliding sessions are rewritten).
package kvstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/onestack/webhooks/internal/jsretry"
	"github.com/onestack/webhooks/portal"
)

// Bucket names.
const (
	LinksBucket    = "portal_links"
	SessionsBucket = "portal_sessions"
)

// Config sets up the store; the zero value means the defaults.
type Config struct {
	// Replicas is the buckets' replication factor (default 1).
	Replicas int
	// LinkTTL and SessionTTL are the buckets' MaxAge (defaults: the
	// portal's 10 minutes and 1 hour).
	LinkTTL, SessionTTL time.Duration
	// BucketMaxBytes bounds each bucket (0: no bound); JetStream refuses a
	// write past it.
	BucketMaxBytes int64
}

// Store is a portal.Store on JetStream KV.
type Store struct {
	links, sessions jetstream.KeyValue
}

var _ portal.Store = (*Store)(nil)

// Open creates or updates the buckets.
func Open(ctx context.Context, js jetstream.JetStream, cfg Config) (*Store, error) {
	if cfg.Replicas <= 0 {
		cfg.Replicas = 1
	}
	if cfg.LinkTTL <= 0 {
		cfg.LinkTTL = portal.DefaultLinkTTL
	}
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = portal.DefaultSessionTTL
	}
	s := &Store{}
	for _, b := range []struct {
		name string
		ttl  time.Duration
		kv   *jetstream.KeyValue
	}{{LinksBucket, cfg.LinkTTL, &s.links}, {SessionsBucket, cfg.SessionTTL, &s.sessions}} {
		kv, err := jsretry.Provision(ctx, func(ctx context.Context) (jetstream.KeyValue, error) {
			return js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
				Bucket:   b.name,
				History:  1,
				TTL:      b.ttl,
				MaxBytes: cfg.BucketMaxBytes,
				Storage:  jetstream.FileStorage,
				Replicas: cfg.Replicas,
			})
		})
		if err != nil {
			return nil, fmt.Errorf("open bucket %s: %w", b.name, err)
		}
		*b.kv = kv
	}
	return s, nil
}

// PutLink stores a link.
func (s *Store) PutLink(ctx context.Context, id string, l portal.Link) error {
	b, _ := json.Marshal(l)
	if _, err := s.links.Create(ctx, id, b); err != nil {
		return fmt.Errorf("put link: %w", err)
	}
	return nil
}

// TakeLink reads a link and deletes it on condition that nobody wrote or
// deleted it since the read: of concurrent takers exactly one succeeds.
func (s *Store) TakeLink(ctx context.Context, id string) (portal.Link, error) {
	e, err := s.links.Get(ctx, id)
	if err != nil {
		return portal.Link{}, notFound("get link", err)
	}
	if err := s.links.Purge(ctx, id, jetstream.LastRevision(e.Revision())); err != nil {
		if wrongRevision(err) {
			return portal.Link{}, fmt.Errorf("take link: taken concurrently: %w", portal.ErrNotFound)
		}
		return portal.Link{}, fmt.Errorf("take link: %w", err)
	}
	var l portal.Link
	if err := json.Unmarshal(e.Value(), &l); err != nil {
		return portal.Link{}, fmt.Errorf("decode link: %w", err)
	}
	return l, nil
}

func sessionKey(tenant, id string) string { return tenant + "." + id }

// PutSession writes a session, restarting its time to live.
func (s *Store) PutSession(ctx context.Context, tenant, id string, ses portal.Session) error {
	b, _ := json.Marshal(ses)
	if _, err := s.sessions.Put(ctx, sessionKey(tenant, id), b); err != nil {
		return fmt.Errorf("put session: %w", err)
	}
	return nil
}

// UpdateSession writes a session on condition that its key's last
// revision is rev, restarting its time to live. A key purged since (a
// sign-out, a revocation) or written since has another last revision, so
// the write fails with portal.ErrChanged and stores nothing.
func (s *Store) UpdateSession(ctx context.Context, tenant, id string, ses portal.Session, rev uint64) error {
	b, _ := json.Marshal(ses)
	if _, err := s.sessions.Update(ctx, sessionKey(tenant, id), b, rev); err != nil {
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			return fmt.Errorf("update session: %w", portal.ErrChanged)
		}
		return fmt.Errorf("update session: %w", err)
	}
	return nil
}

// Session reads a session and its revision.
func (s *Store) Session(ctx context.Context, tenant, id string) (portal.Session, uint64, error) {
	e, err := s.sessions.Get(ctx, sessionKey(tenant, id))
	if err != nil {
		return portal.Session{}, 0, notFound("get session", err)
	}
	var ses portal.Session
	if err := json.Unmarshal(e.Value(), &ses); err != nil {
		return portal.Session{}, 0, fmt.Errorf("decode session: %w", err)
	}
	return ses, e.Revision(), nil
}

// DeleteSession removes a session.
func (s *Store) DeleteSession(ctx context.Context, tenant, id string) error {
	if err := s.sessions.Purge(ctx, sessionKey(tenant, id)); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("delete session: %w", err)
	}
	return nil
}

// DeleteSessions removes every session of tenant.
func (s *Store) DeleteSessions(ctx context.Context, tenant string) (int, error) {
	lister, err := s.sessions.ListKeysFiltered(ctx, tenant+".*")
	if err != nil {
		return 0, fmt.Errorf("list sessions: %w", err)
	}
	var keys []string
	for k := range lister.Keys() {
		keys = append(keys, k)
	}
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("list sessions: %w", err)
	}
	n := 0
	for _, k := range keys {
		if err := s.sessions.Purge(ctx, k); err != nil {
			return n, fmt.Errorf("delete session: %w", err)
		}
		n++
	}
	return n, nil
}

func notFound(op string, err error) error {
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return fmt.Errorf("%s: %w", op, portal.ErrNotFound)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// wrongRevision says whether err is a conditional write's failure.
func wrongRevision(err error) bool { return jsretry.RevisionMismatch(err) }
