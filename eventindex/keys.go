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
//
// Keys that start with 0x00 are the stream store's (streamindex).
const (
	kindList   = 'e'
	kindType   = 'y'
	kindID     = 'i'
	kindStored = 'x'
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

func idValue(dst []byte, occurred time.Time, seq uint64, typ string) []byte {
	dst = binary.BigEndian.AppendUint64(dst, timeBits(occurred))
	dst = binary.BigEndian.AppendUint64(dst, seq)
	return streamindex.AppendString(dst, typ)
}

func storedValue(dst []byte, tenant, typ, id string, occurred time.Time) []byte {
	dst = streamindex.AppendString(dst, tenant)
	dst = streamindex.AppendString(dst, typ)
	dst = streamindex.AppendString(dst, id)
	return binary.BigEndian.AppendUint64(dst, timeBits(occurred))
}
