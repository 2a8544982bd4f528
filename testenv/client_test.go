package testenv_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/onestack/webhooks/client"
	"github.com/onestack/webhooks/testenv"
)

// TestClientAgainstTheStack uses the Go client on a tenant whose budget is
// 3 requests: revalidated GETs cost nothing, the batch call costs one, and
// past the budget the client waits Retry-After before each retry.
func TestClientAgainstTheStack(t *testing.T) {
	t.Parallel()
	at := time.Now()
	env := testenv.Start(t, testenv.Options{Server: countLocally(at)})
	ten, err := env.CreateTenant("client", 3)
	if err != nil {
		t.Fatal(err)
	}
	var waits []time.Duration
	c, err := client.New(client.Config{BaseURL: env.URL(), APIKey: ten.APIKey, MaxAttempts: 3, HTTPClient: env.HTTPClient(),
		Sleep: func(_ context.Context, d time.Duration) error { waits = append(waits, d); return nil }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range 3 {
		types, err := c.EventTypes(ctx)
		if err != nil || len(types) < 10 {
			t.Fatalf("EventTypes #%d = %d types, %v", i+1, len(types), err)
		}
		if b := c.Budget(); b.Limit != 3 || b.Remaining != 2 {
			t.Errorf("after EventTypes #%d: budget %+v, want 2 of 3 left (revalidations are free)", i+1, b)
		}
	}
	sub, err := c.CreateSubscription(ctx, client.NewSubscription{URL: "http://127.0.0.1:9/h", EventTypes: []string{"ticket.*"}})
	if err != nil || sub.Secret == "" {
		t.Fatalf("CreateSubscription = %+v, %v", sub, err)
	}
	found, missing, err := c.SubscriptionsByID(ctx, []string{sub.ID, "sub_nope"})
	if err != nil || len(found) != 1 || len(missing) != 1 {
		t.Fatalf("SubscriptionsByID = %d found, %v missing, %v", len(found), missing, err)
	}
	if b := c.Budget(); b.Remaining != 0 {
		t.Errorf("budget after 3 counted requests = %+v, want 0 left", b)
	}
	_, err = c.Publish(ctx, client.Event{Type: "ticket.updated", Data: []byte(`{}`)})
	var apiErr *client.Error
	if !errors.As(err, &apiErr) || apiErr.Status != 429 || apiErr.Code != "RATE_LIMIT_EXCEEDED" {
		t.Fatalf("Publish past the budget = %v, want a 429 after retries", err)
	}
	want := time.Duration(apiErr.Details["retryAfter"].(float64)) * time.Second
	if len(waits) != 2 || waits[0] != want || waits[1] != want {
		t.Errorf("waits = %v, want two of Retry-After (%v)", waits, want)
	}
	if reset := c.Budget().Reset; reset.Before(at) || reset.After(at.Add(time.Minute)) {
		t.Errorf("Reset = %v, want within a minute after %v", reset, at)
	}
}
