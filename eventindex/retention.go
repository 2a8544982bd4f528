package eventindex

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// expireChunk is how many events one retention batch forgets.
const expireChunk = 1024

func (ix *Index) retentionLoop() {
	defer ix.wg.Done()
	t := time.NewTicker(ix.cfg.RetentionEvery)
	defer t.Stop()
	for {
		if _, err := ix.expire(); err != nil {
			ix.log.Error("event index: retention", "err", err)
		}
		select {
		case <-t.C:
		case <-ix.done:
			return
		}
	}
}

// expire forgets the events stored before now - Retention and returns how
// many; its cost follows what expires, not what is kept.
func (ix *Index) expire() (int, error) {
	upper := storedKey(nil, ix.cfg.Now().Add(-ix.cfg.Retention), 0)
	lower := []byte{kindStored}
	n := 0
	for {
		select {
		case <-ix.done:
			return n, nil
		default:
		}
		done, err := ix.expireChunk(lower, upper)
		n += done
		if err != nil || done < expireChunk {
			return n, err
		}
	}
}

func (ix *Index) expireChunk(lower, upper []byte) (int, error) {
	ix.writeMu.Lock()
	defer ix.writeMu.Unlock()
	it, err := ix.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return 0, fmt.Errorf("retention: %w: %w", ErrUnavailable, err)
	}
	b := ix.db.NewBatch()
	defer b.Close()
	n := 0
	var kb []byte
	for valid := it.First(); valid && n < expireChunk; valid = it.Next() {
		n++
		key := it.Key()
		_ = b.Delete(key, nil)
		if len(key) != 17 {
			continue
		}
		seq := binary.BigEndian.Uint64(key[9:])
		tenant, rest, ok := readString(it.Value())
		if !ok {
			continue
		}
		typ, rest, ok := readString(rest)
		if !ok {
			continue
		}
		id, rest, ok := readString(rest)
		if !ok || len(rest) != 8 {
			continue
		}
		occurred := time.Unix(0, int64(binary.BigEndian.Uint64(rest)^1<<63))
		_ = b.Delete(listKey(kb[:0], tenant, occurred, seq), nil)
		_ = b.Delete(typeKey(kb[:0], tenant, typ, occurred, seq), nil)
		// The id names a later event if it was used again: keep that one.
		if v, err := ix.get(idKey(kb[:0], tenant, id)); err == nil && len(v) >= 16 && binary.BigEndian.Uint64(v[8:16]) == seq {
			_ = b.Delete(idKey(kb[:0], tenant, id), nil)
		}
	}
	if err := it.Close(); err != nil {
		return 0, fmt.Errorf("retention: %w: %w", ErrUnavailable, err)
	}
	if n == 0 {
		return 0, nil
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		return 0, fmt.Errorf("retention: %w: %w", ErrUnavailable, err)
	}
	return n, nil
}
