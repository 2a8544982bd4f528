package subscriptions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/onestack/webhooks/events"
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
		return nil
	}
	var h Health
	if err := json.Unmarshal(e.Value(), &h); err != nil {
		s.logger.Warn("endpoint health: undecodable record; taken as a run of failures", "key", e.Key(), "err", err)
	}
	s.failing[e.Key()] = h
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
	h, err := s.updateHealth(ctx, subKey(tenant, id), func(h *Health) bool {
		h.GivenUp++
		if h.FailingSince.IsZero() || created.Before(h.FailingSince) {
			h.FailingSince = created
		}
		return true
	})
	if err != nil {
		return false, err
	}
	if !p.disables(h, now) {
		return false, nil
	}
	disabled := false
	_, err = s.UpdateSubscription(ctx, tenant, id, nil, func(sub *Subscription) error {
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

// updateHealth changes an endpoint's health record by fn, which reports
// whether there is anything to write, and returns the record as it is
// after. One record per endpoint, updated by compare-and-set: this
// replica's updates of one endpoint take turns, so a dead endpoint's many
// failures do not race each other into retries, and fn sees every other
// replica's write before its own.
func (s *Store) updateHealth(ctx context.Context, key string, fn func(*Health) bool) (Health, error) {
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
				return Health{}, fmt.Errorf("decode endpoint health: %w", err)
			}
			rev = e.Revision()
		case errors.Is(err, jetstream.ErrKeyNotFound), errors.Is(err, jetstream.ErrKeyDeleted):
		default:
			return Health{}, storeErr("get endpoint health", err)
		}
		if !fn(&h) {
			break
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
			return Health{}, storeErr("record endpoint health", err)
		}
	}
	s.failingMu.Lock()
	s.failing[key] = h
	s.failingMu.Unlock()
	return h, nil
}

// FailingPolicy says when an endpoint is failing, which its tenant (and
// the operator) are told once per run of failures, and told again at the
// first success after it.
type FailingPolicy struct {
	// After is how many attempts in a row must fail (0: never).
	After int
}

// Change is what one attempt changed of an endpoint's health that its
// tenant is told of.
type Change int

// Changes of RecordAttempt.
const (
	Unchanged Change = iota
	// NowFailing: the attempt made the run FailingPolicy.After failed
	// attempts long (subscription.failing).
	NowFailing
	// Recovered: a success ended a run the tenant was told of
	// (subscription.recovered).
	Recovered
)

// next is h after an attempt made at now, failed or not, and what it
// changed. A success ends the run: the zero Health. A run already found
// failing is not counted further: it needs no write until it ends.
func (p FailingPolicy) next(h Health, failed bool, now time.Time) (Health, Change) {
	if !failed {
		if h.Failing() {
			return Health{}, Recovered
		}
		return Health{}, Unchanged
	}
	if p.After <= 0 || h.Failing() {
		return h, Unchanged
	}
	h.Failures++
	if h.FirstFailure.IsZero() {
		h.FirstFailure = now
	}
	if h.Failures >= p.After {
		h.FailingAt = now
		return h, NowFailing
	}
	return h, Unchanged
}

// RecordAttempt notes the outcome of an attempt made at now against its
// endpoint's health under p. It returns what changed, with the health it
// is about: NowFailing with the run now failing (its FailingEvent is the
// id of the subscription.failing to raise), from the one attempt of the
// cluster whose compare-and-set made the run p.After long; Recovered
// with the run that ended, from the one success whose compare-and-delete
// ended it. It does I/O only while a run is counted or when it ends: a
// success with no run, or a failure in a run already failing, reads this
// replica's copy of the bucket.
func (s *Store) RecordAttempt(ctx context.Context, tenant, id string, failed bool, now time.Time, p FailingPolicy) (Health, Change, error) {
	key := subKey(tenant, id)
	s.failingMu.RLock()
	known, inRun := s.failing[key]
	s.failingMu.RUnlock()
	if !failed {
		if !inRun {
			return Health{}, Unchanged, nil
		}
		return s.endRun(ctx, key)
	}
	if p.After <= 0 || known.Failing() {
		return Health{}, Unchanged, nil
	}
	change := Unchanged
	h, err := s.updateHealth(ctx, key, func(h *Health) bool {
		if h.Failing() { // found failing meanwhile: nothing to count or write
			change = Unchanged
			return false
		}
		*h, change = p.next(*h, true, now)
		if change == NowFailing {
			h.FailingEvent = events.NewID()
		}
		return true
	})
	if err != nil {
		return Health{}, Unchanged, err
	}
	return h, change, nil
}

// endRun removes an endpoint's run of failures after a success, by
// compare-and-delete, and returns it with Recovered if the tenant was
// told it was failing.
func (s *Store) endRun(ctx context.Context, key string) (Health, Change, error) {
	mu := &s.healthMu[fnv32(key)%uint32(len(s.healthMu))]
	mu.Lock()
	defer mu.Unlock()
	for {
		e, err := jsretry.LeaderGet(ctx, s.js, bucketHealth, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
			// Ended by another replica.
			s.failingMu.Lock()
			delete(s.failing, key)
			s.failingMu.Unlock()
			return Health{}, Unchanged, nil
		}
		if err != nil {
			return Health{}, Unchanged, storeErr("get endpoint health", err)
		}
		var h Health
		_ = json.Unmarshal(e.Value(), &h) // undecodable: ended all the same
		err = jsretry.Purge(ctx, s.health, key, jetstream.LastRevision(e.Revision()), jetstream.PurgeTTL(markerTTL))
		if isWrongRevision(err) {
			continue
		}
		if err != nil {
			return Health{}, Unchanged, storeErr("clear endpoint health", err)
		}
		s.failingMu.Lock()
		delete(s.failing, key)
		s.failingMu.Unlock()
		if h.Failing() {
			return h, Recovered, nil
		}
		return h, Unchanged, nil
	}
}

// EndpointHealth returns an endpoint's run of failures as this replica
// knows it, without I/O; ok is false when it has none.
func (s *Store) EndpointHealth(tenant, id string) (h Health, ok bool) {
	s.failingMu.RLock()
	defer s.failingMu.RUnlock()
	h, ok = s.failing[subKey(tenant, id)]
	return h, ok
}

// RecordSuccess ends a run of failures (also used when a subscription is
// re-enabled or deleted); it does I/O only when there is one.
func (s *Store) RecordSuccess(ctx context.Context, tenant, id string) error {
	key := subKey(tenant, id)
	s.failingMu.Lock()
	_, failing := s.failing[key]
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
