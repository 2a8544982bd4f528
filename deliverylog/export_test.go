package deliverylog

import "github.com/cockroachdb/pebble/v2"

// Expire runs retention once and returns how many deliveries it deleted.
func (ix *Index) Expire() (int, error) { return ix.store.Expire() }

// KeyCounts counts the index's keys by kind: primary, status, event and
// creation-time keys.
func (ix *Index) KeyCounts() (primary, status, event, created int) {
	it, err := ix.db.NewIter(&pebble.IterOptions{})
	if err != nil {
		panic(err)
	}
	defer it.Close()
	for valid := it.First(); valid; valid = it.Next() {
		switch it.Key()[0] {
		case kindPrimary:
			primary++
		case kindStatus:
			status++
		case kindEvent:
			event++
		case kindCreated:
			created++
		}
	}
	return primary, status, event, created
}

// DecodeBatch decodes the records of one stream message of tenant.
func DecodeBatch(tenant string, data []byte) ([]Record, error) { return decodeBatch(tenant, data, nil) }
