package dispatcher

import (
	"encoding/json"
	"time"

	"github.com/nats-io/nats.go"
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

// Attempt is one record of the attempt log: what one try of one delivery
// did, and the delivery's status after it.
type Attempt struct {
	DeliveryID     string     `json:"deliveryId"`
	EventID        string     `json:"eventId"`
	EventType      string     `json:"eventType"`
	SubscriptionID string     `json:"subscriptionId"`
	TenantID       string     `json:"tenantId"`
	Number         int        `json:"number"`
	At             time.Time  `json:"at"`
	StatusCode     int        `json:"statusCode,omitempty"`
	Error          string     `json:"error,omitempty"`
	DurationMs     int64      `json:"durationMs"`
	ResponseBody   string     `json:"responseBody,omitempty"`
	Status         string     `json:"status"`
	NextAttemptAt  *time.Time `json:"nextAttemptAt,omitempty"`
	CreatedAt      time.Time  `json:"createdAt"`
}

// attemptSubject is where a delivery's attempts are logged.
func attemptSubject(tenant, sub, delivery string) string {
	return attemptPrefix + tenant + "." + sub + "." + delivery
}

func (a *Attempt) msg() *nats.Msg {
	b, _ := json.Marshal(a) // a struct of plain fields always encodes
	return &nats.Msg{Subject: attemptSubject(a.TenantID, a.SubscriptionID, a.DeliveryID), Data: b}
}
