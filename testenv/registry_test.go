package testenv_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/onestack/webhooks/events"
	"github.com/onestack/webhooks/internal/natstest"
	"github.com/onestack/webhooks/testenv"
)

// escalatedSchema is the schema of the type the registry tests register.
var escalatedSchema = map[string]any{
	"type":     "object",
	"required": []string{"ticketId", "level"},
	"properties": map[string]any{
		"ticketId": map[string]any{"type": "string", "pattern": "^T-[0-9]+$"},
		"level":    map[string]any{"type": "integer", "minimum": 1, "maximum": 3},
		"reason":   map[string]any{"type": "string", "maxLength": 200},
	},
}

// errorFields returns the field names of a 400 VALIDATION_FAILED answer.
func errorFields(t *testing.T, r *testenv.Response) []string {
	t.Helper()
	var e struct {
		Code    string
		Details struct {
			Fields []struct{ Field, Reason string }
		}
	}
	if err := r.JSON(&e); err != nil || r.Status != 400 || e.Code != "VALIDATION_FAILED" {
		t.Fatalf("answer %d %s, want 400 VALIDATION_FAILED", r.Status, r.Body)
	}
	var out []string
	for _, f := range e.Details.Fields {
		if f.Reason == "" {
			t.Errorf("field %s has no reason", f.Field)
		}
		out = append(out, f.Field)
	}
	sort.Strings(out)
	return out
}

