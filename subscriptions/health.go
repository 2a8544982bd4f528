package subscriptions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/onestack/webhooks/internal/jsretry"
)

// Endpoint health lives in a bucket of its own, keyed like subscriptions,
// holding only endpoints in a run of failures: delivery outcomes never
// change a subscription's record, its ETag or updatedAt, and never rebuild
// the match index. Disabling an endpoint that keeps failing does change
// the subscription, as the tenant must see.

// HealthPolicy says when an endpoint that keeps failing is disabled.
type HealthPolicy struct {
	// GivenUp disables after this many deliveries given up in a row
	// (0: never by count).
	GivenUp int
	// Period disables once deliveries have failed, with none succeeding,
	// for this long (negative: never by time).
	Period time.Duration
}

// disables says whether an endpoint whose run of failures is h, after a
// delivery given up at now, is to be disabled: after p.GivenUp deliveries
// in a row, or once p.Period has passed since the first of them was
// created.
func (p HealthPolicy) disables(h Health, now time.Time) bool {
	byCount := p.GivenUp > 0 && h.GivenUp >= p.GivenUp
	byTime := p.Period > 0 && now.Sub(h.FailingSince) >= p.Period
	return byCount || byTime
}

func (s *Store) applyHealth(e jetstream.KeyValueEntry) error {
	s.failingMu.Lock()
	defer s.failingMu.Unlock()
	if isDelete(e) {
		delete(s.failing, e.Key())
	} else {
		s.failing[e.Key()] = true
	}
	return nil
}

// fnv32 is FNV-1a of s.
func fnv32(s string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= 16777619
	}
	return h
}

// Health returns an endpoint's current run of failures (zero when healthy).
func (s *Store) Health(ctx context.Context, tenant, id string) (Health, error) {
	e, err := jsretry.LeaderGet(ctx, s.js, bucketHealth, subKey(tenant, id))
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return Health{}, nil
	}
	if err != nil {
		return Health{}, storeErr("get endpoint health", err)
	}
	var h Health
	if err := json.Unmarshal(e.Value(), &h); err != nil {
		return Health{}, fmt.Errorf("decode endpoint health: %w", err)
	}
	return h, nil
}

// RecordGivenUp notes a delivery, created at created, given up at now; it
// disables the subscription when the policy says so and reports whether
// this call did.
func (s *Store) RecordGivenUp(ctx context.Context, tenant, id string, created, now time.Time, p HealthPolicy) (bool, error) {
	key := subKey(tenant, id)
	// One record per endpoint, updated by compare-and-set: this replica's
	// updates of one endpoint take turns, so a dead endpoint's many given-up
	// deliveries do not race each other into retries.
	mu := &s.healthMu[fnv32(key)%uint32(len(s.healthMu))]
	mu.Lock()
	defer mu.Unlock()
	var h Health
	for {
		h = Health{}
		e, err := jsretry.LeaderGet(ctx, s.js, bucketHealth, key)
		var rev uint64
		switch {
		case err == nil:
			if err := json.Unmarshal(e.Value(), &h); err != nil {
				return false, fmt.Errorf("decode endpoint health: %w", err)
			}
			rev = e.Revision()
		case errors.Is(err, jetstream.ErrKeyNotFound), errors.Is(err, jetstream.ErrKeyDeleted):
		default:
			return false, storeErr("get endpoint health", err)
		}
		h.GivenUp++
		if h.FailingSince.IsZero() || created.Before(h.FailingSince) {
			h.FailingSince = created
		}
		b, _ := json.Marshal(h)
		if rev == 0 {
			_, err = jsretry.Create(ctx, s.health, key, b)
		} else {
			_, err = jsretry.Update(ctx, s.health, key, b, rev)
		}
		if err == nil {
			break
		}
		if !errors.Is(err, jetstream.ErrKeyExists) && !isWrongRevision(err) {
			return false, storeErr("record endpoint health", err)
		}
	}
	s.failingMu.Lock()
	s.failing[key] = true
	s.failingMu.Unlock()
	if !p.disables(h, now) {
		return false, nil
	}
	disabled := false
	_, err := s.UpdateSubscription(ctx, tenant, id, nil, func(sub *Subscription) error {
		if sub.Active {
			sub.Active = false
			sub.DisabledReason = fmt.Sprintf("disabled after %d deliveries in a row were given up, failing since %s",
				h.GivenUp, h.FailingSince.UTC().Format(time.RFC3339))
			disabled = true
		}
		return nil
	})
	return disabled, err
}

// RecordSuccess ends a run of failures (also used when a subscription is
// re-enabled or deleted); it does I/O only when there is one.
func (s *Store) RecordSuccess(ctx context.Context, tenant, id string) error {
	key := subKey(tenant, id)
	s.failingMu.Lock()
	failing := s.failing[key]
	delete(s.failing, key)
	s.failingMu.Unlock()
	if !failing {
		return nil
	}
	if err := jsretry.Purge(ctx, s.health, key, jetstream.PurgeTTL(markerTTL)); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return storeErr("clear endpoint health", err)
	}
	return nil
}

// Disable deactivates a subscription and records why; it reports whether
// this call changed it (false if it was already disabled).
func (s *Store) Disable(ctx context.Context, tenant, id, reason string) (bool, error) {
	changed := false
	_, err := s.UpdateSubscription(ctx, tenant, id, nil, func(sub *Subscription) error {
		changed = sub.Active
		sub.Active = false
		sub.DisabledReason = reason
		return nil
	})
	return changed, err
}
