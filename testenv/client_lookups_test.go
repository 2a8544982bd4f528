package testenv_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/onestack/webhooks/client"
	"github.com/onestack/webhooks/internal/poll"
	"github.com/onestack/webhooks/testenv"
)

// TestClientLookups drives the registry, filters, headers, event lookup,
// replay and recovery through the Go client.
func TestClientLookups(t *testing.T) {
	t.Parallel()
	env := testenv.Start(t, testenv.Options{Schedule: []time.Duration{}})
	ten, err := env.CreateTenant("client", 1000)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	admin, err := client.NewAdmin(client.Config{BaseURL: env.URL(), HTTPClient: env.HTTPClient()}, env.AdminToken)
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(client.Config{BaseURL: env.URL(), APIKey: ten.APIKey, HTTPClient: env.HTTPClient()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.RegisterEventType(ctx, client.NewEventType{Type: "ticket.merged", Description: "Two tickets merged.",
		Schema: json.RawMessage(`{"required": ["into"]}`), Example: json.RawMessage(`{"into": "T-1"}`)}); err != nil {
		t.Fatal(err)
	}
	typ, err := c.EventType(ctx, "ticket.merged")
	if err != nil || string(typ.Example) != `{"into":"T-1"}` {
		t.Fatalf("EventType = %+v, %v", typ, err)
	}
	var apiErr *client.Error
	if _, err := c.PublishBatch(ctx, []client.Event{{Type: "ticket.merged", Data: json.RawMessage(`{}`)}}); !errors.As(err, &apiErr) || apiErr.Status != 400 {
		t.Errorf("publishing data off the schema = %v, want a 400", err)
	}

	rc := receiver(t)
	rc.Respond(func(n int, _ *http.Request) int {
		if n == 1 {
			return 500
		}
		return 200
	})
	sub, err := c.CreateSubscription(ctx, client.NewSubscription{URL: rc.URL(), EventTypes: []string{"ticket.*"},
		Filter: `type == "ticket.merged"`, Headers: map[string]string{"X-Tenant-Token": "abc"}})
	if err != nil {
		t.Fatal(err)
	}
	if sub.Filter == nil || len(sub.HeaderNames) != 1 {
		t.Errorf("created subscription = %+v, want its filter and one header name", sub)
	}
	start := time.Now().UTC().Add(-time.Second)
	ids, err := c.PublishBatch(ctx, []client.Event{
		{Type: "ticket.updated", Data: json.RawMessage(`{}`)},
		{Type: "ticket.merged", Data: json.RawMessage(`{"into": "T-9"}`)},
	})
	if err != nil {
		t.Fatal(err)
	}
	got := rc.WaitFor(1, 30*time.Second)
	if len(got) != 1 || got[0].ID != ids[1] || got[0].Header.Get("X-Tenant-Token") != "abc" {
		t.Fatalf("webhooks = %v, want the merged event with the custom header", got)
	}
	var ev client.EventDetail
	poll.Until(t, 30*time.Second, "the event's delivery failed", func() bool {
		ev, err = c.Event(ctx, ids[1])
		return err == nil && len(ev.Deliveries) == 1 && ev.Deliveries[0].Status == "failed"
	})
	page, next, err := c.Events(ctx, client.EventQuery{Type: "ticket.merged", Since: start, Limit: 10})
	if err != nil || len(page) != 1 || page[0].ID != ids[1] || next != "" {
		t.Errorf("Events(ticket.merged) = %v, %q, %v", page, next, err)
	}
	s, err := c.Recover(ctx, sub.ID, client.Recovery{Since: start})
	if err != nil || s.Count != 1 || s.JobID != "" {
		t.Fatalf("Recover = %+v, %v; want one delivery resent at once", s, err)
	}
	if got := rc.WaitFor(2, 30*time.Second); len(got) != 2 || got[1].ID != ids[1] {
		t.Errorf("after the recovery the receiver got %d webhooks, want the merged event again", len(got))
	}
	r, err := c.StartReplay(ctx, sub.ID, start, time.Time{})
	if err != nil || r.Count != 1 {
		t.Errorf("StartReplay = %+v, %v; want the one event its filter accepts", r, err)
	}
	if _, err := c.Job(ctx, "job_01M8KA505FM25DWJ0QKM3XHWAE"); !errors.As(err, &apiErr) || apiErr.Status != 404 {
		t.Errorf("Job(unknown) = %v, want a 404", err)
	}
	if _, err := admin.DeprecateEventType(ctx, "ticket.merged"); err != nil {
		t.Fatal(err)
	}
	types, err := c.EventTypes(ctx)
	deprecated := false
	for _, ty := range types {
		deprecated = deprecated || (ty.Type == "ticket.merged" && ty.Deprecated)
	}
	if err != nil || !deprecated {
		t.Errorf("EventTypes after deprecation: ticket.merged deprecated = %v (%v)", deprecated, err)
	}
}