// TestRegisteredTypeIsDelivered: an operator registers a type with a
// schema; it is listed (the catalog's ETag changes), readable with its
// schema, deliverable to wildcards and to exact subscriptions; data failing
// the schema is refused on both publish routes and by events.Publisher,
// with JSON pointers; a deprecated type is still delivered but refused to
// new subscriptions.
func TestRegisteredTypeIsDelivered(t *testing.T) {
	t.Parallel()
	env, ten := setup(t, testenv.Options{})
	before, _ := env.Do("GET", "/api/event-types", ten.APIKey, nil)
	if before.Status != 200 || !strings.Contains(string(before.Body), `"board.created"`) || !strings.Contains(string(before.Body), `"account.deleted"`) {
		t.Fatalf("catalog = %d %s, want the built-in board.created and account.deleted", before.Status, before.Body)
	}
	etag := before.Header.Get("ETag")

	example := map[string]any{"ticketId": "T-7", "level": 2}
	if err := env.EventType("ticket.escalated", "A ticket was escalated.", escalatedSchema, example); err != nil {
		t.Fatal(err)
	}
	after, _ := env.Do("GET", "/api/event-types", ten.APIKey, nil, "If-None-Match", etag)
	if after.Status != 200 || after.Header.Get("ETag") == etag || !strings.Contains(string(after.Body), `"ticket.escalated"`) {
		t.Fatalf("catalog after registering, with the old ETag = %d %s, want 200 listing ticket.escalated under a new ETag", after.Status, after.Body)
	}
	if strings.Contains(string(after.Body), `"schema"`) {
		t.Errorf("the catalog listing carries schemas: %s", after.Body)
	}
	one, _ := env.Do("GET", "/api/event-types/ticket.escalated", ten.APIKey, nil)
	var detail struct {
		Type            string
		Deprecated      bool
		Schema, Example map[string]any
		Internal        bool
	}
	if err := one.JSON(&detail); err != nil || one.Status != 200 || detail.Schema["required"] == nil || detail.Example["ticketId"] != "T-7" {
		t.Fatalf("GET event type = %d %s, want its schema and example", one.Status, one.Body)
	}
	if r, _ := env.Do("GET", "/api/event-types/ticket.escalated", ten.APIKey, nil, "If-None-Match", one.Header.Get("ETag")); r.Status != 304 {
		t.Errorf("GET event type with its ETag = %d, want 304", r.Status)
	}
	if r, _ := env.Do("GET", "/api/event-types/ticket.nope", ten.APIKey, nil); r.Status != 404 {
		t.Errorf("GET unknown event type = %d, want 404", r.Status)
	}

	family, exact := receiver(t), receiver(t)
	subscribe(t, env, ten, family, "ticket.*")
	subscribe(t, env, ten, exact, "ticket.escalated")
	id, err := env.Publish(ten, "ticket.escalated", map[string]any{"ticketId": "T-1", "level": 3})
	if err != nil {
		t.Fatal(err)
	}
	for name, rc := range map[string]*testenv.Receiver{"ticket.*": family, "ticket.escalated": exact} {
		if got := rc.WaitFor(1, 30*time.Second); len(got) != 1 || got[0].ID != id || got[0].Verified != nil {
			t.Errorf("subscription to %s got %d webhooks, want the registered type's event, signed", name, len(got))
		}
	}

	// Data failing the schema: refused with a pointer per problem.
	r, _ := env.Do("POST", "/api/events", ten.APIKey, map[string]any{"type": "ticket.escalated", "data": map[string]any{"ticketId": "7", "level": 9, "reason": strings.Repeat("r", 201)}})
	if diff := cmp.Diff([]string{"data/level", "data/reason", "data/ticketId"}, errorFields(t, r)); diff != "" {
		t.Errorf("single publish of bad data (-want +got):\n%s", diff)
	}
	r, _ = env.Do("POST", "/api/events", ten.APIKey, map[string]any{"type": "ticket.escalated", "data": map[string]any{}})
	if diff := cmp.Diff([]string{"data/level", "data/ticketId"}, errorFields(t, r)); diff != "" {
		t.Errorf("publish without required fields (-want +got):\n%s", diff)
	}
	r, _ = env.Do("POST", "/api/events/batch", ten.APIKey, map[string]any{"events": []map[string]any{
		{"type": "ticket.escalated", "data": example},
		{"type": "ticket.escalated", "data": map[string]any{"ticketId": "T-1", "level": "high"}},
	}})
	if diff := cmp.Diff([]string{"events[1].data/level"}, errorFields(t, r)); diff != "" {
		t.Errorf("batch with one bad item (-want +got):\n%s", diff)
	}
	bad := events.Event{ID: events.NewID(), Type: "ticket.escalated", TenantID: ten.ID, OccurredAt: time.Now(), Data: []byte(`{"ticketId": "T-1"}`)}
	var ve *events.ValidationError
	if err := env.Publisher().PublishEvents(context.Background(), false, bad); !errors.As(err, &ve) || ve.Problems[0].Field != "data/level" {
		t.Errorf("events.Publisher with bad data = %v, want a ValidationError at data/level", err)
	}
	if got := len(family.WaitFor(2, 300*time.Millisecond)); got != 1 {
		t.Errorf("refused events were delivered: the receiver got %d webhooks", got)
	}

	// Deprecation: still delivered, flagged, refused to new subscriptions.
	if r, _ := env.Do("DELETE", "/admin/event-types/ticket.escalated", env.AdminToken, nil); r.Status != 200 || !strings.Contains(string(r.Body), `"deprecated":true`) {
		t.Fatalf("deprecate = %d %s", r.Status, r.Body)
	}
	list, _ := env.Do("GET", "/api/event-types", ten.APIKey, nil)
	if !strings.Contains(string(list.Body), `{"type":"ticket.escalated","description":"A ticket was escalated.","deprecated":true}`) {
		t.Errorf("catalog does not flag the deprecated type: %s", list.Body)
	}
	if _, err := env.Publish(ten, "ticket.escalated", example); err != nil {
		t.Errorf("publishing a deprecated type: %v", err)
	}
	if got := len(exact.WaitFor(2, 30*time.Second)); got != 2 {
		t.Errorf("the exact subscription got %d webhooks after deprecation, want 2", got)
	}
	r, _ = env.Do("POST", "/api/subscriptions", ten.APIKey, map[string]any{"url": family.URL(), "eventTypes": []string{"ticket.updated", "ticket.escalated"}})
	if diff := cmp.Diff([]string{"eventTypes[1]"}, errorFields(t, r)); diff != "" {
		t.Errorf("new subscription to a deprecated type (-want +got):\n%s", diff)
	}

	// Operator errors.
	for _, tc := range []struct {
		method, path string
		body         any
		status       int
	}{
		{"POST", "/admin/event-types", map[string]any{"type": "ticket.escalated", "description": "again"}, 409},
		{"POST", "/admin/event-types", map[string]any{"type": "ticket.updated", "description": "a built-in"}, 409},
		{"POST", "/admin/event-types", map[string]any{"type": "delivery.retried", "description": "reserved family"}, 400},
		{"POST", "/admin/event-types", map[string]any{"type": "ticket.x", "description": "d", "schema": map[string]any{"$ref": "https://example.com/s.json"}}, 400},
		{"POST", "/admin/event-types", map[string]any{"type": "ticket.x", "description": "d", "schema": escalatedSchema, "example": map[string]any{"level": 0}}, 400},
		{"POST", "/admin/event-types", map[string]any{"type": "ticket.x", "description": "d", "unknown": 1}, 400},
		{"PATCH", "/admin/event-types/webhook.test", map[string]any{"description": "mine now"}, 400},
		{"DELETE", "/admin/event-types/delivery.exhausted", nil, 400},
		{"PATCH", "/admin/event-types/ticket.nope", map[string]any{"description": "d"}, 404},
		{"DELETE", "/admin/event-types/ticket.nope", nil, 404},
		{"POST", "/admin/event-types", map[string]any{"type": "ticket.y", "description": "d"}, 401},
	} {
		token := env.AdminToken
		if tc.status == 401 {
			token = ten.APIKey
		}
		if r, _ := env.Do(tc.method, tc.path, token, tc.body); r.Status != tc.status {
			t.Errorf("%s %s %v = %d %s, want %d", tc.method, tc.path, tc.body, r.Status, r.Body, tc.status)
		}
	}
	r, _ = env.Do("POST", "/admin/event-types", env.AdminToken, map[string]any{"type": "ticket.x", "description": "d", "schema": map[string]any{"properties": map[string]any{"a": map[string]any{"type": "nope"}}}})
	if diff := cmp.Diff([]string{"schema/properties/a/type"}, errorFields(t, r)); diff != "" {
		t.Errorf("registering a bad schema (-want +got):\n%s", diff)
	}
	// A built-in type gains a schema with PATCH; the catalog keeps it.
	if r, _ := env.Do("PATCH", "/admin/event-types/board.created", env.AdminToken, map[string]any{"schema": map[string]any{"required": []string{"boardId"}}}); r.Status != 200 {
		t.Fatalf("PATCH a built-in's schema = %d %s", r.Status, r.Body)
	}
	r, _ = env.Do("POST", "/api/events", ten.APIKey, map[string]any{"type": "board.created", "data": map[string]any{"name": "b"}})
	if diff := cmp.Diff([]string{"data/boardId"}, errorFields(t, r)); diff != "" {
		t.Errorf("built-in type with a schema added (-want +got):\n%s", diff)
	}
}

