package testenv_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/onestack/webhooks/events"
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
	pub := env.Publisher()
	data := []byte(`{"ticketId":"T-1","status":"open"}`)
	n := b.N/subs + 1
	want := int64(n * subs)
	b.ResetTimer()
	var wg sync.WaitGroup
	for start := 0; start < n; start += 500 {
		batch := make([]events.Event, min(500, n-start))
		for i := range batch {
			batch[i] = events.Event{ID: events.NewID(), Type: "ticket.escalated", TenantID: ten.ID, OccurredAt: time.Now().UTC(), Data: data}
		}
		wg.Go(func() {
			if err := pub.PublishEvents(context.Background(), false, batch...); err != nil {
				b.Error(err)
			}
		})
		if start%5000 == 0 {
			wg.Wait()
		}
	}
	wg.Wait()
	deadline := time.Now().Add(5 * time.Minute)
	for got.Load() < want {
		if time.Now().After(deadline) {
			b.Fatalf("delivered %d of %d", got.Load(), want)
		}
		time.Sleep(time.Millisecond)
	}
	b.ReportMetric(float64(want)/b.Elapsed().Seconds(), "deliveries/s")
}
