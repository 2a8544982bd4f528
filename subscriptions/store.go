package subscriptions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/onestack/webhooks/internal/jsretry"
	"github.com/onestack/webhooks/internal/kvwatch"
	"github.com/onestack/webhooks/limits"
)

// KV bucket names.
const (
	bucketTenants = "tenants"
	bucketKeys    = "apikeys"
	bucketSubs    = "subscriptions"
	bucketHealth  = "health"
)

// markerTTL is how long the marker of a removed key stays in its bucket:
// long enough for every watch to see the removal, after which nothing of
// the key is left, so a bucket holds its live keys and not every key ever
// removed.
const markerTTL = time.Hour

// DefaultRotationOverlap is Config.RotationOverlap's default.
const DefaultRotationOverlap = 24 * time.Hour

// Config sets up the stores. The zero value means the defaults.
type Config struct {
	// Replicas is the replication factor of the KV buckets (default 1).
	Replicas int
	// BucketMaxBytes bounds each of the buckets (tenants, keys,
	// subscriptions, endpoint health; 0: no bound). JetStream refuses a
	// write past it, which is answered 503.
	BucketMaxBytes int64
	// RotationOverlap is how long a rotated-out secret keeps signing
	// (default 24 hours).
	RotationOverlap time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Watch is where the buckets' watches report that they are down.
	Watch kvwatch.Config
	// Limits are the limits of a tenant without overrides; each zero
	// field is limits.Defaults()'s.
	Limits limits.Limits
}

func (c Config) withDefaults() Config {
	if c.Replicas <= 0 {
		c.Replicas = 1
	}
	if c.RotationOverlap <= 0 {
		c.RotationOverlap = DefaultRotationOverlap
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	c.Limits = c.Limits.Over(limits.Defaults())
	return c
}

// Store keeps tenants, API keys and subscriptions in JetStream KV buckets
// and an Index of them up to date. Reads go to the index; writes go to KV
// and are applied to the local index at once, so a replica reads its own
// writes, while other replicas see them through their watches. Reads that
// must see another replica's latest write ask the bucket's stream leader
// (jsretry.LeaderGet), never a follower that may lag.
type Store struct {
	cfg                 Config
	js                  jetstream.JetStream
	tenants, keys, subs jetstream.KeyValue
	health              jetstream.KeyValue
	// failing holds the subscriptions with a run of failures in the
	// health bucket (fed by its watch), so a success costs no I/O unless it
	// ends one.
	failingMu sync.RWMutex
	failing   map[string]Health
	// healthMu serializes this replica's updates of one endpoint's health.
	healthMu [64]sync.Mutex
	// limitMu serializes this replica's writes a tenant's limits bound
	// (see tenantLock).
	limitMu [64]sync.Mutex
	idx     *Index
	logger  *slog.Logger
	fstats  filterCounters

	// watches apply the buckets to idx (and failing).
	watches []*kvwatch.Watch
}

// Open creates the buckets if needed, loads the index and keeps it live
// until Close.
func Open(ctx context.Context, js jetstream.JetStream, cfg Config, logger *slog.Logger) (*Store, error) {
	cfg = cfg.withDefaults()
	s := &Store{cfg: cfg, js: js, idx: newIndex(), logger: logger, failing: make(map[string]Health)}
	var err error
	for _, b := range []struct {
		name string
		kv   *jetstream.KeyValue
	}{{bucketTenants, &s.tenants}, {bucketKeys, &s.keys}, {bucketSubs, &s.subs}, {bucketHealth, &s.health}} {
		*b.kv, err = jsretry.Provision(ctx, func(ctx context.Context) (jetstream.KeyValue, error) {
			return js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
				Bucket:         b.name,
				History:        1,
				MaxBytes:       cfg.BucketMaxBytes,
				Storage:        jetstream.FileStorage,
				Replicas:       cfg.Replicas,
				LimitMarkerTTL: markerTTL,
			})
		})
		if err != nil {
			return nil, fmt.Errorf("open bucket %s: %w", b.name, err)
		}
	}
	for _, w := range []struct {
		kv    jetstream.KeyValue
		apply func(jetstream.KeyValueEntry) error
	}{{s.tenants, s.applyTenant}, {s.keys, s.applyKey}, {s.subs, s.applySub}, {s.health, s.applyHealth}} {
		watch, err := kvwatch.Start(ctx, w.kv, w.apply, cfg.Watch, logger)
		if err != nil {
			s.Close()
			return nil, err
		}
		s.watches = append(s.watches, watch)
	}
	// The buckets load side by side.
	for _, w := range s.watches {
		if err := w.Loaded(ctx); err != nil {
			s.Close()
			return nil, fmt.Errorf("load index: %w", err)
		}
	}
	return s, nil
}

