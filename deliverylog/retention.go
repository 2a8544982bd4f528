package deliverylog

import (
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// expire deletes the deliveries created before cutoff, with all their
// keys, and returns how many it deleted. It walks the creation-time keys
// from the previous cutoff to the new one, so its cost follows what
// expires, not what is retained.
func (ix *Index) expire(cutoff time.Time) (int, error) {
	to := cutoff.UnixNano()
	var from int64
	// Under the write lock, so that from now on apply drops records that
	// would create an expired delivery, and no key can appear behind the
	// walk.
	_ = ix.store.Update(func(*pebble.Batch) error {
		from = ix.cutoff.Load()
		if to > from {
			ix.cutoff.Store(to)
		}
		return nil
	})
	if to <= from {
		return 0, nil
	}
	return ix.store.ExpireRange(createdKeyPrefix(nil, from), createdKeyPrefix(nil, to), ix.expireDelivery)
}

// expireDelivery deletes the delivery a creation-time key names, with its
// status and event keys.
func (ix *Index) expireDelivery(b *pebble.Batch, ck, _ []byte) error {
	tenant, k, ok := parseCreatedKey(ck)
	if !ok {
		return nil
	}
	kb := primaryKey(ix.kb[:0], tenant, k)
	defer func() { ix.kb = kb[:0] }() // scratch: retention runs under the write lock
	val, closer, err := ix.db.Get(kb)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("retention: %w: %w", ErrUnavailable, err)
	}
	var d Delivery
	derr := decodeDeliveryValue(val, &d)
	closer.Close()
	_ = b.Delete(kb, nil)
	if derr != nil {
		return nil
	}
	code, _ := statusCode(d.Status)
	kb = statusKey(kb[:0], tenant, k, code)
	_ = b.Delete(kb, nil)
	kb = eventKey(kb[:0], tenant, d.EventID, k)
	_ = b.Delete(kb, nil)
	return nil
}
