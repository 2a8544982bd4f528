package events

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/onestack/webhooks/internal/natstest"
)

// TestWatermillSeam publishes through both paths of Publisher (the typed
// PublishEvents and Watermill's Publish) and reads them back through the
// Watermill subscriber: UUIDs are event ids and payloads are envelopes.
func TestWatermillSeam(t *testing.T) {
	t.Parallel()
	nc, js := natstest.Start(t, natstest.Options{}).Connect(t)
	ctx := context.Background()
	if _, err := EnsureStream(ctx, js, StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	sub, err := NewSubscriber(nc, "seam", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	msgs, err := sub.Subscribe(ctx, SubjectAll)
	if err != nil {
		t.Fatal(err)
	}

	pub := NewPublisher(js, PublisherConfig{})
	mk := func(typ string) Event {
		return Event{ID: NewID(), Type: typ, TenantID: "ten_1", OccurredAt: time.Now().UTC(), Data: []byte(`{"ticketId":"T-1"}`)}
	}
	typed, viaWatermill := mk("ticket.updated"), mk("ticket.created")
	if err := pub.PublishEvents(ctx, false, typed); err != nil {
		t.Fatal(err)
	}
	if err := pub.Publish(Subject(viaWatermill.TenantID, viaWatermill.Type), NewMessage(viaWatermill)); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{typed.ID: typed.Type, viaWatermill.ID: viaWatermill.Type}
	for range 2 {
		select {
		case m := <-msgs:
			e, err := Parse(m.Payload)
			if err != nil {
				t.Fatalf("payload: %v", err)
			}
			if m.UUID != e.ID || want[e.ID] != e.Type {
				t.Errorf("got UUID %q, event %s %s; want the UUID to be a published event's id", m.UUID, e.ID, e.Type)
			}
			delete(want, e.ID)
			m.Ack()
		case <-time.After(30 * time.Second):
			t.Fatalf("events never read through Watermill: missing %v", want)
		}
	}
}

func TestEventMarshalRoundTrip(t *testing.T) {
	e := Event{ID: "evt_1", Type: "ticket.updated", TenantID: "ten_1", OccurredAt: time.Date(2026, 11, 26, 10, 0, 0, 5, time.UTC), Data: []byte(` {"a":"\u00e9\n"} `)}
	got, err := Parse(e.Marshal())
	if err != nil {
		t.Fatalf("Parse(Marshal()) = %v", err)
	}
	if got.ID != e.ID || got.Type != e.Type || got.TenantID != e.TenantID || !got.OccurredAt.Equal(e.OccurredAt) || string(got.Data) != `{"a":"\u00e9\n"}` {
		t.Errorf("round trip = %+v", got)
	}
}

// FuzzParse feeds arbitrary bodies to the event decoder; a body it accepts
// and that validates must survive Marshal and Parse unchanged.
func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"id":"evt_1","type":"ticket.updated","tenantId":"ten_1","occurredAt":"2026-11-26T10:00:00Z","data":{"k":1}}`))
	f.Add([]byte(`{"id":"a\"b"}`))
	f.Add([]byte(`[]`))
	c := DefaultCatalog()
	f.Fuzz(func(t *testing.T, body []byte) {
		e, err := Parse(body)
		if err != nil || e.Validate(c) != nil {
			return
		}
		back, err := Parse(e.Marshal())
		if err != nil {
			t.Fatalf("Parse(Marshal(%q)) = %v", body, err)
		}
		if back.ID != e.ID || back.Type != e.Type || back.TenantID != e.TenantID || !back.OccurredAt.Equal(e.OccurredAt) {
			t.Fatalf("round trip of %q changed the envelope: %+v", body, back)
		}
	})
}