// Close stops the watches.
func (s *Store) Close() {
	for _, w := range s.watches {
		w.Stop()
	}
}

// Buckets names the KV buckets the store uses.
func (s *Store) Buckets() []string {
	return []string{bucketTenants, bucketKeys, bucketSubs, bucketHealth}
}

// Index returns the live index.
func (s *Store) Index() *Index { return s.idx }

func isDelete(e jetstream.KeyValueEntry) bool {
	return e.Operation() == jetstream.KeyValueDelete || e.Operation() == jetstream.KeyValuePurge
}

func (s *Store) applyTenant(e jetstream.KeyValueEntry) error {
	if isDelete(e) {
		s.idx.deleteTenant(e.Key(), e.Revision(), true)
		return nil
	}
	var t Tenant
	if err := json.Unmarshal(e.Value(), &t); err != nil {
		return fmt.Errorf("decode tenant: %w", err)
	}
	t.Revision = e.Revision()
	s.idx.putTenant(&t, true)
	return nil
}

func (s *Store) applyKey(e jetstream.KeyValueEntry) error {
	if isDelete(e) {
		s.idx.deleteKey(e.Key(), e.Revision(), true)
		return nil
	}
	var k APIKey
	if err := json.Unmarshal(e.Value(), &k); err != nil {
		return fmt.Errorf("decode api key: %w", err)
	}
	s.idx.putKey(&k, e.Revision(), true)
	return nil
}

func (s *Store) applySub(e jetstream.KeyValueEntry) error {
	if isDelete(e) {
		tenant, id, _ := strings.Cut(e.Key(), ".")
		s.idx.deleteSub(tenant, id, e.Revision(), true)
		return nil
	}
	sub, err := decodeSub(e)
	if err != nil {
		return err
	}
	s.idx.putSub(sub, true)
	return nil
}

func decodeSub(e jetstream.KeyValueEntry) (*Subscription, error) {
	var r record
	if err := json.Unmarshal(e.Value(), &r); err != nil {
		return nil, fmt.Errorf("decode subscription: %w", err)
	}
	sub := r.Subscription
	sub.TenantID = r.TenantID
	sub.secrets = r.Secrets
	parseSecrets(sub.secrets)
	sub.headers = r.Headers
	sub.auth = prepareAuth(r.Auth)
	sub.Revision = e.Revision()
	return &sub, nil
}

func encodeSub(sub *Subscription) ([]byte, error) {
	b, err := json.Marshal(record{Subscription: *sub, TenantID: sub.TenantID, Secrets: sub.secrets, Headers: sub.headers, Auth: sub.auth})
	if err != nil {
		return nil, fmt.Errorf("encode subscription: %w", err)
	}
	return b, nil
}

// storeErr turns a KV error into the package's errors.
func storeErr(op string, err error) error {
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound), errors.Is(err, jetstream.ErrKeyDeleted), errors.Is(err, jetstream.ErrInvalidKey):
		// An invalid key names nothing: the input's fault, never an outage.
		return fmt.Errorf("%s: %w", op, ErrNotFound)
	case errors.Is(err, jetstream.ErrKeyExists):
		return fmt.Errorf("%s: %w", op, ErrConflict)
	case isWrongRevision(err):
		return fmt.Errorf("%s: %w", op, ErrConflict)
	default:
		return fmt.Errorf("%s: %w: %w", op, ErrUnavailable, err)
	}
}

func isWrongRevision(err error) bool { return jsretry.RevisionMismatch(err) }

// Tenants.

// CreateTenant stores a new tenant with its first API key.
func (s *Store) CreateTenant(ctx context.Context, in TenantInput) (Tenant, Key, APIKey, error) {
	now := s.cfg.Now().UTC()
	t := Tenant{ID: NewTenantID(), Name: in.Name, CreatedAt: now}
	if in.RateLimit != nil {
		t.RateLimit = *in.RateLimit
	}
	if in.Limits != nil {
		t.applyLimits(*in.Limits)
	}
	b, _ := json.Marshal(t)
	rev, err := jsretry.Create(ctx, s.tenants, t.ID, b)
	if err != nil {
		return Tenant{}, "", APIKey{}, storeErr("create tenant", err)
	}
	t.Revision = rev
	s.idx.putTenant(&t, false)
	key, k, err := s.CreateKey(ctx, t.ID)
	if err != nil {
		return Tenant{}, "", APIKey{}, err
	}
	return t, key, k, nil
}

