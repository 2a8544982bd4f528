package client

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"time"
)

// The rest of the tenant API: changing subscriptions, their secrets, test
// events, deliveries, retries and replays.

// SubscriptionPatch is the body of UpdateSubscription; nil fields are
// left as they are.
type SubscriptionPatch struct {
	URL         *string            `json:"url,omitempty"`
	EventTypes  *[]string          `json:"eventTypes,omitempty"`
	Description *string            `json:"description,omitempty"`
	Metadata    *map[string]string `json:"metadata,omitempty"`
	Active      *bool              `json:"active,omitempty"`
	// RateLimit is deliveries per second at most; 0 removes the pace.
	RateLimit *float64 `json:"rateLimit,omitempty"`
	Ordering  *string  `json:"ordering,omitempty"`
	// Filter "" removes the filter; Headers {} removes every header.
	Filter  *string            `json:"filter,omitempty"`
	Headers *map[string]string `json:"headers,omitempty"`
	// SignatureScheme switches between "v1" and "v1a": a fresh key of the
	// new scheme signs, the old one keeps signing for the overlap.
	SignatureScheme *string `json:"signatureScheme,omitempty"`
	// Auth replaces the endpoint authentication; RemoveAuth removes it
	// (sent as "auth": null) and wins over Auth.
	Auth       *Auth `json:"auth,omitempty"`
	RemoveAuth bool  `json:"-"`
	// SendTraceparent turns the traceparent header on or off.
	SendTraceparent *bool `json:"sendTraceparent,omitempty"`
}

// MarshalJSON writes the patch, with "auth": null when RemoveAuth is set.
func (p SubscriptionPatch) MarshalJSON() ([]byte, error) {
	type plain SubscriptionPatch
	if !p.RemoveAuth {
		return json.Marshal(plain(p))
	}
	p.Auth = nil
	return json.Marshal(struct {
		plain
		Auth *Auth `json:"auth"`
	}{plain: plain(p)})
}

// UpdateSubscription changes a subscription.
func (c *Client) UpdateSubscription(ctx context.Context, id string, p SubscriptionPatch) (Subscription, error) {
	return c.UpdateSubscriptionIfMatch(ctx, id, "", p)
}

// UpdateSubscriptionIfMatch changes a subscription only if it is still at
// the version etag names (from SubscriptionWithETag); otherwise the
// error is a 412 PRECONDITION_FAILED. An empty etag changes it whatever
// its version, as UpdateSubscription does.
func (c *Client) UpdateSubscriptionIfMatch(ctx context.Context, id, etag string, p SubscriptionPatch) (Subscription, error) {
	var x extras
	if etag != "" {
		x.header = http.Header{"If-Match": {etag}}
	}
	var out Subscription
	err := c.exchange(ctx, http.MethodPatch, "/api/subscriptions/"+url.PathEscape(id), p, &out, x)
	return out, err
}

// signingKey is the answer of a secret's read or rotation: the secret
// with scheme v1, the public key with v1a.
type signingKey struct {
	Secret    string `json:"secret"`
	PublicKey string `json:"publicKey"`
}

func (k signingKey) text() string {
	if k.Secret != "" {
		return k.Secret
	}
	return k.PublicKey
}

// Secret reads a subscription's signing secret ("whsec_..."), or with
// scheme v1a its public key ("whpk_...").
func (c *Client) Secret(ctx context.Context, id string) (string, error) {
	var out signingKey
	err := c.do(ctx, http.MethodGet, "/api/subscriptions/"+url.PathEscape(id)+"/secret", nil, &out)
	return out.text(), err
}

// RotateSecret replaces a subscription's signing secret (or v1a key pair)
// and returns the new one as Secret does; the old one keeps signing for
// the server's overlap (24 h).
func (c *Client) RotateSecret(ctx context.Context, id string) (string, error) {
	var out signingKey
	err := c.do(ctx, http.MethodPost, "/api/subscriptions/"+url.PathEscape(id)+"/rotate-secret", nil, &out)
	return out.text(), err
}

// SendTest sends a webhook.test event to one subscription and returns the
// event's id.
func (c *Client) SendTest(ctx context.Context, id string) (string, error) {
	var out struct {
		EventID string `json:"eventId"`
	}
	err := c.do(ctx, http.MethodPost, "/api/subscriptions/"+url.PathEscape(id)+"/test", nil, &out)
	return out.EventID, err
}

// Replay delivers again every retained event of a subscription's types
// since since (until until, when not zero) and returns how many. A range
// of more than a page runs as a job: Replay then returns 0, and
// StartReplay tells the job to follow.
func (c *Client) Replay(ctx context.Context, id string, since, until time.Time) (int, error) {
	s, err := c.StartReplay(ctx, id, since, until)
	return s.Count, err
}

// Attempt is one delivery attempt.
type Attempt struct {
	At         time.Time `json:"at"`
	StatusCode *int      `json:"statusCode"`
	Error      *string   `json:"error"`
	DurationMs int64     `json:"durationMs"`
	// ResponseBody is the first 1 KiB of the endpoint's answer.
	ResponseBody string `json:"responseBody"`
	// TraceID is the W3C trace id of the attempt (32 hex digits), when
	// the server traces.
	TraceID string `json:"traceId,omitempty"`
}

// Delivery is one event going to one subscription, with its attempts.
type Delivery struct {
	ID             string     `json:"id"`
	EventID        string     `json:"eventId"`
	EventType      string     `json:"eventType"`
	SubscriptionID string     `json:"subscriptionId"`
	Status         string     `json:"status"`
	Attempts       []Attempt  `json:"attempts"`
	NextAttemptAt  *time.Time `json:"nextAttemptAt"`
	CreatedAt      time.Time  `json:"createdAt"`
}

// DeliveryQuery selects a page of a subscription's deliveries.
type DeliveryQuery struct {
	// Status is pending, succeeded, failed, skipped or "" for all.
	Status string
	Limit  int
	Cursor string
}

// Deliveries reads one page of a subscription's deliveries, newest first;
// pass the returned cursor for the next ("" when there is none).
func (c *Client) Deliveries(ctx context.Context, subscription string, q DeliveryQuery) ([]Delivery, string, error) {
	v := url.Values{}
	if q.Status != "" {
		v.Set("status", q.Status)
	}
	return readPage[Delivery](ctx, c, "/api/subscriptions/"+url.PathEscape(subscription)+"/deliveries", v, q.Limit, q.Cursor)
}

// Delivery reads one delivery with all its attempts.
func (c *Client) Delivery(ctx context.Context, id string) (Delivery, error) {
	var out Delivery
	err := c.do(ctx, http.MethodGet, "/api/deliveries/"+url.PathEscape(id), nil, &out)
	return out, err
}

// RetryDelivery makes exactly one more attempt of a delivery now.
func (c *Client) RetryDelivery(ctx context.Context, id string) (Delivery, error) {
	var out Delivery
	err := c.do(ctx, http.MethodPost, "/api/deliveries/"+url.PathEscape(id)+"/retry", nil, &out)
	return out, err
}
