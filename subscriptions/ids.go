package subscriptions

import (
	"strings"

	"github.com/oklog/ulid/v2"
)

// Id prefixes: every id is its prefix and a ULID.
const (
	tenantIDPrefix       = "ten_"
	subscriptionIDPrefix = "sub_"
)

// ValidTenantID reports whether id has the form of a tenant id. An id of
// another form names nothing, so callers answer "not found" without
// touching storage.
func ValidTenantID(id string) bool { return prefixedULID(id, tenantIDPrefix) }

// ValidKeyID reports whether id has the form of an API key id.
func ValidKeyID(id string) bool { return prefixedULID(id, keyIDPrefix) }

// ValidSubscriptionID reports whether id has the form of a subscription id.
func ValidSubscriptionID(id string) bool { return prefixedULID(id, subscriptionIDPrefix) }

func prefixedULID(id, prefix string) bool {
	rest, ok := strings.CutPrefix(id, prefix)
	if !ok || len(rest) != ulidLen {
		return false
	}
	_, err := ulid.ParseStrict(rest)
	return err == nil
}