// Tenant returns a tenant from the index.
func (s *Store) Tenant(id string) (Tenant, error) {
	t, ok := s.idx.Tenant(id)
	if !ok {
		return Tenant{}, fmt.Errorf("tenant %s: %w", id, ErrNotFound)
	}
	return *t, nil
}

// UpdateTenant applies a patch to a tenant.
func (s *Store) UpdateTenant(ctx context.Context, id string, p TenantPatch) (Tenant, error) {
	if !ValidTenantID(id) {
		return Tenant{}, fmt.Errorf("tenant %q: %w", id, ErrNotFound)
	}
	for {
		e, err := jsretry.LeaderGet(ctx, s.js, bucketTenants, id)
		if err != nil {
			return Tenant{}, storeErr("get tenant "+id, err)
		}
		var t Tenant
		if err := json.Unmarshal(e.Value(), &t); err != nil {
			return Tenant{}, fmt.Errorf("decode tenant %s: %w", id, err)
		}
		if p.Name != nil {
			t.Name = *p.Name
		}
		if p.RateLimit != nil {
			t.RateLimit = *p.RateLimit
		}
		if p.Limits != nil {
			t.applyLimits(*p.Limits)
		}
		b, _ := json.Marshal(t)
		rev, err := jsretry.Update(ctx, s.tenants, id, b, e.Revision())
		if err != nil {
			if isWrongRevision(err) {
				continue
			}
			return Tenant{}, storeErr("update tenant "+id, err)
		}
		t.Revision = rev
		s.idx.putTenant(&t, false)
		return t, nil
	}
}

// CreateKey issues a new API key for a tenant.
func (s *Store) CreateKey(ctx context.Context, tenant string) (Key, APIKey, error) {
	if _, err := s.LoadTenant(ctx, tenant); err != nil {
		return "", APIKey{}, err
	}
	key, k := newKey(tenant, s.cfg.Now())
	b, _ := json.Marshal(k)
	rev, err := jsretry.Create(ctx, s.keys, k.ID, b)
	if err != nil {
		return "", APIKey{}, storeErr("create api key", err)
	}
	s.idx.putKey(&k, rev, false)
	return key, k, nil
}

// RevokeKey deletes a tenant's key; it fails with 401 from then on, on
// this replica at once and on the others as soon as their watch delivers.
func (s *Store) RevokeKey(ctx context.Context, tenant, keyID string) error {
	if !ValidTenantID(tenant) || !ValidKeyID(keyID) {
		return fmt.Errorf("api key %q: %w", keyID, ErrNotFound)
	}
	e, err := jsretry.LeaderGet(ctx, s.js, bucketKeys, keyID)
	if err != nil {
		return storeErr("get api key "+keyID, err)
	}
	var k APIKey
	if err := json.Unmarshal(e.Value(), &k); err != nil || k.TenantID != tenant {
		return fmt.Errorf("api key %s: %w", keyID, ErrNotFound)
	}
	if err := jsretry.Purge(ctx, s.keys, keyID, jetstream.LastRevision(e.Revision()), jetstream.PurgeTTL(markerTTL)); err != nil {
		return storeErr("revoke api key "+keyID, err)
	}
	s.idx.deleteKey(keyID, e.Revision()+1, false)
	return nil
}

// Subscriptions.