// filterEvents are what TestFilteredSubscriptions publishes: ticket
// changes of every status and priority, and one without a priority.
var filterEvents = []map[string]any{
	{"ticketId": "T-1", "status": "open", "priority": "high", "n": 1},
	{"ticketId": "T-2", "status": "open", "priority": "low", "n": 2},
	{"ticketId": "T-3", "status": "pending", "priority": "high", "n": 3},
	{"ticketId": "T-4", "status": "closed", "priority": "high", "n": 4},
	{"ticketId": "T-5", "status": "pending", "priority": "normal", "n": 5, "tags": []string{"vip"}},
	{"ticketId": "T-6", "status": "open", "n": 6},
}

// TestFilteredSubscriptions: a filtered subscription gets exactly the
// events its expression accepts; a malformed expression is refused with
// its position; an evaluation that fails is no match, never an outage.
func TestFilteredSubscriptions(t *testing.T) {
	t.Parallel()
	env, ten := setup(t, testenv.Options{})
	tests := []struct {
		name, filter string
		want         []int // the n of the events delivered
		bad          string
	}{
		{name: "issue example", filter: `data.status in ["open", "pending"] && data.priority == "high"`, want: []int{1, 3}},
		{name: "numbers", filter: `data.n >= 4`, want: []int{4, 5, 6}},
		{name: "type", filter: `type == "ticket.created"`, want: []int{}},
		{name: "presence", filter: `!has(data.priority)`, want: []int{6}},
		{name: "lists", filter: `has(data.tags) && "vip" in data.tags`, want: []int{5}},
		{name: "time", filter: `occurredAt > timestamp("2020-01-01T00:00:00Z")`, want: []int{1, 2, 3, 4, 5, 6}},
		{name: "missing field is no match", filter: `data.priority != "low"`, want: []int{1, 3, 4, 5}},
		{name: "no filter", filter: "", want: []int{1, 2, 3, 4, 5, 6}},
		{name: "syntax error", filter: `data.status ==`, bad: "line 1, column 15"},
		{name: "unknown variable", filter: `status == "open"`, bad: "line 1, column 1"},
		{name: "not a condition", filter: `data.n + 1`, bad: "condition"},
		{name: "type mismatch", filter: `type == 3`, bad: "line 1, column 6"},
		{name: "second line", filter: "data.n > 1 &&\n  data.status in [", bad: "line 2"},
	}
	receivers := map[string]*testenv.Receiver{}
	for _, tc := range tests {
		rc := receiver(t)
		body := map[string]any{"url": rc.URL(), "eventTypes": []string{"ticket.updated"}}
		if tc.filter != "" {
			body["filter"] = tc.filter
		}
		r, _ := env.Do("POST", "/api/subscriptions", ten.APIKey, body)
		if tc.bad != "" {
			var e struct {
				Details struct {
					Fields []struct{ Field, Reason string }
				}
			}
			r.JSON(&e)
			if r.Status != 400 || len(e.Details.Fields) != 1 || e.Details.Fields[0].Field != "filter" || !strings.Contains(e.Details.Fields[0].Reason, tc.bad) {
				t.Errorf("%s: create = %d %s, want 400 on filter mentioning %q", tc.name, r.Status, r.Body, tc.bad)
			}
			continue
		}
		if r.Status != 201 {
			t.Fatalf("%s: create = %d %s", tc.name, r.Status, r.Body)
		}
		var s struct{ Filter *string }
		r.JSON(&s)
		if (tc.filter == "") != (s.Filter == nil) {
			t.Errorf("%s: the subscription shows filter %v", tc.name, s.Filter)
		}
		receivers[tc.name] = rc
	}
	all := receiver(t)
	subscribe(t, env, ten, all, "ticket.updated")
	for _, data := range filterEvents {
		if _, err := env.Publish(ten, "ticket.updated", data); err != nil {
			t.Fatal(err)
		}
	}
	all.WaitFor(len(filterEvents), 30*time.Second)
	for _, tc := range tests {
		rc := receivers[tc.name]
		if rc == nil {
			continue
		}
		rc.WaitFor(len(tc.want), 30*time.Second)
		got := []int{}
		// Anything else would have arrived by now: every event reached
		// the unfiltered receiver, and fan-out settles an event's
		// deliveries together.
		for _, w := range rc.WaitFor(len(tc.want)+1, 200*time.Millisecond) {
			var e struct{ Data struct{ N int } }
			json.Unmarshal(w.Body, &e)
			got = append(got, e.Data.N)
		}
		slices.Sort(got)
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("%s (%s) got events (-want +got):\n%s", tc.name, tc.filter, diff)
		}
	}
	// Changing the filter takes effect for the next events.
	r, _ := env.Do("GET", "/api/subscriptions", ten.APIKey, nil)
	var page struct{ Data []struct{ ID, URL string } }
	r.JSON(&page)
	var id string
	for _, s := range page.Data {
		if s.URL == receivers["type"].URL() {
			id = s.ID
		}
	}
	if r, _ := env.Do("PATCH", "/api/subscriptions/"+id, ten.APIKey, map[string]any{"filter": `data.n == 7`}); r.Status != 200 {
		t.Fatalf("patch filter = %d %s", r.Status, r.Body)
	}
	if r, _ := env.Do("PATCH", "/api/subscriptions/"+id, ten.APIKey, map[string]any{"filter": `data.n ==`}); r.Status != 400 {
		t.Errorf("patch with a malformed filter = %d, want 400", r.Status)
	}
	env.Publish(ten, "ticket.updated", map[string]any{"n": 7})
	env.Publish(ten, "ticket.updated", map[string]any{"n": 8})
	all.WaitFor(len(filterEvents)+2, 30*time.Second)
	receivers["type"].WaitFor(1, 30*time.Second)
	if got := receivers["type"].WaitFor(2, 300*time.Millisecond); len(got) != 1 || !strings.Contains(string(got[0].Body), `"n":7`) {
		t.Errorf("after patching the filter to n == 7 the receiver got %d webhooks, want the one event", len(got))
	}
}

