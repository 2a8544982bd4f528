package deliverylog

import (
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// expireChunk is how many deliveries one retention batch deletes.
const expireChunk = 1024

// retentionLoop deletes expired deliveries at open and every
// RetentionEvery.
func (ix *Index) retentionLoop() {
	defer ix.wg.Done()
	t := time.NewTicker(ix.cfg.RetentionEvery)
	defer t.Stop()
	for {
		if _, err := ix.expire(); err != nil {
			ix.log.Error("delivery index: retention", "err", err)
		}
		select {
		case <-t.C:
		case <-ix.done:
			return
		}
	}
}

// expire deletes the deliveries created before now - Retention, with all
// their keys, and returns how many it deleted. It walks the creation-time
// keys from the previous cutoff to the new one, so its cost follows what
// expires, not what is retained.
func (ix *Index) expire() (int, error) {
	cutoff := ix.cfg.Now().Add(-ix.cfg.Retention).UnixNano()
	ix.writeMu.Lock()
	from := ix.cutoff.Load()
	if cutoff > from {
		// From now on apply drops records that would create an expired
		// delivery, so no key can appear behind the walk.
		ix.cutoff.Store(cutoff)
	}
	ix.writeMu.Unlock()
	if cutoff <= from {
		return 0, nil
	}
	lower := createdKeyPrefix(nil, from)
	upper := createdKeyPrefix(nil, cutoff)
	deleted := 0
	keys := make([][]byte, 0, expireChunk)
	for {
		select {
		case <-ix.done:
			return deleted, nil
		default:
		}
		var err error
		keys, err = ix.scan(keys[:0], lower, upper)
		if err != nil {
			return deleted, err
		}
		if len(keys) == 0 {
			return deleted, nil
		}
		if err := ix.deleteExpired(keys); err != nil {
			return deleted, err
		}
		deleted += len(keys)
		lower = append(keys[len(keys)-1], 0) // the next key after the last
	}
}

// scan returns up to expireChunk keys in [lower, upper).
func (ix *Index) scan(keys [][]byte, lower, upper []byte) ([][]byte, error) {
	it, err := ix.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return keys, fmt.Errorf("retention: %w: %w", ErrUnavailable, err)
	}
	for valid := it.First(); valid && len(keys) < expireChunk; valid = it.Next() {
		keys = append(keys, append([]byte(nil), it.Key()...))
	}
	if err := it.Close(); err != nil {
		return keys, fmt.Errorf("retention: %w: %w", ErrUnavailable, err)
	}
	return keys, nil
}

// deleteExpired deletes the deliveries named by creation-time keys, with
// their status and event keys, in one batch.
func (ix *Index) deleteExpired(keys [][]byte) error {
	ix.writeMu.Lock()
	defer ix.writeMu.Unlock()
	b := ix.db.NewBatch()
	defer b.Close()
	var kb []byte
	for _, ck := range keys {
		_ = b.Delete(ck, nil)
		tenant, k, ok := parseCreatedKey(ck)
		if !ok {
			continue
		}
		kb = primaryKey(kb[:0], tenant, k)
		val, closer, err := ix.db.Get(kb)
		if errors.Is(err, pebble.ErrNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("retention: %w: %w", ErrUnavailable, err)
		}
		var d Delivery
		derr := decodeDeliveryValue(val, &d)
		closer.Close()
		_ = b.Delete(kb, nil)
		if derr != nil {
			continue
		}
		code, _ := statusCode(d.Status)
		_ = b.Delete(statusKey(kb[:0], tenant, k, code), nil)
		_ = b.Delete(eventKey(kb[:0], tenant, d.EventID, k), nil)
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		return fmt.Errorf("retention: %w: %w", ErrUnavailable, err)
	}
	return nil
}
