package events

import (
	"slices"
	"strings"
)

// Type describes one event type of the catalog.
type Type struct {
	Type        string `json:"type"`
	Description string `json:"description"`
	// Internal types are emitted only by the platform itself: tenants may
	// subscribe to them but never publish them.
	Internal bool `json:"internal,omitempty"`
}

// Catalog is the list of event types tenants may subscribe to.
type Catalog []Type

// Types of the platform and of the webhook product itself.
const (
	TypeWebhookTest          = "webhook.test"
	TypeSubscriptionDisabled = "subscription.disabled"
	TypeDeliveryExhausted    = "delivery.exhausted"
	WildcardAll              = "*"
	familyWildcardSuffix     = ".*"
)

// DefaultCatalog is the platform's catalog.
func DefaultCatalog() Catalog {
	return Catalog{
		{"ticket.created", "A ticket was created.", false},
		{"ticket.updated", "A ticket's fields, status or assignee changed.", false},
		{"ticket.deleted", "A ticket was deleted.", false},
		{"service_catalog.item.created", "A service catalog item was created.", false},
		{"service_catalog.item.updated", "A service catalog item changed.", false},
		{"service_catalog.item.deleted", "A service catalog item was deleted.", false},
		{"board.updated", "A board's configuration changed.", false},
		{"account.created", "An account was added to the chart of accounts.", false},
		{"account.updated", "An account of the chart of accounts changed.", false},
		{TypeWebhookTest, "A test event sent on request to one endpoint.", true},
		{TypeSubscriptionDisabled, "One of the tenant's subscriptions was disabled.", true},
		{TypeDeliveryExhausted, "A delivery was given up after its last attempt.", true},
	}
}

// Has reports whether t is a type of the catalog.
func (c Catalog) Has(t string) bool {
	return slices.ContainsFunc(c, func(x Type) bool { return x.Type == t })
}

// Internal reports whether t is a type only the platform emits, which
// producers may not publish.
func (c Catalog) Internal(t string) bool {
	return slices.ContainsFunc(c, func(x Type) bool { return x.Type == t && x.Internal })
}

// ValidPattern reports whether p may appear in a subscription's eventTypes:
// a catalog type, a family wildcard such as "ticket.*" whose family has at
// least one catalog type, or "*".
func (c Catalog) ValidPattern(p string) bool {
	if p == WildcardAll || c.Has(p) {
		return true
	}
	fam, ok := strings.CutSuffix(p, familyWildcardSuffix)
	if !ok || fam == "" {
		return false
	}
	return slices.ContainsFunc(c, func(x Type) bool { return strings.HasPrefix(x.Type, fam+".") })
}

// Family returns the family of an event type: "ticket" for "ticket.updated"
// and "service_catalog" for "service_catalog.item.created".
func Family(t string) string {
	fam, _, _ := strings.Cut(t, ".")
	return fam
}

// FamilyPattern returns the family wildcard that matches t: "ticket.*".
func FamilyPattern(t string) string { return Family(t) + familyWildcardSuffix }

// Matches reports whether pattern (a type, a family wildcard or "*") matches
// event type t.
func Matches(pattern, t string) bool {
	switch {
	case pattern == WildcardAll:
		return true
	case strings.HasSuffix(pattern, familyWildcardSuffix):
		return strings.HasPrefix(t, strings.TrimSuffix(pattern, "*"))
	default:
		return pattern == t
	}
}
