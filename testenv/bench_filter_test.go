package testenv_test

import (
	"testing"

	"github.com/onestack/webhooks/testenv"
)

// BenchmarkEndToEndFiltered is BenchmarkEndToEnd with what issue 12 adds
// on the way: the events' type has a JSON Schema, which the publisher
// checks, and each of the 4 subscriptions has a payload filter (accepting
// every event), which the fan-out evaluates after decoding the event once.
// Compare its deliveries/s with BenchmarkEndToEnd's in the same run.
func BenchmarkEndToEndFiltered(b *testing.B) {
	env := testenv.Start(b, testenv.Options{})
	ten, err := env.CreateTenant("bench", 1_000_000)
	if err != nil {
		b.Fatal(err)
	}
	if err := env.EventType("ticket.escalated", "bench", map[string]any{
		"type": "object", "required": []string{"ticketId", "status"},
		"properties": map[string]any{"ticketId": map[string]any{"type": "string"}, "status": map[string]any{"enum": []string{"open", "pending"}}},
	}, nil); err != nil {
		b.Fatal(err)
	}
	srv, got := countingReceiver(b)
	const subs = 4
	for range subs {
		if _, err := env.SubscribeWith(ten, map[string]any{"url": srv.URL, "eventTypes": []string{"ticket.escalated"},
			"filter": `data.status in ["open", "pending"] && data.ticketId != ""`}); err != nil {
			b.Fatal(err)
		}
	}
	publishAndAwait(b, []*testenv.Env{env}, ten, "ticket.escalated", subs, got)
}
