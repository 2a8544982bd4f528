package deliverylog

import (
	"bytes"
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// Bounds on what one delivery keeps: the newest maxDetailedAttempts
// attempts in full, older ones without their error and response texts, and
// no more than maxAttempts in all (the oldest go first). Deliveries
// normally have at most 8.
const (
	maxDetailedAttempts = 20
	maxAttempts         = 100
)

// merge applies r, the next record of delivery d in stream order, and
// reports whether d changed. known tells whether d holds a delivery yet.
//
//   - A record for an unknown delivery creates it from the record.
//   - Attempts are merged by number, whatever order the stream holds them
//     in (a batch published again can be stored after the next attempt's
//     record): an attempt whose number is kept already is a repeat (a batch
//     stored twice, an attempt logged twice) and changes nothing; any other
//     is kept, in its place. Only the newest attempt sets the delivery's
//     status and next attempt time: an older one arriving late leaves them.
//   - A manual attempt is made once per request (the dispatcher checks),
//     so one whose number is taken by another attempt (a scheduled attempt
//     in flight when the retry was asked for) is numbered after the newest
//     and sets the status; only the same attempt again (same time and
//     answer) is a repeat.
//   - A record without an attempt sets the status and next attempt time,
//     but a skipped record never downgrades a delivery that has attempts,
//     and a request for an attempt (pending, with a time: a manual retry)
//     never overrides an attempt made at or after that time, which is the
//     one it asked for or a later one; a delivery's first record when it
//     is parked before any attempt (pending, no time) changes only a
//     delivery still pending without attempts.
func merge(d *Delivery, known bool, r *Record) bool {
	if !known {
		*d = Delivery{
			ID:             r.DeliveryID,
			TenantID:       r.TenantID,
			SubscriptionID: r.SubscriptionID,
			EventID:        r.EventID,
			EventType:      r.EventType,
			EventSeq:       r.EventSeq,
			Status:         r.Status,
			Attempts:       []Attempt{},
			NextAttemptAt:  r.NextAttemptAt,
			CreatedAt:      r.CreatedAt,
		}
		if r.Attempt != nil {
			d.Attempts = append(d.Attempts, *r.Attempt)
		}
		return true
	}
	if r.Attempt != nil {
		a := *r.Attempt
		i, taken := slices.BinarySearchFunc(d.Attempts, a.N, func(x Attempt, n int) int { return cmp.Compare(x.N, n) })
		if taken {
			if !r.Manual || slices.ContainsFunc(d.Attempts, a.sameAs) {
				return false
			}
			a.N, i = d.Attempts[len(d.Attempts)-1].N+1, len(d.Attempts)
		}
		newest := i == len(d.Attempts)
		d.Attempts = boundAttempts(slices.Insert(d.Attempts, i, a))
		if !newest {
			return true
		}
	} else {
		if r.Status == StatusSkipped && len(d.Attempts) > 0 {
			return false
		}
		// Waiting for its first attempt (logged as it was parked): news
		// only to a delivery that has had none and is still pending.
		if r.Status == StatusPending && r.NextAttemptAt == nil && !r.Manual && (len(d.Attempts) > 0 || d.Status != StatusPending) {
			return false
		}
		if r.Status == StatusPending && r.NextAttemptAt != nil && attemptedSince(d.Attempts, *r.NextAttemptAt) {
			return false
		}
		if d.Status == r.Status && equalTime(d.NextAttemptAt, r.NextAttemptAt) {
			return false
		}
	}
	d.Status = r.Status
	d.NextAttemptAt = r.NextAttemptAt
	return true
}

// sameAs reports whether b is a as logged (its number aside).
func (a Attempt) sameAs(b Attempt) bool {
	return a.At.Equal(b.At) && a.StatusCode == b.StatusCode && a.DurationMs == b.DurationMs
}

// attemptedSince reports whether one of as was made at or after t.
func attemptedSince(as []Attempt, t time.Time) bool {
	return slices.ContainsFunc(as, func(a Attempt) bool { return !a.At.Before(t) })
}

func boundAttempts(as []Attempt) []Attempt {
	if len(as) > maxAttempts {
		as = append(as[:0], as[len(as)-maxAttempts:]...)
	}
	if n := len(as) - maxDetailedAttempts; n > 0 {
		for i := range as[:n] {
			as[i].Error, as[i].ResponseBody = "", ""
		}
	}
	return as
}

func equalTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(*b)
}

// pending is one delivery changed by the records of one apply.
type pending struct {
	pk        string // primary key
	tenant    string
	key       deliveryKey
	d         Delivery
	known     bool // d holds the delivery
	stored    bool // it was in the store before this apply
	oldStatus byte // its status there
	changed   bool
}