// TestCustomHeaders: a subscription's headers arrive with every delivery,
// are never shown again, and the names the delivery contract owns are
// refused.
func TestCustomHeaders(t *testing.T) {
	t.Parallel()
	env, ten := setup(t, testenv.Options{})
	rc := receiver(t)
	s, err := env.SubscribeWith(ten, map[string]any{"url": rc.URL(), "eventTypes": []string{"ticket.*"},
		"headers": map[string]string{"X-Api-Token": "tok-123-secret", "Authorization": "Bearer downstream"}})
	if err != nil {
		t.Fatal(err)
	}
	rc.SetSecrets(s.Secret)
	publish(t, env, ten, "ticket.updated")
	got := rc.WaitFor(1, 30*time.Second)
	if len(got) != 1 || got[0].Header.Get("X-Api-Token") != "tok-123-secret" || got[0].Header.Get("Authorization") != "Bearer downstream" || got[0].Verified != nil {
		t.Fatalf("webhook headers = %v, want the custom headers and a valid signature", got)
	}
	for _, path := range []string{"/api/subscriptions/" + s.ID, "/api/subscriptions"} {
		r, _ := env.Do("GET", path, ten.APIKey, nil)
		if strings.Contains(string(r.Body), "tok-123-secret") || !strings.Contains(string(r.Body), `"headerNames":["Authorization","X-Api-Token"]`) {
			t.Errorf("GET %s = %s, want header names and no values", path, r.Body)
		}
	}
	r, _ := env.Do("POST", "/api/subscriptions/batch", ten.APIKey, map[string]any{"ids": []string{s.ID}})
	if strings.Contains(string(r.Body), "tok-123-secret") {
		t.Errorf("batch read shows a header value: %s", r.Body)
	}

	r, _ = env.Do("POST", "/api/subscriptions", ten.APIKey, map[string]any{"url": rc.URL(), "eventTypes": []string{"ticket.*"},
		"headers": map[string]string{"Webhook-Signature": "v1,forged", "content-type": "text/plain", "Host": "evil", "User-Agent": "x",
			"Connection": "close", "Transfer-Encoding": "chunked", "Content-Length": "1", "X-Fine": "ok", "Bad Name": "x"}})
	want := []string{"headers[Bad Name]", "headers[Connection]", "headers[Content-Length]", "headers[Host]", "headers[Transfer-Encoding]", "headers[User-Agent]", "headers[Webhook-Signature]", "headers[content-type]"}
	if diff := cmp.Diff(want, errorFields(t, r)); diff != "" {
		t.Errorf("reserved headers (-want +got):\n%s", diff)
	}

	// PATCH replaces them all; {} removes them.
	if r, _ := env.Do("PATCH", "/api/subscriptions/"+s.ID, ten.APIKey, map[string]any{"headers": map[string]string{"X-Other": "2"}}); r.Status != 200 {
		t.Fatalf("patch headers = %d %s", r.Status, r.Body)
	}
	publish(t, env, ten, "ticket.updated")
	if got := rc.WaitFor(2, 30*time.Second); len(got) != 2 || got[1].Header.Get("X-Other") != "2" || got[1].Header.Get("X-Api-Token") != "" {
		t.Errorf("after patching: %v, want only X-Other", got[len(got)-1].Header)
	}
	if r, _ := env.Do("PATCH", "/api/subscriptions/"+s.ID, ten.APIKey, map[string]any{"headers": map[string]string{"webhook-id": "x"}}); r.Status != 400 {
		t.Errorf("patch with a reserved header = %d, want 400", r.Status)
	}
	if r, _ := env.Do("PATCH", "/api/subscriptions/"+s.ID, ten.APIKey, map[string]any{"headers": map[string]string{}}); r.Status != 200 || !strings.Contains(string(r.Body), `"headerNames":[]`) {
		t.Errorf("removing headers = %d %s", r.Status, r.Body)
	}
}