// CreateSubscription stores a new subscription for tenant. The input must
// have passed Rules.Check. One that would pass the tenant's subscriptions
// or event types limit fails with a *limits.ExceededError.
func (s *Store) CreateSubscription(ctx context.Context, tenant string, in CreateInput) (Subscription, error) {
	lim, err := s.enforced(ctx, tenant)
	if err != nil {
		return Subscription{}, err
	}
	defer s.tenantLock(tenant)()
	if err := s.checkCreate(lim, tenant, in.EventTypes); err != nil {
		return Subscription{}, err
	}
	now := s.cfg.Now().UTC()
	sub := Subscription{
		ID: NewSubscriptionID(), TenantID: tenant, URL: in.URL, EventTypes: in.EventTypes,
		Description: in.Description, Metadata: in.Metadata, Active: true, CreatedAt: now, UpdatedAt: now,
	}
	if sub.Metadata == nil {
		sub.Metadata = map[string]string{}
	}
	if in.Active != nil {
		sub.Active = *in.Active
	}
	if in.RateLimit != nil {
		sub.RateLimit = *in.RateLimit
	}
	if in.Ordering != nil && *in.Ordering == OrderingFIFO {
		sub.Ordering = OrderingFIFO
	}
	in.applySettings(&sub)
	sub.SignatureScheme = normalScheme(in.SignatureScheme)
	if in.SendTraceparent != nil {
		sub.NoTraceparent = !*in.SendTraceparent
	}
	secret := newSigningKey(sub.Scheme())
	if in.Secret != nil {
		secret = *in.Secret
	}
	sub.secrets = []secretEntry{{Secret: secret}}
	b, err := encodeSub(&sub)
	if err != nil {
		return Subscription{}, err
	}
	rev, err := jsretry.Create(ctx, s.subs, subKey(tenant, sub.ID), b)
	if err != nil {
		return Subscription{}, storeErr("create subscription", err)
	}
	sub.Revision = rev
	parseSecrets(sub.secrets)
	s.idx.putSub(&sub, false)
	return sub, nil
}

// IndexedSubscription returns a copy of one of tenant's subscriptions as
// this replica's index holds it: no I/O, this replica's own writes in at
// once, another replica's a moment later (when the bucket's watch brings
// them). CurrentSubscription reads the stored revision instead.
func (s *Store) IndexedSubscription(tenant, id string) (Subscription, error) {
	sub, ok := s.idx.Subscription(tenant, id)
	if !ok {
		return Subscription{}, fmt.Errorf("subscription %s: %w", id, ErrNotFound)
	}
	return *sub, nil
}

// LoadSubscription reads one subscription from storage now, from the
// bucket's leader (one round trip): its latest revision, whichever replica
// wrote it, which it also puts in the index. It is for the rare case where
// the index may lag behind another replica's write; it fails with
// ErrUnavailable when the bucket cannot be read (CurrentSubscription then
// falls back to the index).
func (s *Store) LoadSubscription(ctx context.Context, tenant, id string) (Subscription, error) {
	if !ValidSubscriptionID(id) {
		return Subscription{}, fmt.Errorf("subscription %q: %w", id, ErrNotFound)
	}
	e, err := jsretry.LeaderGet(ctx, s.js, bucketSubs, subKey(tenant, id))
	if err != nil {
		return Subscription{}, storeErr("load subscription "+id, err)
	}
	sub, err := decodeSub(e)
	if err != nil {
		return Subscription{}, err
	}
	s.idx.putSub(sub, false)
	return *sub, nil
}

// UpdateSubscription changes a subscription with fn under optimistic
// concurrency. With a precondition (nil: none), the stored revision must
// satisfy it or the update fails with ErrConflict; it is checked against
// storage, never the index, which may lag another replica's write. A
// concurrent change between read and write is retried, and the retry
// checks the precondition again. A change of its event types that would
// pass the tenant's event types limit fails with a *limits.ExceededError.
func (s *Store) UpdateSubscription(ctx context.Context, tenant, id string, precondition func(revision uint64) bool, fn func(*Subscription) error) (Subscription, error) {
	if !ValidSubscriptionID(id) {
		return Subscription{}, fmt.Errorf("subscription %q: %w", id, ErrNotFound)
	}
	key := subKey(tenant, id)
	for {
		e, err := jsretry.LeaderGet(ctx, s.js, bucketSubs, key)
		if err != nil {
			return Subscription{}, storeErr("get subscription "+id, err)
		}
		if precondition != nil && !precondition(e.Revision()) {
			return Subscription{}, fmt.Errorf("update subscription %s: %w", id, ErrConflict)
		}
		sub, err := decodeSub(e)
		if err != nil {
			return Subscription{}, err
		}
		wasActive, types := sub.Active, sub.EventTypes
		if err := fn(sub); err != nil {
			return Subscription{}, err
		}
		if !keyMatchesScheme(sub) {
			// A switch of scheme: a fresh key of the new one, the old key
			// signing through the overlap.
			rekey(sub, newSigningKey(sub.Scheme()), s.cfg.Now().UTC(), s.cfg.RotationOverlap)
		}
		if err := s.storeUpdate(ctx, tenant, id, sub, e.Revision(), !slices.Equal(types, sub.EventTypes)); err != nil {
			if isWrongRevision(err) {
				continue
			}
			return Subscription{}, err
		}
		if !wasActive && sub.Active {
			// Re-enabled: its endpoint starts with a clean record.
			if err := s.RecordSuccess(ctx, tenant, id); err != nil {
				s.logger.Warn("clear endpoint health of a re-enabled subscription", "subscription", id, "err", err)
			}
		}
		return *sub, nil
	}
}

