package client

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"time"
)

// EventType is one entry of the catalog.
type EventType struct {
	Type        string `json:"type"`
	Description string `json:"description"`
	// Internal types are emitted by the platform only; Deprecated ones may
	// not be named by new subscriptions.
	Internal   bool `json:"internal,omitempty"`
	Deprecated bool `json:"deprecated,omitempty"`
}

// Subscription is a webhook subscription.
type Subscription struct {
	ID             string            `json:"id"`
	URL            string            `json:"url"`
	EventTypes     []string          `json:"eventTypes"`
	Description    string            `json:"description"`
	Metadata       map[string]string `json:"metadata"`
	Active         bool              `json:"active"`
	DisabledReason *string           `json:"disabledReason"`
	RateLimit      *float64          `json:"rateLimit"`
	Ordering       string            `json:"ordering"`
	CreatedAt      time.Time         `json:"createdAt"`
	UpdatedAt      time.Time         `json:"updatedAt"`
	// Secret is set only by CreateSubscription, with scheme v1;
	// PublicKey ("whpk_...") in its place with v1a.
	Secret    string `json:"secret,omitempty"`
	PublicKey string `json:"publicKey,omitempty"`
	// SignatureScheme is "v1" (HMAC) or "v1a" (Ed25519).
	SignatureScheme string `json:"signatureScheme"`

	// Filter is the payload filter (nil: none); HeaderNames the custom
	// headers sent with every delivery (their values are write-only).
	Filter      *string  `json:"filter"`
	HeaderNames []string `json:"headerNames"`
	// Auth is how each attempt authenticates to the endpoint, without its
	// secrets (nil: none).
	Auth *AuthView `json:"auth,omitempty"`
	// SendTraceparent tells whether deliveries carry a W3C traceparent
	// header (nil: the server did not say; it defaults to true).
	SendTraceparent *bool `json:"sendTraceparent,omitempty"`
	// Backlog is how many of its deliveries are pending (nil: not known).
	Backlog *int `json:"backlog,omitempty"`
	// FailingSince is when its deliveries started failing without a
	// success since (nil: not failing).
	FailingSince *time.Time `json:"failingSince,omitempty"`
}

// NewSubscription is the body of CreateSubscription.
type NewSubscription struct {
	URL         string            `json:"url"`
	EventTypes  []string          `json:"eventTypes"`
	Description string            `json:"description,omitempty"`
	Metadata    map[string]string `json:"metadata,omitempty"`
	Secret      string            `json:"secret,omitempty"`
	Active      *bool             `json:"active,omitempty"`
	RateLimit   *float64          `json:"rateLimit,omitempty"`
	Ordering    string            `json:"ordering,omitempty"`
	// Filter is a CEL expression over type, data and occurredAt.
	Filter string `json:"filter,omitempty"`
	// Headers are sent with every delivery.
	Headers map[string]string `json:"headers,omitempty"`
	// SignatureScheme is "v1" (HMAC, the default) or "v1a" (Ed25519).
	SignatureScheme string `json:"signatureScheme,omitempty"`
	// Auth authenticates each attempt to the endpoint (nil: none).
	Auth *Auth `json:"auth,omitempty"`
	// SendTraceparent false stops the traceparent header (nil: sent).
	SendTraceparent *bool `json:"sendTraceparent,omitempty"`
}

// Event is one event to publish; ID is optional (the same ID published
// again is delivered once).
type Event struct {
	Type string          `json:"type"`
	Data json.RawMessage `json:"data"`
	ID   string          `json:"id,omitempty"`
}

// EventTypes lists the catalog; it revalidates with the cached ETag, so an
// unchanged catalog costs no budget.
func (c *Client) EventTypes(ctx context.Context) ([]EventType, error) {
	var out struct {
		Data []EventType `json:"data"`
	}
	err := c.do(ctx, http.MethodGet, "/api/event-types", nil, &out)
	return out.Data, err
}

