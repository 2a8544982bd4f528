package deliverylog

import (
	"encoding/binary"

	"github.com/oklog/ulid/v2"

	"github.com/onestack/webhooks/internal/streamindex"
)

// The index's keys. Every key the reads use starts with its kind and then
// the tenant (length first, so that no tenant's keys are a prefix range of
// another's); ULIDs are in binary, which sorts as their text does.
//
//	primary   'd' tenant sub dlv                  → the delivery (appendDeliveryValue)
//	status    's' tenant sub status dlv           → nothing: a subscription's deliveries by status
//	event     'e' tenant len(event) event sub dlv → nothing: an event's deliveries
//	created   't' created tenant sub dlv          → nothing: retention's order (creation time first)
//
// Keys that start with 0x00 are the stream store's (streamindex).
const (
	kindPrimary = 'd'
	kindStatus  = 's'
	kindEvent   = 'e'
	kindCreated = 't'
)

func appendTenant(dst []byte, kind byte, tenant string) []byte {
	return streamindex.AppendString(append(dst, kind), tenant)
}

// subPrefix is the start of a subscription's primary or status keys.
func subKeyPrefix(dst []byte, kind byte, tenant string, sub ulid.ULID) []byte {
	dst = appendTenant(dst, kind, tenant)
	return append(dst, sub[:]...)
}

func primaryKey(dst []byte, tenant string, k deliveryKey) []byte {
	dst = subKeyPrefix(dst, kindPrimary, tenant, k.sub)
	return append(dst, k.dlv[:]...)
}

func statusKey(dst []byte, tenant string, k deliveryKey, status byte) []byte {
	dst = subKeyPrefix(dst, kindStatus, tenant, k.sub)
	dst = append(dst, status)
	return append(dst, k.dlv[:]...)
}

func eventKeyPrefix(dst []byte, tenant, event string) []byte {
	return streamindex.AppendString(appendTenant(dst, kindEvent, tenant), event)
}

func eventKey(dst []byte, tenant, event string, k deliveryKey) []byte {
	dst = eventKeyPrefix(dst, tenant, event)
	dst = append(dst, k.sub[:]...)
	return append(dst, k.dlv[:]...)
}

// createdKeyPrefix orders by creation time, in ns with the sign bit flipped
// so that times before 1970 sort first.
func createdKeyPrefix(dst []byte, createdNs int64) []byte {
	dst = append(dst, kindCreated)
	return binary.BigEndian.AppendUint64(dst, uint64(createdNs)^1<<63)
}

func createdKey(dst []byte, createdNs int64, tenant string, k deliveryKey) []byte {
	dst = streamindex.AppendString(createdKeyPrefix(dst, createdNs), tenant)
	dst = append(dst, k.sub[:]...)
	return append(dst, k.dlv[:]...)
}

// parseCreatedKey returns the tenant and delivery of a created key.
func parseCreatedKey(key []byte) (string, deliveryKey, bool) {
	if len(key) < 9 || key[0] != kindCreated {
		return "", deliveryKey{}, false
	}
	rest := key[9:]
	n, w := binary.Uvarint(rest)
	if w <= 0 || uint64(len(rest)-w) != n+32 {
		return "", deliveryKey{}, false
	}
	rest = rest[w:]
	var k deliveryKey
	tenant := string(rest[:n])
	copy(k.sub[:], rest[n:n+16])
	copy(k.dlv[:], rest[n+16:])
	return tenant, k, true
}

// tailKey reads the delivery from the last 32 bytes (sub, dlv) of an
// event key.
func tailKey(key []byte) (deliveryKey, bool) {
	var k deliveryKey
	if len(key) < 32 {
		return k, false
	}
	copy(k.sub[:], key[len(key)-32:])
	copy(k.dlv[:], key[len(key)-16:])
	return k, true
}
