// Package subscriptions holds tenants, their API keys and their webhook
// subscriptions: the types, their validation, the JetStream KV stores that
// keep them, and a live in-memory index that every replica keeps so that
// matching an event never reads storage.
package subscriptions

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/onestack/webhooks/endpointauth"
	"github.com/onestack/webhooks/events"
	"github.com/onestack/webhooks/filter"
	"github.com/onestack/webhooks/problem"
	"github.com/onestack/webhooks/signature"
)

// Errors of the stores, each of a kind of the problem vocabulary.
var (
	// ErrNotFound means no such tenant, key or subscription
	// (problem.ErrNotFound).
	ErrNotFound = problem.NotFound("resource")
	// ErrConflict means the record changed since the revision the caller
	// expected: a failed If-Match (problem.ErrChanged).
	ErrConflict = problem.New(problem.ErrChanged, "revision conflict")
	// ErrUnavailable means the store (NATS) could not be reached
	// (problem.ErrUnavailable).
	ErrUnavailable = problem.New(problem.ErrUnavailable, "store unavailable")
)

// Subscription is one tenant endpoint and the event types it wants.
type Subscription struct {
	ID             string            `json:"id"`
	TenantID       string            `json:"-"`
	URL            string            `json:"url"`
	EventTypes     []string          `json:"eventTypes"`
	Description    string            `json:"description"`
	Metadata       map[string]string `json:"metadata"`
	Active         bool              `json:"active"`
	DisabledReason string            `json:"disabledReason,omitempty"`
	// Ordering is OrderingFIFO to deliver events one at a time in publish
	// order, each after the previous one succeeded or was given up.
	Ordering string `json:"ordering,omitempty"`
	// RateLimit paces deliveries to the endpoint, in deliveries per
	// second; zero means as fast as the endpoint answers.
	RateLimit float64   `json:"rateLimit,omitempty"`
	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt"`
	Filter    string    `json:"filter,omitempty"` // a CEL expression an event must satisfy, after its type matched; empty: none
	// SignatureScheme is signature.SchemeV1a for Ed25519 signatures; empty
	// means v1 (HMAC). Scheme reads it.
	SignatureScheme string `json:"signatureScheme,omitempty"`
	// NoTraceparent turns off the traceparent header of its webhooks
	// ("sendTraceparent": false); SendsTraceparent reads it.
	NoTraceparent bool `json:"noTraceparent,omitempty"`
	// Revision is the store revision the subscription was read at; it is
	// the ETag and the If-Match precondition.
	Revision uint64 `json:"-"`

	secrets []secretEntry
	// headers are sent with every delivery; write-only, like secrets.
	headers map[string]string
	// auth authenticates deliveries to the endpoint (nil: none); its
	// secrets are write-only, like the signing secrets.
	auth *endpointauth.Config
	// program is Filter compiled, set by the index (nil: none, or Filter
	// did not compile, which matches nothing).
	program *filter.Program
	// endpoint is URL parsed, set by the index (nil: not yet).
	endpoint *url.URL
}

// Endpoint returns URL parsed: once as the subscription enters the index,
// so a delivery parses nothing. The value is shared and must not be
// modified.
func (s *Subscription) Endpoint() (*url.URL, error) {
	if s.endpoint != nil {
		return s.endpoint, nil
	}
	u, err := url.Parse(s.URL)
	if err != nil {
		return nil, fmt.Errorf("subscription %s url: %w", s.ID, err)
	}
	return u, nil
}

// SendsTraceparent reports whether its webhooks carry a traceparent
// header (the default).
func (s *Subscription) SendsTraceparent() bool { return !s.NoTraceparent }

