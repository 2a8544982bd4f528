package dispatcher

import (
	"encoding/json"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/oklog/ulid/v2"
)

// Delivery statuses.
const (
	StatusPending   = "pending"
	StatusSucceeded = "succeeded"
	StatusFailed    = "failed"
	StatusSkipped   = "skipped"
)

// MaxResponseExcerpt is how much of a receiver's answer is kept.
const MaxResponseExcerpt = 1024

// Delivery is one event going to one subscription, with every attempt so
// far. The attempt log keeps the latest snapshot of each delivery: every
// attempt writes the whole delivery, so reading one is one lookup.
type Delivery struct {
	ID             string     `json:"id"`
	EventID        string     `json:"eventId"`
	EventType      string     `json:"eventType"`
	SubscriptionID string     `json:"subscriptionId"`
	TenantID       string     `json:"tenantId"`
	Status         string     `json:"status"`
	Attempts       []Attempt  `json:"attempts"`
	NextAttemptAt  *time.Time `json:"nextAttemptAt,omitempty"`
	CreatedAt      time.Time  `json:"createdAt"`
	// EventSeq is the event's sequence in the events stream, from which a
	// manual retry or a replay reads its body.
	EventSeq uint64 `json:"eventSeq,omitempty"`
}

// Attempt is one try of a delivery.
type Attempt struct {
	At           time.Time `json:"at"`
	StatusCode   int       `json:"statusCode,omitempty"`
	Error        string    `json:"error,omitempty"`
	DurationMs   int64     `json:"durationMs"`
	ResponseBody string    `json:"responseBody,omitempty"`
}

// deliverySubject is where a delivery's snapshot is kept.
func deliverySubject(tenant, sub, delivery string) string {
	return attemptPrefix + tenant + "." + sub + "." + delivery
}

func (d *Delivery) msg() *nats.Msg {
	if d.Attempts == nil {
		d.Attempts = []Attempt{}
	}
	b, _ := json.Marshal(d) // plain fields always encode
	return &nats.Msg{Subject: deliverySubject(d.TenantID, d.SubscriptionID, d.ID), Data: b}
}

const (
	deliveryPrefix = "dlv_"
	subPrefix      = "sub_"
	ulidLen        = 26
)

// NewDeliveryID returns a fresh id for a delivery to sub: "dlv_" followed by
// its own ULID (so ids sort by creation time) and the subscription's, so the
// id alone says where the delivery is kept.
func NewDeliveryID(sub string) string {
	return deliveryPrefix + ulid.Make().String() + strings.TrimPrefix(sub, subPrefix)
}

// SubscriptionOf returns the subscription a delivery id belongs to.
func SubscriptionOf(delivery string) (string, bool) {
	rest, ok := strings.CutPrefix(delivery, deliveryPrefix)
	if !ok || len(rest) != 2*ulidLen {
		return "", false
	}
	for _, part := range []string{rest[:ulidLen], rest[ulidLen:]} {
		if _, err := ulid.ParseStrict(part); err != nil {
			return "", false
		}
	}
	return subPrefix + rest[ulidLen:], true
}
