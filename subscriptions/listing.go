package subscriptions

import (
	"slices"
	"strings"
)

// KeyOwner returns the tenant of a live API key by its id ("key_..."), or
// false once the key is revoked or if it never existed.
func (x *Index) KeyOwner(keyID string) (string, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	k, ok := x.keys[keyID]
	if !ok {
		return "", false
	}
	return k.TenantID, true
}

// Keys returns tenant's live API keys, oldest first. The values hold only
// the stored hash, never a key.
func (x *Index) Keys(tenant string) []APIKey {
	x.mu.RLock()
	var out []APIKey
	for _, k := range x.keys {
		if k.TenantID == tenant {
			out = append(out, *k)
		}
	}
	x.mu.RUnlock()
	slices.SortFunc(out, func(a, b APIKey) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// Tenants returns up to limit tenants, newest first, whose ids sort
// before before (all of them when before is empty), and whether more
// follow.
func (x *Index) Tenants(before string, limit int) ([]Tenant, bool) {
	x.mu.RLock()
	all := make([]Tenant, 0, len(x.tenants))
	for id, t := range x.tenants {
		if before == "" || id < before {
			all = append(all, *t)
		}
	}
	x.mu.RUnlock()
	slices.SortFunc(all, func(a, b Tenant) int { return strings.Compare(b.ID, a.ID) })
	if len(all) > limit {
		return all[:limit], true
	}
	return all, false
}
