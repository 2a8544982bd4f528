package deliverylog

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/oklog/ulid/v2"

	"github.com/onestack/webhooks/internal/streamindex"
	"github.com/onestack/webhooks/problem"
)

// Page sizes of [Index.List].
const (
	DefaultListLimit = 50
	MaxListLimit     = 1000
)

// Delivery returns tenant's delivery id, with every attempt it keeps. It
// returns an error wrapping ErrNotFound for an id that is unknown,
// malformed, expired, or another tenant's.
func (ix *Index) Delivery(ctx context.Context, tenant, id string) (Delivery, error) {
	k, ok := parseDeliveryID(id)
	if !ok || !validTenant(tenant) {
		return Delivery{}, fmt.Errorf("delivery %q: %w", id, ErrNotFound)
	}
	if err := ctx.Err(); err != nil {
		return Delivery{}, fmt.Errorf("delivery %s: %w", id, err)
	}
	release, err := ix.store.Reading()
	if err != nil {
		return Delivery{}, err
	}
	defer release()
	d, found, err := ix.get(tenant, k, primaryKey(make([]byte, 0, 64), tenant, k))
	if err != nil {
		return Delivery{}, err
	}
	if !found {
		return Delivery{}, fmt.Errorf("delivery %s: %w", id, ErrNotFound)
	}
	return d, nil
}

// Finished reports whether tenant's delivery id is logged finished:
// succeeded, or failed with nothing more to come. An id the index does not
// hold (or cannot be one) is not finished, without an error: it is the
// fan-out's probe for deliveries that are mostly not logged at all.
func (ix *Index) Finished(tenant, id string) (bool, error) {
	k, ok := parseDeliveryID(id)
	if !ok || !validTenant(tenant) {
		return false, nil
	}
	release, err := ix.store.Reading()
	if err != nil {
		return false, err
	}
	defer release()
	var kb [64]byte
	d, found, err := ix.get(tenant, k, primaryKey(kb[:0], tenant, k))
	if err != nil || !found {
		return false, err
	}
	return d.Status == StatusSucceeded || d.Status == StatusFailed, nil
}

// NewestCreated returns when the newest delivery the index holds was
// created, and false if it holds none: no delivery created after it is
// logged (as far as the index has read the stream).
func (ix *Index) NewestCreated() (time.Time, bool, error) {
	release, err := ix.store.Reading()
	if err != nil {
		return time.Time{}, false, err
	}
	defer release()
	it, err := ix.db.NewIter(&pebble.IterOptions{LowerBound: []byte{kindCreated}, UpperBound: []byte{kindCreated + 1}})
	if err != nil {
		return time.Time{}, false, fmt.Errorf("read delivery index: %w: %w", ErrUnavailable, err)
	}
	defer it.Close()
	if !it.Last() {
		if err := it.Error(); err != nil {
			return time.Time{}, false, fmt.Errorf("read delivery index: %w: %w", ErrUnavailable, err)
		}
		return time.Time{}, false, nil
	}
	key := it.Key()
	if len(key) < 9 {
		return time.Time{}, false, fmt.Errorf("read delivery index: malformed created key %x", key)
	}
	return time.Unix(0, int64(binary.BigEndian.Uint64(key[1:9])^1<<63)).UTC(), true, nil
}

// get reads one delivery by its primary key.
func (ix *Index) get(tenant string, k deliveryKey, key []byte) (Delivery, bool, error) {
	val, closer, err := ix.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return Delivery{}, false, nil
	}
	if err != nil {
		return Delivery{}, false, fmt.Errorf("read delivery index: %w: %w", ErrUnavailable, err)
	}
	defer closer.Close()
	return ix.decode(tenant, k, val)
}

func (ix *Index) decode(tenant string, k deliveryKey, val []byte) (Delivery, bool, error) {
	d := Delivery{ID: k.id(), TenantID: tenant, SubscriptionID: k.subscriptionID()}
	if err := decodeDeliveryValue(val, &d); err != nil {
		return Delivery{}, false, fmt.Errorf("read delivery %s: %w", d.ID, err)
	}
	return d, true, nil
}

