package eventindex

import (
	"encoding/binary"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/onestack/webhooks/internal/streamindex"
)

// expire forgets the events stored before cutoff and returns how many,
// and the tenants' stored bytes of the hours wholly before it; its cost
// follows what expires, not what is kept.
func (ix *Index) expire(cutoff time.Time) (int, error) {
	n, err := ix.store.ExpireRange([]byte{kindStored}, storedKey(nil, cutoff, 0), ix.expireEvent)
	if err != nil {
		return n, err
	}
	if _, err := ix.expireBytes(cutoff); err != nil {
		return n, err
	}
	return n, nil
}

// expireEvent deletes the list, type and id keys of the event a stored key
// names; its value is tenant, type, id, occurred.
func (ix *Index) expireEvent(b *pebble.Batch, key, val []byte) error {
	if len(key) != 17 {
		return nil
	}
	seq := binary.BigEndian.Uint64(key[9:])
	tenant, rest, ok := streamindex.ReadString(val)
	if !ok {
		return nil
	}
	typ, rest, ok := streamindex.ReadString(rest)
	if !ok {
		return nil
	}
	id, rest, ok := streamindex.ReadString(rest)
	if !ok || len(rest) != 8 {
		return nil
	}
	occurred := time.Unix(0, int64(binary.BigEndian.Uint64(rest)^1<<63))
	var kb []byte
	_ = b.Delete(listKey(kb[:0], tenant, occurred, seq), nil)
	_ = b.Delete(typeKey(kb[:0], tenant, typ, occurred, seq), nil)
	// The id names a later event if it was used again: keep that one.
	if v, err := ix.store.Get(idKey(kb[:0], tenant, id)); err == nil && len(v) >= 16 && binary.BigEndian.Uint64(v[8:16]) == seq {
		_ = b.Delete(idKey(kb[:0], tenant, id), nil)
	}
	return nil
}