// Health is an endpoint's run of failures since its last success: failed
// attempts and given-up deliveries. It is kept apart from the
// subscription (see health.go), so delivery outcomes never change a
// subscription's ETag or updatedAt.
type Health struct {
	// GivenUp is how many deliveries in a row were given up.
	GivenUp int `json:"givenUp,omitempty"`
	// FailingSince is when the first of them was created.
	FailingSince time.Time `json:"failingSince,omitzero"`
	// Failures is how many attempts in a row failed, counted until the
	// endpoint is failing (see FailingPolicy); FirstFailure is when the
	// first of them was made.
	Failures     int       `json:"failures,omitempty"`
	FirstFailure time.Time `json:"firstFailure,omitzero"`
	// FailingAt is when the endpoint was found failing and
	// subscription.failing was raised (zero: not yet); FailingEvent is
	// that event's id, from which the recovery's is made.
	FailingAt    time.Time `json:"failingAt,omitzero"`
	FailingEvent string    `json:"failingEvent,omitempty"`
}

// Failing reports whether the endpoint is in a run of failures the
// tenant was told of (subscription.failing).
func (h Health) Failing() bool { return !h.FailingAt.IsZero() }

// secretEntry is one signing secret; Expires is zero for the current one.
type secretEntry struct {
	Secret  string    `json:"secret"`
	Expires time.Time `json:"expires,omitzero"`
	// key is Secret decoded, once, so signing a delivery decodes nothing;
	// zero until parseSecrets ran.
	key signature.Secret
}

// parseSecrets decodes every secret once, before the subscription is
// shared; one that does not decode never signs.
func parseSecrets(entries []secretEntry) {
	for i := range entries {
		if k, err := signature.ParseSecret(entries[i].Secret); err == nil {
			entries[i].key = k
		}
	}
}

// record is the stored form of a subscription: its public fields and its
// secrets, which the public JSON never shows.
type record struct {
	Subscription
	TenantID string        `json:"tenantId"`
	Secrets  []secretEntry `json:"secrets"`

	// Headers are the custom headers, write-only like the secrets.
	Headers map[string]string `json:"headers,omitempty"`
	// Auth is the endpoint authentication, secrets included.
	Auth *endpointauth.Config `json:"auth,omitempty"`
}

// Ordering values: none (the default, stored as "") or FIFO.
const (
	OrderingNone = "none"
	OrderingFIFO = "fifo"
)

// Ordered reports whether the subscription wants FIFO delivery.
func (s *Subscription) Ordered() bool { return s.Ordering == OrderingFIFO }

// NewSubscriptionID returns a fresh subscription id.
func NewSubscriptionID() string { return subscriptionIDPrefix + ulid.Make().String() }

// Secret returns the current signing secret in its "whsec_" form; "" with
// scheme v1a, whose private key never leaves the server (see PublicKey).
func (s *Subscription) Secret() string {
	if len(s.secrets) == 0 || !strings.HasPrefix(s.secrets[0].Secret, signature.SecretPrefix) {
		return ""
	}
	return s.secrets[0].Secret
}

// SigningSecrets returns the secrets that sign a delivery made at now: the
// current one first, then rotated ones still within their overlap.
func (s *Subscription) SigningSecrets(now time.Time) []signature.Secret {
	return s.AppendSigningSecrets(make([]signature.Secret, 0, len(s.secrets)), now)
}

// AppendSigningSecrets is SigningSecrets appending to out, a buffer the
// caller reuses from delivery to delivery.
func (s *Subscription) AppendSigningSecrets(out []signature.Secret, now time.Time) []signature.Secret {
	for _, e := range s.secrets {
		if !e.Expires.IsZero() && !now.Before(e.Expires) {
			continue
		}
		if e.key.IsZero() {
			// Not decoded yet (a subscription made outside the store).
			if k, err := signature.ParseSecret(e.Secret); err == nil {
				out = append(out, k)
			}
			continue
		}
		out = append(out, e.key)
	}
	return out
}

// Wants reports whether the subscription's patterns match event type t.
// A webhook.test event is sent only on request, so no pattern matches it.
func (s *Subscription) Wants(t string) bool {
	if t == events.TypeWebhookTest {
		return false
	}
	for _, p := range s.EventTypes {
		if events.Matches(p, t) {
			return true
		}
	}
	return false
}

// subKey is the subscription's key in the KV bucket: tenant first, so a
// tenant's subscriptions share a key prefix.
func subKey(tenant, id string) string { return tenant + "." + id }
