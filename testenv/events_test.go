package testenv_test

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/onestack/webhooks/events"
	"github.com/onestack/webhooks/server"
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
	if got := rb.WaitFor(1, 30*time.Second); len(got) != 1 || got[0].ID != "order-1" || !strings.Contains(string(got[0].Body), b.ID) {
		t.Fatalf("tenant B got %d webhooks, want its own order-1", len(got))
	}
	// A marker published after the repeat: once it arrives, the repeat
	// would have too. The subscription is unordered, so the marker may
	// overtake order-1: the two are waited for, in either order.
	marker := publish(t, env, a, "ticket.created")
	got := ra.WaitFor(2, 30*time.Second)
	seen := map[string]int{}
	for _, g := range got {
		seen[g.ID]++
	}
	if len(got) != 2 || seen["order-1"] != 1 || seen[marker] != 1 {
		var ids []string
		for _, g := range ra.Received() {
			ids = append(ids, g.ID)
		}
		t.Errorf("tenant A got %v, want order-1 once, then the marker %s", ids, marker)
	}
	stored := storedEvents(t, env, a.ID)
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
	if got := rc.WaitFor(1, 30*time.Second); len(got) != 1 || got[0].ID != marker {
		t.Errorf("receiver got %d webhooks before the marker, want only the marker: nothing refused was delivered", len(got))
	}
}

// TestUnacknowledgedPublishReturnsItsIDs: when the event store does not
// acknowledge a publish in time (here every acknowledgement is late), the
// answer is 503 with the events' ids; the events may be stored all the
// same, and publishing them again with those ids delivers each once.
func TestUnacknowledgedPublishReturnsItsIDs(t *testing.T) {
	t.Parallel()
	env, ten := setup(t, testenv.Options{Server: func(c *server.Config) {
		c.Publisher = events.PublisherConfig{AckTimeout: time.Nanosecond, Timeout: 200 * time.Millisecond}
	}})
	rc := receiver(t)
	subscribe(t, env, ten, rc, "ticket.*")

	r, _ := env.Do("POST", "/api/events", ten.APIKey, map[string]any{"type": "ticket.updated", "data": map[string]any{}})
	var one struct {
		Code    string
		Details struct{ ID string }
	}
	r.JSON(&one)
	if r.Status != http.StatusServiceUnavailable || one.Code != "UNAVAILABLE" || one.Details.ID == "" || r.Header.Get("Retry-After") == "" {
		t.Fatalf("unacknowledged publish = %d %s, want 503 UNAVAILABLE with details.id and Retry-After", r.Status, r.Body)
	}
	batch := []map[string]any{{"type": "ticket.created", "data": map[string]any{}}, {"type": "ticket.deleted", "data": map[string]any{}}}
	r, _ = env.Do("POST", "/api/events/batch", ten.APIKey, map[string]any{"events": batch})
	var many struct{ Details struct{ IDs []string } }
	r.JSON(&many)
	if r.Status != http.StatusServiceUnavailable || len(many.Details.IDs) != 2 {
		t.Fatalf("unacknowledged batch = %d %s, want 503 with details.ids", r.Status, r.Body)
	}
	// The producer retries with the ids it was given, twice over.
	for range 2 {
		env.Do("POST", "/api/events", ten.APIKey, map[string]any{"id": one.Details.ID, "type": "ticket.updated", "data": map[string]any{}})
		for i, id := range many.Details.IDs {
			batch[i]["id"] = id
		}
		env.Do("POST", "/api/events/batch", ten.APIKey, map[string]any{"events": batch})
	}
	want := map[string]bool{one.Details.ID: true, many.Details.IDs[0]: true, many.Details.IDs[1]: true}
	got := rc.WaitFor(3, 30*time.Second)
	marker := publishMarker(t, env, ten)
	got = rc.WaitFor(4, 30*time.Second)
	seen := map[string]int{}
	for _, g := range got {
		seen[g.ID]++
	}
	for id := range want {
		if seen[id] != 1 {
			t.Errorf("event %s delivered %d times, want once", id, seen[id])
		}
	}
	if seen[marker] != 1 || len(got) != 4 {
		t.Errorf("receiver got %d webhooks (%v), want the three events once each and the marker", len(got), seen)
	}
	if n := storedEvents(t, env, ten.ID); n != 4 {
		t.Errorf("%d events stored for the tenant, want 4: each retried id once, and the marker", n)
	}
}

// storedEvents counts the events the stream holds for a tenant.
func storedEvents(t *testing.T, env *testenv.Env, tenant string) uint64 {
	t.Helper()
	_, js := env.JetStream()
	stream, err := js.Stream(context.Background(), events.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(context.Background(), jetstream.WithSubjectFilter(events.SubjectPrefix+tenant+".>"))
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, c := range info.State.Subjects {
		n += c
	}
	return n
}

// publishMarker publishes an event whose arrival says the events published
// before it were fanned out; with acknowledgements late, it is published
// with an id and repeated until one try is answered 202 or 503.
func publishMarker(t *testing.T, env *testenv.Env, ten testenv.Tenant) string {
	t.Helper()
	id := "marker-" + strconv.FormatInt(time.Now().UnixNano(), 10)
	r, err := env.Do("POST", "/api/events", ten.APIKey, map[string]any{"id": id, "type": "ticket.updated", "data": map[string]any{}})
	if err != nil || (r.Status != http.StatusAccepted && r.Status != http.StatusServiceUnavailable) {
		t.Fatalf("publish marker = %v %v", r, err)
	}
	return id
}