// CreateSubscription registers an endpoint; the answer holds its secret.
func (c *Client) CreateSubscription(ctx context.Context, s NewSubscription) (Subscription, error) {
	var out Subscription
	err := c.do(ctx, http.MethodPost, "/api/subscriptions", s, &out)
	return out, err
}

// CreateSubscriptionOnce is CreateSubscription with an Idempotency-Key:
// the server answers a repeat of the same key and body (for 24 h) with
// the first answer, so a double submit creates one subscription, and the
// call is sent again after a failure the server may have half done.
func (c *Client) CreateSubscriptionOnce(ctx context.Context, idempotencyKey string, s NewSubscription) (Subscription, error) {
	var out Subscription
	err := c.exchange(ctx, http.MethodPost, "/api/subscriptions", s, &out,
		extras{idempotent: true, header: http.Header{"Idempotency-Key": {idempotencyKey}}})
	return out, err
}

// Subscription reads one subscription, revalidating a cached copy.
func (c *Client) Subscription(ctx context.Context, id string) (Subscription, error) {
	var out Subscription
	err := c.do(ctx, http.MethodGet, "/api/subscriptions/"+url.PathEscape(id), nil, &out)
	return out, err
}

// SubscriptionWithETag is Subscription with the ETag of the version read,
// for UpdateSubscriptionIfMatch.
func (c *Client) SubscriptionWithETag(ctx context.Context, id string) (Subscription, string, error) {
	var out Subscription
	var etag string
	err := c.exchange(ctx, http.MethodGet, "/api/subscriptions/"+url.PathEscape(id), nil, &out,
		extras{idempotent: true, etag: &etag})
	return out, etag, err
}

// Subscriptions reads one page; pass the returned cursor for the next
// ("" when there is none).
func (c *Client) Subscriptions(ctx context.Context, limit int, cursor string) ([]Subscription, string, error) {
	return readPage[Subscription](ctx, c, "/api/subscriptions", url.Values{}, limit, cursor)
}

// SubscriptionsByID reads up to 100 subscriptions in one counted request;
// ids that do not exist for this tenant come back in missing.
func (c *Client) SubscriptionsByID(ctx context.Context, ids []string) (found []Subscription, missing []string, err error) {
	var out struct {
		Data    []Subscription `json:"data"`
		Missing []string       `json:"missing"`
	}
	err = c.do(ctx, http.MethodPost, "/api/subscriptions/batch", map[string][]string{"ids": ids}, &out)
	return out.Data, out.Missing, err
}

// DeleteSubscription deletes a subscription.
func (c *Client) DeleteSubscription(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/api/subscriptions/"+url.PathEscape(id), nil, nil)
}

// Publish publishes one event and returns its id. An event without an id
// gets one here, before the first try, so the call can be repeated after a
// 503, a timeout or a cut connection: the server stores an id once (within
// its duplicate window), so the event is delivered once.
func (c *Client) Publish(ctx context.Context, e Event) (string, error) {
	if e.ID == "" {
		e.ID = NewEventID()
	}
	var out struct {
		ID string `json:"id"`
	}
	err := c.call(ctx, http.MethodPost, "/api/events", e, &out, true)
	if err != nil {
		return e.ID, err
	}
	return out.ID, nil
}

// PublishBatch publishes up to 100 events in one counted request and
// returns their ids in order; like Publish, it gives every event an id
// first and repeats the call safely.
func (c *Client) PublishBatch(ctx context.Context, evts []Event) ([]string, error) {
	withIDs := make([]Event, len(evts))
	ids := make([]string, len(evts))
	for i, e := range evts {
		if e.ID == "" {
			e.ID = NewEventID()
		}
		withIDs[i], ids[i] = e, e.ID
	}
	var out struct {
		IDs []string `json:"ids"`
	}
	if err := c.call(ctx, http.MethodPost, "/api/events/batch", map[string][]Event{"events": withIDs}, &out, true); err != nil {
		return ids, err
	}
	return out.IDs, nil
}
