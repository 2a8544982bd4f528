package eventindex

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/onestack/webhooks/internal/streamindex"
)

// A tenant's stored bytes are kept by the hour the events were stored in
// (bytes keys), so that retention forgets an hour with one key and a
// tenant's total is the sum of at most Retention/1h keys, whatever the
// number of events. An hour is forgotten once all of it is past
// retention: until then the total counts its events that already expired
// too, at most one hour of the tenant's bytes more than the stream holds.

// storedSize is what an event counts toward its tenant's stored bytes: its
// subject, headers and body as stored (JetStream's own bookkeeping of
// about 30 bytes a message left out).
func storedSize(m *streamindex.Msg) int64 {
	n := len(m.Subject) + len(m.Data)
	for k, vs := range m.Header {
		for _, v := range vs {
			n += len(k) + len(v) + 4 // "k: v\r\n"
		}
	}
	return int64(n)
}

// bytesWrite is a bytes key's value as apply last wrote it, in the batch
// whose last stream sequence is seq.
type bytesWrite struct {
	total uint64
	seq   uint64
}

// addBytes adds deltas to the tenants' bytes keys in b, the batch whose
// last stream sequence is seq, with kb as scratch (returned). It runs
// under the store's write lock (in apply), so what it reads is every
// earlier batch's: the value it wrote itself last, kept in ix.written,
// while the batch that wrote it is committed (a batch that failed is
// applied again, and its value is not read), else the store's; the hour
// key is written with the first. Stored times follow stream order, so
// only the newest two hours are kept.
func (ix *Index) addBytes(b *pebble.Batch, kb []byte, deltas map[tenantHour]int64, seq uint64) ([]byte, error) {
	applied := ix.store.Applied()
	var newest uint64
	for th, d := range deltas {
		kb = bytesKey(kb[:0], th.tenant, th.hour)
		w, ok := ix.written[th]
		// Written in a committed batch, the hour key is there already.
		known := ok && w.seq <= applied
		if !known {
			v, found, err := ix.store.AppendValue(kb[len(kb):], kb)
			if err != nil {
				return kb, err
			}
			w.total = 0
			if found && len(v) == 8 {
				w.total = binary.BigEndian.Uint64(v)
			}
		}
		w.total += uint64(d)
		w.seq = seq
		ix.written[th] = w
		var v [8]byte
		binary.BigEndian.PutUint64(v[:], w.total)
		_ = b.Set(kb, v[:], nil)
		if !known {
			kb = hourKey(kb[:0], th.hour, th.tenant)
			_ = b.Set(kb, nil, nil)
		}
		newest = max(newest, th.hour)
	}
	for th := range ix.written {
		if th.hour+1 < newest {
			delete(ix.written, th)
		}
	}
	return kb, nil
}

// expireBytes forgets the tenants' bytes of the hours wholly before cutoff.
func (ix *Index) expireBytes(cutoff time.Time) (int, error) {
	return ix.store.ExpireRange([]byte{kindHour}, hourKey(nil, hourOf(cutoff), ""), func(b *pebble.Batch, key, _ []byte) error {
		if len(key) < 9 {
			return nil
		}
		tenant, _, ok := streamindex.ReadString(key[9:])
		if !ok {
			return nil
		}
		hour := binary.BigEndian.Uint64(key[1:9])
		_ = b.Delete(bytesKey(nil, tenant, hour), nil)
		delete(ix.written, tenantHour{tenant, hour}) // under the write lock, as apply
		return nil
	})
}

// storedBytesFresh is how long a tenant's stored bytes, once read, are
// answered from memory: every publish asks, and an iterator a request
// cost more than the check is worth.
const storedBytesFresh = time.Second

type storedReading struct {
	n  int64
	at time.Time
}

// StoredBytes returns the bytes of tenant's events in the stream, as far
// as the index has applied it (see the note on bytes keys above), read at
// most storedBytesFresh ago. A read goes through one key an hour of
// retention at most.
func (ix *Index) StoredBytes(ctx context.Context, tenant string) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("stored bytes: %w", err)
	}
	now := ix.now()
	if v, ok := ix.stored.Load(tenant); ok {
		if r := v.(storedReading); now.Sub(r.at) < storedBytesFresh && !now.Before(r.at) {
			return r.n, nil
		}
	}
	n, err := ix.readStoredBytes(tenant)
	if err != nil {
		return 0, err
	}
	ix.stored.Store(tenant, storedReading{n, now})
	return n, nil
}

func (ix *Index) readStoredBytes(tenant string) (int64, error) {
	release, err := ix.store.Reading()
	if err != nil {
		return 0, err
	}
	defer release()
	prefix := bytesPrefix(nil, tenant)
	it, err := ix.db.NewIter(&pebble.IterOptions{
		LowerBound: bytesKey(nil, tenant, hourOf(ix.now().Add(-ix.retention))),
		UpperBound: streamindex.PrefixEnd(prefix),
	})
	if err != nil {
		return 0, fmt.Errorf("stored bytes: %w: %w", ErrUnavailable, err)
	}
	defer it.Close()
	var n uint64
	for valid := it.First(); valid; valid = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			return 0, fmt.Errorf("stored bytes: %w: %w", ErrUnavailable, err)
		}
		if len(it.Key()) == len(prefix)+8 && len(v) == 8 {
			n += binary.BigEndian.Uint64(v)
		}
	}
	if err := it.Error(); err != nil {
		return 0, fmt.Errorf("stored bytes: %w: %w", ErrUnavailable, err)
	}
	return int64(n), nil
}
