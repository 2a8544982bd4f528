package subscriptions

import (
	"context"
	"errors"
	"hash/fnv"
	"slices"

	"github.com/onestack/webhooks/limits"
)

// A tenant's limits: its record holds the operator's overrides (zero: the
// default), its RateLimit is limits.RequestsPerMinute, and the store's
// Config.Limits are the defaults. The store enforces the limits on what it
// keeps (subscriptions, event types); the callers the others.

// limitsOf returns a tenant's effective limits under defaults d.
func limitsOf(t *Tenant, d limits.Limits) limits.Limits {
	l := t.Limits
	l.RequestsPerMinute = int64(t.RateLimit)
	return l.Over(d)
}

// DefaultLimits returns the limits of a tenant without overrides.
func (s *Store) DefaultLimits() limits.Limits { return s.cfg.Limits }

// LimitsOf returns t's effective limits: its overrides over the defaults.
func (s *Store) LimitsOf(t Tenant) limits.Limits { return limitsOf(&t, s.cfg.Limits) }

// Limits returns a tenant's effective limits, reading its record as
// LoadTenant does (the index, or the bucket when the index does not hold
// it yet).
func (s *Store) Limits(ctx context.Context, tenant string) (limits.Limits, error) {
	t, err := s.LoadTenant(ctx, tenant)
	if err != nil {
		return limits.Limits{}, err
	}
	return limitsOf(&t, s.cfg.Limits), nil
}

// IndexedLimits returns a tenant's effective limits from the index alone,
// with no I/O, for hot paths (the dispatcher's scheduling): the defaults
// for a tenant the index does not hold.
func (s *Store) IndexedLimits(tenant string) limits.Limits {
	if t, ok := s.idx.Tenant(tenant); ok {
		return limitsOf(t, s.cfg.Limits)
	}
	return s.cfg.Limits
}

// enforced returns a tenant's limits for a write of its subscriptions:
// the defaults for a tenant with no record (the store's own tests, tools).
func (s *Store) enforced(ctx context.Context, tenant string) (limits.Limits, error) {
	l, err := s.Limits(ctx, tenant)
	if errors.Is(err, ErrNotFound) {
		return s.cfg.Limits, nil
	}
	return l, err
}

// tenantLock serializes this replica's writes that a tenant's limits
// bound (creating a subscription, changing its event types), so that
// concurrent requests through one replica cannot pass a limit together.
// Writes through other replicas are seen once their watch delivers them,
// a few milliseconds later: across replicas a limit may be passed by
// what they create in that time.
func (s *Store) tenantLock(tenant string) func() {
	h := fnv.New32a()
	h.Write([]byte(tenant))
	mu := &s.limitMu[h.Sum32()%uint32(len(s.limitMu))]
	mu.Lock()
	return mu.Unlock
}

// Usage is what a tenant's subscriptions hold, as this replica's index
// counts them.
type Usage struct {
	// Subscriptions is how many the tenant has.
	Subscriptions int
	// EventTypes is how many distinct event types and patterns they name,
	// all together, each once.
	EventTypes int
}

// Usage counts what tenant's subscriptions hold.
func (x *Index) Usage(tenant string) Usage {
	x.mu.RLock()
	defer x.mu.RUnlock()
	ts := x.subs[tenant]
	if ts == nil {
		return Usage{}
	}
	return Usage{Subscriptions: len(ts.byID), EventTypes: len(ts.byPattern)}
}

// eventTypesWith counts the distinct patterns tenant's subscriptions name
// now, and would name with sub's patterns (sub "": a new subscription)
// being types.
func (x *Index) eventTypesWith(tenant, sub string, types []string) (now, after int) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	var kept map[string][]*Subscription
	if ts := x.subs[tenant]; ts != nil {
		kept = ts.byPattern
	}
	for _, subs := range kept {
		if len(subs) > 1 || subs[0].ID != sub {
			after++ // named by another subscription: stays
		}
	}
	for i, p := range types {
		if slices.Contains(types[:i], p) {
			continue
		}
		if subs := kept[p]; len(subs) == 0 || (len(subs) == 1 && subs[0].ID == sub) {
			after++
		}
	}
	return len(kept), after
}

// checkCreate refuses a new subscription of tenant, naming types, that
// would pass its subscriptions or event types limit.
func (s *Store) checkCreate(l limits.Limits, tenant string, types []string) error {
	u := s.idx.Usage(tenant)
	if err := limits.Check(limits.Subscriptions, l.Subscriptions, int64(u.Subscriptions), int64(u.Subscriptions)+1); err != nil {
		return err
	}
	now, after := s.idx.eventTypesWith(tenant, "", types)
	return limits.Check(limits.EventTypes, l.EventTypes, int64(now), int64(after))
}

// checkTypes refuses a change of sub's patterns to types that would pass
// tenant's event types limit.
func (s *Store) checkTypes(l limits.Limits, tenant, sub string, types []string) error {
	now, after := s.idx.eventTypesWith(tenant, sub, types)
	return limits.Check(limits.EventTypes, l.EventTypes, int64(now), int64(after))
}
