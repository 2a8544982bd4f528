package testenv_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/onestack/webhooks/events"
	"github.com/onestack/webhooks/testenv"
)

// TestEventIDsAreScopedToTheirTenant: the same client-chosen id from two
// tenants is two events, each delivered to its own tenant; the same id
// from one tenant again within the window answers 202 with that id and is
// delivered once.
func TestEventIDsAreScopedToTheirTenant(t *testing.T) {
	t.Parallel()
	env, a := setup(t, testenv.Options{})
	b, err := env.CreateTenant("b", 0)
	if err != nil {
		t.Fatal(err)
	}
	ra, rb := receiver(t), receiver(t)
	subscribe(t, env, a, ra, "ticket.*")
	subscribe(t, env, b, rb, "ticket.*")
	post := func(ten testenv.Tenant, body map[string]any) {
		t.Helper()
		r, err := env.Do("POST", "/api/events", ten.APIKey, body)
		if err != nil {
			t.Fatal(err)
		}
		if r.Status != http.StatusAccepted || !strings.Contains(string(r.Body), `"id":"order-1"`) {
			t.Fatalf("publish = %d %s, want 202 with id order-1", r.Status, r.Body)
		}
	}
	evt := map[string]any{"id": "order-1", "type": "ticket.updated", "data": map[string]any{"n": 1}}
	post(a, evt)
	post(b, evt)
	post(a, evt) // a repeat within the window
	if got := rb.WaitFor(1, 10*time.Second); len(got) != 1 || got[0].ID != "order-1" || !strings.Contains(string(got[0].Body), b.ID) {
		t.Fatalf("tenant B got %d webhooks, want its own order-1", len(got))
	}
	// A marker published after the repeat: once it arrives, the repeat
	// would have too.
	marker := publish(t, env, a, "ticket.created")
	got := ra.WaitFor(2, 10*time.Second)
	if len(got) != 2 || got[0].ID != "order-1" || got[1].ID != marker {
		var ids []string
		for _, g := range ra.Received() {
			ids = append(ids, g.ID)
		}
		t.Errorf("tenant A got %v, want order-1 once, then the marker %s", ids, marker)
	}
	_, js := env.JetStream()
	stream, err := js.Stream(context.Background(), events.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(context.Background(), jetstream.WithSubjectFilter(events.SubjectPrefix+a.ID+".>"))
	if err != nil {
		t.Fatal(err)
	}
	var stored uint64
	for _, n := range info.State.Subjects {
		stored += n
	}
	if stored != 2 {
		t.Errorf("tenant A has %d events stored, want 2: order-1 once and the marker", stored)
	}
}

// TestInternalTypesCannotBePublished: both publish routes refuse every type
// only the platform emits, naming the field; a batch holding one is
// refused whole.
func TestInternalTypesCannotBePublished(t *testing.T) {
	t.Parallel()
	env, ten := setup(t, testenv.Options{})
	rc := receiver(t)
	subscribe(t, env, ten, rc, "*")
	var internal []string
	for _, typ := range events.DefaultCatalog() {
		if typ.Internal {
			internal = append(internal, typ.Type)
		}
	}
	if len(internal) < 3 {
		t.Fatalf("internal types %v, want at least webhook.test, subscription.disabled and delivery.exhausted", internal)
	}
	for _, typ := range internal {
		r, _ := env.Do("POST", "/api/events", ten.APIKey, map[string]any{"type": typ, "data": map[string]any{}})
		if r.Status != http.StatusBadRequest || !strings.Contains(string(r.Body), `"field":"type"`) || !strings.Contains(string(r.Body), typ) {
			t.Errorf("POST /api/events %s = %d %s, want 400 naming the type", typ, r.Status, r.Body)
		}
		batch := map[string]any{"events": []map[string]any{
			{"type": "ticket.updated", "data": map[string]any{}},
			{"type": typ, "data": map[string]any{}},
		}}
		r, _ = env.Do("POST", "/api/events/batch", ten.APIKey, batch)
		if r.Status != http.StatusBadRequest || !strings.Contains(string(r.Body), `"field":"events[1].type"`) {
			t.Errorf("batch with %s = %d %s, want 400 naming events[1].type", typ, r.Status, r.Body)
		}
	}
	marker := publish(t, env, ten, "account.created")
	if got := rc.WaitFor(1, 10*time.Second); len(got) != 1 || got[0].ID != marker {
		t.Errorf("receiver got %d webhooks before the marker, want only the marker: nothing refused was delivered", len(got))
	}
}
