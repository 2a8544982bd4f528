package events

import (
	"encoding/json"
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
	// Deprecated types are still published and delivered, but new
	// subscriptions may not name them.
	Deprecated bool `json:"deprecated,omitempty"`
	// Schema is the JSON Schema (2020-12) an event's data must satisfy;
	// nil means any JSON object. Example is a sample data object. Neither
	// is part of the catalog's listing.
	Schema  json.RawMessage `json:"-"`
	Example json.RawMessage `json:"-"`

	// compiled is Schema, compiled once per registry revision.
	compiled *Schema
}

// Catalog is the list of event types tenants may subscribe to. A Catalog
// value is never modified once handed out: a registry change makes a new
// one.
type Catalog []Type

// Source is a live catalog: each call returns the catalog as it is now.
// A Catalog is a Source that never changes; a Registry follows its bucket.
type Source interface {
	Catalog() Catalog
}

// Catalog returns c itself, so that a fixed catalog is a Source.
func (c Catalog) Catalog() Catalog { return c }

// Types of the platform and of the webhook product itself.
const (
	TypeWebhookTest          = "webhook.test"
	TypeSubscriptionDisabled = "subscription.disabled"
	TypeDeliveryExhausted    = "delivery.exhausted"
	// Operational events (see Operational).
	TypeSubscriptionFailing   = "subscription.failing"
	TypeSubscriptionRecovered = "subscription.recovered"
	TypeLimitNear             = "limit.near"
	TypeLimitExceeded         = "limit.exceeded"
	TypeJobFinished           = "job.finished"
	TypeCertificateExpiring   = "certificate.expiring"
	WildcardAll               = "*"
	familyWildcardSuffix      = ".*"
)

// DefaultCatalog is the platform's built-in catalog. A registry adds to it
// and may change a built-in type's description, schema or deprecation,
// never remove one.
func DefaultCatalog() Catalog {
	return Catalog{
		{Type: "ticket.created", Description: "A ticket was created."},
		{Type: "ticket.updated", Description: "A ticket's fields, status or assignee changed."},
		{Type: "ticket.deleted", Description: "A ticket was deleted."},
		{Type: "service_catalog.item.created", Description: "A service catalog item was created."},
		{Type: "service_catalog.item.updated", Description: "A service catalog item changed."},
		{Type: "service_catalog.item.deleted", Description: "A service catalog item was deleted."},
		{Type: "board.created", Description: "A board was created."},
		{Type: "board.updated", Description: "A board's configuration changed."},
		{Type: "board.deleted", Description: "A board was deleted."},
		{Type: "account.created", Description: "An account was added to the chart of accounts."},
		{Type: "account.updated", Description: "An account of the chart of accounts changed."},
		{Type: "account.deleted", Description: "An account was removed from the chart of accounts."},
		{Type: TypeWebhookTest, Description: "A test event sent on request to one endpoint.", Internal: true},
		{Type: TypeSubscriptionDisabled, Description: "One of the tenant's subscriptions was disabled (its endpoint answered 410 Gone, or its deliveries kept being given up).", Internal: true,
			Schema: schemaDisabled, Example: exampleDisabled},
		{Type: TypeDeliveryExhausted, Description: "A delivery was given up after its last attempt.", Internal: true,
			Schema: schemaExhausted, Example: exampleExhausted},
		{Type: TypeSubscriptionFailing, Description: "A subscription's endpoint failed several attempts in a row (--failing-after); sent once per run of failures.", Internal: true,
			Schema: schemaFailing, Example: exampleFailing},
		{Type: TypeSubscriptionRecovered, Description: "A subscription's endpoint that was failing answered an attempt with success.", Internal: true,
			Schema: schemaRecovered, Example: exampleRecovered},
		{Type: TypeLimitNear, Description: "The tenant reached 80 % of one of its limits; sent at most once an hour per limit.", Internal: true,
			Schema: schemaLimit, Example: exampleLimitNear},
		{Type: TypeLimitExceeded, Description: "A request of the tenant was refused at one of its limits (403 QUOTA_EXCEEDED or 429 RATE_LIMIT_EXCEEDED); sent at most once an hour per limit.", Internal: true,
			Schema: schemaLimit, Example: exampleLimitExceeded},
		{Type: TypeJobFinished, Description: "A replay or recovery job ended, done or failed.", Internal: true,
			Schema: schemaJob, Example: exampleJob},
		{Type: TypeCertificateExpiring, Description: "The client certificate of a subscription's mutual TLS is within --certificate-warning (14 days) of its expiry, or has expired; sent once for each, per subscription and certificate.", Internal: true,
			Schema: schemaCertificate, Example: exampleCertificate},
	}
}

// Operational reports whether t is one of the events the product emits
// about itself (an endpoint's health, limits, jobs): they go to the
// tenant's subscriptions and to the operator, and a delivery of one that
// is given up raises no further event.
func Operational(t string) bool {
	switch t {
	case TypeSubscriptionDisabled, TypeDeliveryExhausted, TypeSubscriptionFailing,
		TypeSubscriptionRecovered, TypeLimitNear, TypeLimitExceeded, TypeJobFinished, TypeCertificateExpiring:
		return true
	}
	return false
}

// Lookup returns type t of the catalog.
func (c Catalog) Lookup(t string) (Type, bool) {
	i := c.index(t)
	if i < 0 {
		return Type{}, false
	}
	return c[i], true
}

// index is the place of type t in c, or -1. It reads the types where
// they are: a func(Type) of slices.IndexFunc would copy each one.
func (c Catalog) index(t string) int {
	for i := range c {
		if c[i].Type == t {
			return i
		}
	}
	return -1
}

// Has reports whether t is a type of the catalog.
func (c Catalog) Has(t string) bool { return c.index(t) >= 0 }

// Deprecated reports whether t is a deprecated type, which new
// subscriptions may not name.
func (c Catalog) Deprecated(t string) bool {
	i := c.index(t)
	return i >= 0 && c[i].Deprecated
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