// put merges recs, in order, into the deliveries they name and writes
// those that changed into b; the store commits b with the applied
// sequence. A record that would create a delivery already past retention
// is dropped. It runs under the store's write lock.
func (ix *Index) put(b *pebble.Batch, recs []Record) error {
	defer func() {
		clear(ix.dirty)
		clear(ix.slab[:min(len(recs), cap(ix.slab))]) // what they held was the batch's
	}()
	if err := ix.loadAll(recs); err != nil {
		return err
	}
	cutoff := ix.cutoff.Load()
	kb, vb := ix.kb[:0], ix.vb[:0]
	defer func() { ix.kb, ix.vb = kb[:0], vb[:0] }()
	for i := range recs {
		r := &recs[i]
		k, ok := parseDeliveryID(r.DeliveryID)
		if !ok {
			continue
		}
		if r.SubscriptionID == "" {
			r.SubscriptionID = k.subscriptionID()
		}
		kb = primaryKey(kb[:0], r.TenantID, k)
		p := ix.dirty[string(kb)]
		if !p.known && r.CreatedAt.UnixNano() < cutoff {
			continue
		}
		if merge(&p.d, p.known, r) {
			p.known, p.changed = true, true
		}
	}

	for _, p := range ix.dirty {
		if !p.changed {
			continue
		}
		vb = appendDeliveryValue(vb[:0], &p.d)
		// A batch's Set fails only once committed.
		kb = append(kb[:0], p.pk...)
		_ = b.Set(kb, vb, nil)
		code, _ := statusCode(p.d.Status)
		if p.stored && code != p.oldStatus {
			kb = statusKey(kb[:0], p.tenant, p.key, p.oldStatus)
			_ = b.Delete(kb, nil)
		}
		// The status key only points at the delivery: a page by status
		// reads one range and a lookup per delivery on it, and the store
		// writes (and compacts) each delivery once, not twice.
		if !p.stored || code != p.oldStatus {
			kb = statusKey(kb[:0], p.tenant, p.key, code)
			_ = b.Set(kb, nil, nil)
		}
		if !p.stored {
			kb = eventKey(kb[:0], p.tenant, p.d.EventID, p.key)
			_ = b.Set(kb, nil, nil)
			kb = createdKey(kb[:0], p.d.CreatedAt.UnixNano(), p.tenant, p.key)
			_ = b.Set(kb, nil, nil)
		}
	}
	return nil
}

// loadAll reads the deliveries recs name into ix.dirty: one iterator
// seeking the keys in order, which costs less than a lookup each.
func (ix *Index) loadAll(recs []Record) error {
	keys := ix.keys[:0]
	kb := ix.lkb[:0]
	defer func() { ix.lkb = kb[:0] }()
	// One pending a record at most, from a slab kept between batches.
	if cap(ix.slab) < len(recs) {
		ix.slab = make([]pending, len(recs))
	}
	slab := ix.slab[:len(recs)]
	for i := range recs {
		r := &recs[i]
		k, ok := parseDeliveryID(r.DeliveryID)
		if !ok {
			continue // decodeBatch writes only well-formed ids
		}
		kb = primaryKey(kb[:0], r.TenantID, k)
		if ix.dirty[string(kb)] != nil {
			continue
		}
		p := &slab[len(keys)]
		*p = pending{pk: string(kb), tenant: r.TenantID, key: k}
		ix.dirty[p.pk] = p
		keys = append(keys, p)
	}
	ix.keys = keys
	defer clear(keys)
	slices.SortFunc(keys, func(a, b *pending) int { return strings.Compare(a.pk, b.pk) })
	it, err := ix.db.NewIter(nil)
	if err != nil {
		return fmt.Errorf("read delivery index: %w: %w", ErrUnavailable, err)
	}
	defer it.Close()
	for _, p := range keys {
		kb = append(kb[:0], p.pk...)
		if !it.SeekPrefixGE(kb) || !bytes.Equal(it.Key(), kb) {
			continue
		}
		val, err := it.ValueAndErr()
		if err != nil {
			return fmt.Errorf("read delivery index: %w: %w", ErrUnavailable, err)
		}
		p.d = Delivery{ID: p.key.id(), TenantID: p.tenant, SubscriptionID: p.key.subscriptionID()}
		if err := decodeDeliveryValue(val, &p.d); err != nil {
			// A stored delivery the code cannot read is replaced by what
			// the records say next.
			ix.log.Error("delivery index: unreadable delivery replaced", "id", p.d.ID, "err", err)
			p.d = Delivery{}
			continue
		}
		p.known, p.stored = true, true
		p.oldStatus, _ = statusCode(p.d.Status)
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("read delivery index: %w: %w", ErrUnavailable, err)
	}
	return nil
}