// List returns a page of subscription sub's deliveries, newest first: those
// created before the delivery id before ("" for the newest), with the given
// status ("" for any), at most limit of them (limit <= 0 means
// DefaultListLimit; it is capped at MaxListLimit), and whether more follow.
// A page costs the page, whatever the subscription retains, with or
// without a status: it reads one key range. A malformed sub, status or before is an error wrapping
// ErrInvalid.
func (ix *Index) List(ctx context.Context, tenant, sub, status, before string, limit int) ([]Delivery, bool, error) {
	subID, ok := parseSubscriptionID(sub)
	if !ok {
		return nil, false, fmt.Errorf("list deliveries: subscription %q: %w", sub, ErrInvalid)
	}
	code, ok := statusCode(status)
	if !ok && status != "" {
		return nil, false, fmt.Errorf("list deliveries: status %q: %w", status, ErrInvalid)
	}
	var cursor ulid.ULID
	if before != "" {
		bk, ok := parseDeliveryID(before)
		if !ok {
			return nil, false, fmt.Errorf("list deliveries: cursor %q: %w: %w", before, ErrInvalid, problem.ErrInvalidCursor)
		}
		cursor = bk.dlv
	}
	if limit <= 0 {
		limit = DefaultListLimit
	}
	limit = min(limit, MaxListLimit)
	if !validTenant(tenant) {
		return []Delivery{}, false, nil
	}
	release, err := ix.store.Reading()
	if err != nil {
		return nil, false, err
	}
	defer release()

	kind := byte(kindPrimary)
	if status != "" {
		kind = kindStatus
	}
	lower := subKeyPrefix(nil, kind, tenant, subID)
	if status != "" {
		lower = append(lower, code)
	}
	upper := streamindex.PrefixEnd(lower)
	if before != "" {
		upper = append(append([]byte(nil), lower...), cursor[:]...)
	}
	it, err := ix.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return nil, false, fmt.Errorf("list deliveries: %w: %w", ErrUnavailable, err)
	}
	defer it.Close()

	out := make([]Delivery, 0, min(limit, 64))
	for valid := it.Last(); valid; valid = it.Prev() {
		if len(out) == limit {
			return out, true, nil
		}
		if err := ctx.Err(); err != nil {
			return nil, false, fmt.Errorf("list deliveries: %w", err)
		}
		key := it.Key()
		k := deliveryKey{sub: subID}
		copy(k.dlv[:], key[len(key)-16:])
		var val []byte
		if kind == kindPrimary {
			if val, err = it.ValueAndErr(); err != nil {
				return nil, false, fmt.Errorf("list deliveries: %w: %w", ErrUnavailable, err)
			}
		} else if val, err = ix.store.Get(primaryKey(nil, tenant, k)); err != nil {
			// A status key points at its delivery.
			return nil, false, err
		} else if val == nil {
			continue
		}
		d, found, err := ix.decode(tenant, k, val)
		if err != nil {
			return nil, false, err
		}
		if found {
			out = append(out, d)
		}
	}
	if err := it.Error(); err != nil {
		return nil, false, fmt.Errorf("list deliveries: %w: %w", ErrUnavailable, err)
	}
	return out, false, nil
}

// EventDeliveries returns every delivery that tenant's event eventID made
// and the index retains, ordered by subscription id, then delivery id.
func (ix *Index) EventDeliveries(ctx context.Context, tenant, eventID string) ([]Delivery, error) {
	if !validTenant(tenant) || len(eventID) > MaxIDLen {
		return []Delivery{}, nil
	}
	release, err := ix.store.Reading()
	if err != nil {
		return nil, err
	}
	defer release()
	lower := eventKeyPrefix(nil, tenant, eventID)
	it, err := ix.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: streamindex.PrefixEnd(lower)})
	if err != nil {
		return nil, fmt.Errorf("event deliveries: %w: %w", ErrUnavailable, err)
	}
	defer it.Close()
	out := []Delivery{}
	var pk []byte
	for valid := it.First(); valid; valid = it.Next() {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("event deliveries: %w", err)
		}
		key := it.Key()
		if len(key) != len(lower)+32 {
			continue
		}
		k, _ := tailKey(key)
		pk = primaryKey(pk[:0], tenant, k)
		d, found, err := ix.get(tenant, k, pk)
		if err != nil {
			return nil, err
		}
		if found {
			out = append(out, d)
		}
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("event deliveries: %w: %w", ErrUnavailable, err)
	}
	return out, nil
}

// MaxBacklogCount is where Pending stops counting: a backlog past it is
// reported as this many.
const MaxBacklogCount = 100_000

// Pending counts subscription sub's deliveries whose status is pending
// (not attempted yet, or waiting for their next attempt), up to
// MaxBacklogCount. It reads the subscription's pending status keys, no
// delivery. A malformed sub is an error wrapping ErrInvalid.
func (ix *Index) Pending(ctx context.Context, tenant, sub string) (int, error) {
	subID, ok := parseSubscriptionID(sub)
	if !ok {
		return 0, fmt.Errorf("count pending deliveries: subscription %q: %w", sub, ErrInvalid)
	}
	if !validTenant(tenant) {
		return 0, nil
	}
	release, err := ix.store.Reading()
	if err != nil {
		return 0, err
	}
	defer release()
	lower := append(subKeyPrefix(nil, kindStatus, tenant, subID), codePending)
	it, err := ix.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: streamindex.PrefixEnd(lower)})
	if err != nil {
		return 0, fmt.Errorf("count pending deliveries: %w: %w", ErrUnavailable, err)
	}
	defer it.Close()
	n := 0
	for valid := it.First(); valid && n < MaxBacklogCount; valid = it.Next() {
		if n%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return 0, fmt.Errorf("count pending deliveries: %w", err)
			}
		}
		n++
	}
	if err := it.Error(); err != nil {
		return 0, fmt.Errorf("count pending deliveries: %w: %w", ErrUnavailable, err)
	}
	return n, nil
}
