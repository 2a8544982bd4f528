package eventindex

import (
	"encoding/binary"
	"time"

	"github.com/onestack/webhooks/internal/streamindex"
)

// The index's keys. Tenants and types are written length first, so that
// no tenant's keys are a prefix range of another's; times are nanoseconds
// with the sign bit flipped, big-endian, so they sort as times do.
//
//	list    'e' tenant occurred seq         → type, id: a tenant's events in time order
//	type    'y' tenant type occurred seq    → id: a tenant's events of one type
//	id      'i' tenant id                   → occurred, seq, type: an event by id (the latest with it)
//	stored  'x' stored seq                  → tenant, type, id, occurred: retention's order
//	bytes   'b' tenant hour                 → bytes: a tenant's stored bytes by the hour they were stored in
//	hour    'h' hour tenant                 → nothing: the bytes keys in retention's order
//
// Keys that start with 0x00 are the stream store's (streamindex).
const (
	kindList   = 'e'
	kindType   = 'y'
	kindID     = 'i'
	kindStored = 'x'
	kindBytes  = 'b'
	kindHour   = 'h'
)

// maxTypeLen bounds an indexed type (subjects are shorter in practice).
const maxTypeLen = 255

func timeBits(t time.Time) uint64 { return uint64(t.UnixNano()) ^ 1<<63 }

func listPrefix(dst []byte, tenant string) []byte {
	return streamindex.AppendString(append(dst, kindList), tenant)
}

func listKey(dst []byte, tenant string, occurred time.Time, seq uint64) []byte {
	dst = listPrefix(dst, tenant)
	dst = binary.BigEndian.AppendUint64(dst, timeBits(occurred))
	return binary.BigEndian.AppendUint64(dst, seq)
}

func typePrefix(dst []byte, tenant, typ string) []byte {
	return streamindex.AppendString(streamindex.AppendString(append(dst, kindType), tenant), typ)
}

func typeKey(dst []byte, tenant, typ string, occurred time.Time, seq uint64) []byte {
	dst = typePrefix(dst, tenant, typ)
	dst = binary.BigEndian.AppendUint64(dst, timeBits(occurred))
	return binary.BigEndian.AppendUint64(dst, seq)
}

func idKey(dst []byte, tenant, id string) []byte {
	return append(streamindex.AppendString(append(dst, kindID), tenant), id...)
}

func storedKey(dst []byte, stored time.Time, seq uint64) []byte {
	dst = append(dst, kindStored)
	dst = binary.BigEndian.AppendUint64(dst, timeBits(stored))
	return binary.BigEndian.AppendUint64(dst, seq)
}

// The values of list, id and stored keys.

func listValue(dst []byte, typ, id string) []byte {
	return streamindex.AppendString(streamindex.AppendString(dst, typ), id)
}

// idValue is occurred, seq, type, stored. An index built before the
// duplicate window moved here holds no stored time (see idStored).
func idValue(dst []byte, occurred time.Time, seq uint64, typ string, stored time.Time) []byte {
	dst = binary.BigEndian.AppendUint64(dst, timeBits(occurred))
	dst = binary.BigEndian.AppendUint64(dst, seq)
	dst = streamindex.AppendString(dst, typ)
	return binary.BigEndian.AppendUint64(dst, timeBits(stored))
}

// idStored reads when the event an id value names was stored: the time
// written last, or when it occurred in a value without one.
func idStored(v []byte) (time.Time, bool) {
	if len(v) < 16 {
		return time.Time{}, false
	}
	_, rest, ok := streamindex.ReadString(v[16:])
	if !ok {
		return time.Time{}, false
	}
	if len(rest) == 8 {
		return fromBits(binary.BigEndian.Uint64(rest)), true
	}
	return fromBits(binary.BigEndian.Uint64(v)), true
}

func fromBits(b uint64) time.Time { return time.Unix(0, int64(b^1<<63)).UTC() }

// hourOf is the hour (since the Unix epoch) that t falls in.
func hourOf(t time.Time) uint64 { return uint64(t.Unix() / 3600) }

func bytesPrefix(dst []byte, tenant string) []byte {
	return streamindex.AppendString(append(dst, kindBytes), tenant)
}

func bytesKey(dst []byte, tenant string, hour uint64) []byte {
	return binary.BigEndian.AppendUint64(bytesPrefix(dst, tenant), hour)
}

func hourKey(dst []byte, hour uint64, tenant string) []byte {
	dst = binary.BigEndian.AppendUint64(append(dst, kindHour), hour)
	return streamindex.AppendString(dst, tenant)
}

func storedValue(dst []byte, tenant, typ, id string, occurred time.Time) []byte {
	dst = streamindex.AppendString(dst, tenant)
	dst = streamindex.AppendString(dst, typ)
	dst = streamindex.AppendString(dst, id)
	return binary.BigEndian.AppendUint64(dst, timeBits(occurred))
}