// storeUpdate writes sub, changed, over revision rev and applies it to the
// index. A change of its event types is first checked against the
// tenant's limit, under the tenant's lock. A wrong revision is returned
// as JetStream gave it, for the caller to read again.
func (s *Store) storeUpdate(ctx context.Context, tenant, id string, sub *Subscription, rev uint64, typesChanged bool) error {
	if typesChanged {
		lim, err := s.enforced(ctx, tenant)
		if err != nil {
			return err
		}
		defer s.tenantLock(tenant)()
		if err := s.checkTypes(lim, tenant, id, sub.EventTypes); err != nil {
			return err
		}
	}
	sub.UpdatedAt = s.cfg.Now().UTC()
	b, err := encodeSub(sub)
	if err != nil {
		return err
	}
	next, err := jsretry.Update(ctx, s.subs, subKey(tenant, id), b, rev)
	if err != nil {
		if isWrongRevision(err) {
			return err
		}
		return storeErr("update subscription "+id, err)
	}
	sub.Revision = next
	parseSecrets(sub.secrets) // the change may have rotated them
	s.idx.putSub(sub, false)
	return nil
}

// Apply applies a validated PatchInput; setting active to true clears the
// disabled reason.
func (p PatchInput) Apply(sub *Subscription) error {
	if p.URL != nil {
		sub.URL = *p.URL
	}
	if p.EventTypes != nil {
		sub.EventTypes = *p.EventTypes
	}
	if p.Description != nil {
		sub.Description = *p.Description
	}
	if p.Metadata != nil {
		sub.Metadata = *p.Metadata
		if sub.Metadata == nil {
			sub.Metadata = map[string]string{}
		}
	}
	if p.RateLimit != nil {
		sub.RateLimit = *p.RateLimit
	}
	if p.Ordering != nil {
		sub.Ordering = ""
		if *p.Ordering == OrderingFIFO {
			sub.Ordering = OrderingFIFO
		}
	}
	if p.Active != nil {
		sub.Active = *p.Active
		if sub.Active {
			sub.DisabledReason = ""
		}
	}
	p.applySettings(sub)
	if p.SignatureScheme != nil {
		sub.SignatureScheme = normalScheme(p.SignatureScheme)
	}
	if p.SendTraceparent != nil {
		sub.NoTraceparent = !*p.SendTraceparent
	}
	return nil
}

// RotateSecret makes a new current secret, or with scheme v1a a new key
// pair; the previous ones keep signing for the configured overlap. It
// returns what the owner may see of the new key: the secret, or the v1a
// public key.
func (s *Store) RotateSecret(ctx context.Context, tenant, id string) (string, error) {
	sub, err := s.UpdateSubscription(ctx, tenant, id, nil, func(sub *Subscription) error {
		rekey(sub, newSigningKey(sub.Scheme()), s.cfg.Now().UTC(), s.cfg.RotationOverlap)
		return nil
	})
	if err != nil {
		return "", err
	}
	return sub.Revealed(), nil
}

// DeleteSubscription removes a subscription. From its return on, this
// replica delivers nothing more to it.
func (s *Store) DeleteSubscription(ctx context.Context, tenant, id string) error {
	if !ValidSubscriptionID(id) {
		return fmt.Errorf("subscription %q: %w", id, ErrNotFound)
	}
	key := subKey(tenant, id)
	e, err := jsretry.LeaderGet(ctx, s.js, bucketSubs, key)
	if err != nil {
		return storeErr("get subscription "+id, err)
	}
	if err := jsretry.Purge(ctx, s.subs, key, jetstream.LastRevision(e.Revision()), jetstream.PurgeTTL(markerTTL)); err != nil {
		return storeErr("delete subscription "+id, err)
	}
	s.idx.deleteSub(tenant, id, e.Revision()+1, false)
	if err := s.RecordSuccess(ctx, tenant, id); err != nil {
		s.logger.Warn("clear endpoint health of a deleted subscription", "subscription", id, "err", err)
	}
	return nil
}
