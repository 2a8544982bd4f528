package eventindex

import (
	"encoding/binary"
	"time"
)

// The index's keys. Tenants and types are written length first, so that
// no tenant's keys are a prefix range of another's; times are nanoseconds
// with the sign bit flipped, big-endian, so they sort as times do.
//
//	list    'e' tenant occurred seq         → type, id: a tenant's events in time order
//	type    'y' tenant type occurred seq    → id: a tenant's events of one type
//	id      'i' tenant id                   → occurred, seq, type: an event by id (the latest with it)
//	stored  'x' stored seq                  → tenant, type, id, occurred: retention's order
//	applied 0x00 'a'                        → last applied stream sequence
//	stream  0x00 's'                        → creation time of the stream applied from
const (
	kindList   = 'e'
	kindType   = 'y'
	kindID     = 'i'
	kindStored = 'x'
)

var (
	keyApplied = []byte{0, 'a'}
	keyStream  = []byte{0, 's'}
)

// maxTypeLen bounds an indexed type (subjects are shorter in practice).
const maxTypeLen = 255

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// readString reads a string written by appendString.
func readString(b []byte) (string, []byte, bool) {
	n, w := binary.Uvarint(b)
	if w <= 0 || uint64(len(b)-w) < n {
		return "", nil, false
	}
	return string(b[w : w+int(n)]), b[w+int(n):], true
}

func timeBits(t time.Time) uint64 { return uint64(t.UnixNano()) ^ 1<<63 }

func listPrefix(dst []byte, tenant string) []byte {
	return appendString(append(dst, kindList), tenant)
}

func listKey(dst []byte, tenant string, occurred time.Time, seq uint64) []byte {
	dst = listPrefix(dst, tenant)
	dst = binary.BigEndian.AppendUint64(dst, timeBits(occurred))
	return binary.BigEndian.AppendUint64(dst, seq)
}

func typePrefix(dst []byte, tenant, typ string) []byte {
	return appendString(appendString(append(dst, kindType), tenant), typ)
}

func typeKey(dst []byte, tenant, typ string, occurred time.Time, seq uint64) []byte {
	dst = typePrefix(dst, tenant, typ)
	dst = binary.BigEndian.AppendUint64(dst, timeBits(occurred))
	return binary.BigEndian.AppendUint64(dst, seq)
}

func idKey(dst []byte, tenant, id string) []byte {
	return append(appendString(append(dst, kindID), tenant), id...)
}

func storedKey(dst []byte, stored time.Time, seq uint64) []byte {
	dst = append(dst, kindStored)
	dst = binary.BigEndian.AppendUint64(dst, timeBits(stored))
	return binary.BigEndian.AppendUint64(dst, seq)
}

// prefixEnd returns the smallest key greater than every key starting with p.
func prefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		end[i]++
		if end[i] != 0 {
			return end[:i+1]
		}
	}
	return nil
}