// TestRegistryAcrossStacks: a type registered through one replica is known
// to another on the same NATS (through its watch), for subscriptions and
// publishing alike.
func TestRegistryAcrossStacks(t *testing.T) {
	t.Parallel()
	nats := natstest.Start(t, natstest.Options{})
	a := testenv.Start(t, testenv.Options{NATSURL: nats.ClientURL()})
	b := testenv.Start(t, testenv.Options{NATSURL: nats.ClientURL()})
	b.AdminToken = a.AdminToken // one operator; each stack was given its own token
	ten, err := a.CreateTenant("acme", 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.EventType("asset.created", "An asset was added.", map[string]any{"required": []string{"assetId"}}, nil); err != nil {
		t.Fatal(err)
	}
	rc := receiver(t)
	untilCounted(t, "replica b accepts a subscription to the new family", func() bool {
		r, err := b.Do("POST", "/api/subscriptions", ten.APIKey, map[string]any{"url": rc.URL(), "eventTypes": []string{"asset.*"}})
		return err == nil && r.Status == http.StatusCreated
	})
	matchedEverywhere(t, ten, "asset.created", 1, a, b)
	r, _ := b.Do("POST", "/api/events", ten.APIKey, map[string]any{"type": "asset.created", "data": map[string]any{"name": "x"}})
	if diff := cmp.Diff([]string{"data/assetId"}, errorFields(t, r)); diff != "" {
		t.Errorf("replica b checks the schema registered on a (-want +got):\n%s", diff)
	}
	if _, err := b.Publish(ten, "asset.created", map[string]any{"assetId": "A-1"}); err != nil {
		t.Fatal(err)
	}
	if got := rc.WaitFor(1, 30*time.Second); len(got) != 1 {
		t.Errorf("the new type's event reached %d webhooks, want 1", len(got))
	}
}
