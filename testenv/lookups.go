package testenv

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/onestack/webhooks/jobs"
)

// testJobs fills the zero fields of a jobs configuration with values for
// tests: jobs send 10,000 items a second in batches of 100, a stopped
// stack's jobs are taken over after 2 s, and runners look for work every
// 50 ms.
func testJobs(c jobs.Config) jobs.Config {
	if c.Rate == 0 {
		c.Rate = 10_000
	}
	if c.Lease == 0 {
		c.Lease = 2 * time.Second
	}
	if c.Scan == 0 {
		c.Scan = 50 * time.Millisecond
	}
	return c
}

// EventType registers an event type through the operator API; schema and
// example may be nil.
func (e *Env) EventType(typ, description string, schema, example any) error {
	body := map[string]any{"type": typ, "description": description}
	if schema != nil {
		body["schema"] = schema
	}
	if example != nil {
		body["example"] = example
	}
	r, err := e.Do("POST", "/admin/event-types", e.AdminToken, body)
	if err != nil {
		return err
	}
	if r.Status != http.StatusCreated {
		return fmt.Errorf("register event type %s: %d %s", typ, r.Status, r.Body)
	}
	return nil
}

// SubscribeWith registers a subscription with the given body (url and
// eventTypes required) and returns it.
func (e *Env) SubscribeWith(t Tenant, body map[string]any) (Subscription, error) {
	r, err := e.Do("POST", "/api/subscriptions", t.APIKey, body)
	if err != nil {
		return Subscription{}, err
	}
	if r.Status != http.StatusCreated {
		return Subscription{}, fmt.Errorf("create subscription: %d %s", r.Status, r.Body)
	}
	var s Subscription
	return s, json.Unmarshal(r.Body, &s)
}
