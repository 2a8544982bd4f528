package subscriptions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/onestack/webhooks/internal/jsretry"
)

// Read-through: the index is fed by KV watches, so a write made through
// another replica reaches it a few milliseconds later. Reads that must see
// such a write (authentication right after a key is made, a tenant's first
// request, a subscription read right after its creation or change) go to
// the bucket when the index misses, and put what they find in the index.

// Authenticate returns the tenant and key id of a presented API key. A
// well-formed key the index does not hold is looked up in its bucket, so a
// key made on another replica works on its first request; err is set only
// when the bucket cannot be read (the caller answers 503, not 401). An id
// the bucket did not hold is refused from memory for a few seconds after
// (until a key with it is put), so repeating an unknown key costs no read.
func (s *Store) Authenticate(ctx context.Context, presented string) (tenant, key string, ok bool, err error) {
	if tenant, key, ok = s.idx.Authenticate(presented); ok {
		return tenant, key, true, nil
	}
	id, wellFormed := keyID(presented)
	if !wellFormed || s.idx.hasKey(id) || s.idx.misses.known(id) {
		return "", "", false, nil // malformed, a wrong secret for a known id, or unknown just now
	}
	gen := s.idx.misses.begin()
	e, err := jsretry.LeaderGet(ctx, s.js, bucketKeys, id)
	if err != nil {
		if isAbsent(err) {
			s.idx.misses.add(id, gen)
			return "", "", false, nil
		}
		return "", "", false, storeErr("read api key", err)
	}
	var k APIKey
	if err := json.Unmarshal(e.Value(), &k); err != nil {
		return "", "", false, fmt.Errorf("decode api key: %w", err)
	}
	s.idx.putKey(&k, e.Revision(), false)
	tenant, key, ok = s.idx.Authenticate(presented)
	return tenant, key, ok, nil
}

// UnknownKeys reports the refusals of unknown key ids answered from
// memory, without a read, since the store opened, and the ids held now.
func (s *Store) UnknownKeys() (refusals uint64, held int) {
	return s.idx.misses.hits.Load(), s.idx.misses.len()
}

// LoadTenant returns a tenant from the index, or from its bucket when the
// index does not hold it yet.
func (s *Store) LoadTenant(ctx context.Context, id string) (Tenant, error) {
	if t, ok := s.idx.Tenant(id); ok {
		return *t, nil
	}
	if !ValidTenantID(id) {
		return Tenant{}, fmt.Errorf("tenant %q: %w", id, ErrNotFound)
	}
	e, err := jsretry.LeaderGet(ctx, s.js, bucketTenants, id)
	if err != nil {
		return Tenant{}, storeErr("read tenant "+id, err)
	}
	var t Tenant
	if err := json.Unmarshal(e.Value(), &t); err != nil {
		return Tenant{}, fmt.Errorf("decode tenant %s: %w", id, err)
	}
	t.Revision = e.Revision()
	s.idx.putTenant(&t, false)
	return t, nil
}

// CurrentSubscription reads one of tenant's subscriptions as stored now
// (LoadSubscription: its latest revision, whichever replica wrote it, one
// round trip), and falls back to the index (IndexedSubscription: possibly
// a little behind) only when the bucket cannot be read.
func (s *Store) CurrentSubscription(ctx context.Context, tenant, id string) (Subscription, error) {
	sub, err := s.LoadSubscription(ctx, tenant, id)
	if errors.Is(err, ErrUnavailable) {
		if cached, ok := s.idx.Subscription(tenant, id); ok {
			return *cached, nil
		}
	}
	return sub, err
}

func isAbsent(err error) bool {
	return errors.Is(storeErr("", err), ErrNotFound)
}
