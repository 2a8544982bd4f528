package events

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/onestack/webhooks/internal/natstest"
	"github.com/onestack/webhooks/internal/poll"
)

const ticketSchema = `{
  "type": "object",
  "required": ["ticketId", "status"],
  "properties": {
    "ticketId": {"type": "string", "pattern": "^T-[0-9]+$"},
    "status": {"enum": ["open", "pending", "resolved", "closed"]},
    "priority": {"enum": ["low", "normal", "high"]},
    "dueAt": {"type": "string", "format": "date-time"},
    "tags": {"type": "array", "items": {"type": "string", "maxLength": 10}}
  }
}`

func fields(problems []*FieldError) []string {
	var out []string
	for _, p := range problems {
		if p.Err == nil || p.Err.Error() == "" {
			out = append(out, p.Field+" (no reason)")
			continue
		}
		out = append(out, p.Field)
	}
	return out
}

func TestCompileSchema(t *testing.T) {
	tests := []struct {
		name   string
		schema string
		want   []string // fields of the problems
	}{
		{"valid", ticketSchema, nil},
		{"dialect named", `{"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object"}`, nil},
		{"empty object", `{}`, nil},
		{"not an object", `[1, 2]`, []string{"schema"}},
		{"not JSON", `{"type": `, []string{"schema"}},
		{"boolean schema", `true`, []string{"schema"}},
		{"other draft", `{"$schema": "http://json-schema.org/draft-07/schema#"}`, []string{"schema/$schema"}},
		{"bad keyword value", `{"type": 5}`, []string{"schema/type"}},
		{"nested bad keyword", `{"properties": {"a": {"minLength": -1}}}`, []string{"schema/properties/a/minLength"}},
		{"remote ref", `{"$ref": "https://example.com/s.json"}`, []string{"schema"}},
		{"file ref", `{"$ref": "file:///etc/passwd"}`, []string{"schema"}},
		{"relative ref", `{"$ref": "other.json"}`, []string{"schema"}},
		{"bad pattern", `{"pattern": "("}`, []string{"schema/pattern"}},
		{"too large", `{"description": "` + strings.Repeat("x", MaxSchemaBytes) + `"}`, []string{"schema"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, problems := CompileSchema(json.RawMessage(tt.schema))
			if diff := cmp.Diff(tt.want, fields(problems)); diff != "" {
				t.Errorf("CompileSchema(%.60s) problems (-want +got):\n%s\n%v", tt.schema, diff, problems)
			}
			if (s == nil) != (len(tt.want) > 0) {
				t.Errorf("CompileSchema(%.60s) = %v, want a schema only without problems", tt.schema, s)
			}
		})
	}
}

func TestSchemaCheck(t *testing.T) {
	s, problems := CompileSchema(json.RawMessage(ticketSchema))
	if problems != nil {
		t.Fatal(problems)
	}
	tests := []struct {
		name, data string
		want       []string
	}{
		{"valid", `{"ticketId": "T-1", "status": "open", "priority": "high", "dueAt": "2026-01-02T03:04:05Z", "extra": 1}`, nil},
		{"missing two", `{"priority": "high"}`, []string{"data/status", "data/ticketId"}},
		{"wrong type and enum", `{"ticketId": 7, "status": "lost"}`, []string{"data/status", "data/ticketId"}},
		{"format asserted", `{"ticketId": "T-1", "status": "open", "dueAt": "tomorrow"}`, []string{"data/dueAt"}},
		{"array item", `{"ticketId": "T-1", "status": "open", "tags": ["ok", "much too long a tag"]}`, []string{"data/tags/1"}},
		{"escaped pointer", `{"ticketId": "T-1", "status": "open", "priority": "x"}`, []string{"data/priority"}},
		{"not JSON", `{"ticketId": `, []string{"data"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, fields(s.Check(json.RawMessage(tt.data)))); diff != "" {
				t.Errorf("Check(%s) (-want +got):\n%s", tt.data, diff)
			}
		})
	}
	slash, _ := CompileSchema(json.RawMessage(`{"required": ["a/b", "c~d"]}`))
	if diff := cmp.Diff([]string{"data/a~1b", "data/c~0d"}, fields(slash.Check(json.RawMessage(`{}`)))); diff != "" {
		t.Errorf("pointers of names with / and ~ (-want +got):\n%s", diff)
	}
}

func TestTypeInputProblems(t *testing.T) {
	tests := []struct {
		name string
		in   TypeInput
		want []string
	}{
		{"valid", TypeInput{Type: "ticket.escalated", Description: "d", Schema: json.RawMessage(ticketSchema), Example: json.RawMessage(`{"ticketId": "T-9", "status": "open"}`)}, nil},
		{"null schema", TypeInput{Type: "ticket.escalated", Description: "d", Schema: json.RawMessage(`null`)}, nil},
		{"no name", TypeInput{Description: "d"}, []string{"type"}},
		{"one segment", TypeInput{Type: "ticket", Description: "d"}, []string{"type"}},
		{"wildcard", TypeInput{Type: "ticket.*", Description: "d"}, []string{"type"}},
		{"upper case", TypeInput{Type: "Ticket.x", Description: "d"}, []string{"type"}},
		{"subject breaker", TypeInput{Type: "ticket.a>b", Description: "d"}, []string{"type"}},
		{"reserved family", TypeInput{Type: "delivery.retried", Description: "d"}, []string{"type"}},
		{"too long", TypeInput{Type: "a." + strings.Repeat("b", MaxTypeLen), Description: "d"}, []string{"type"}},
		{"no description", TypeInput{Type: "a.b"}, []string{"description"}},
		{"example off schema", TypeInput{Type: "a.b", Description: "d", Schema: json.RawMessage(ticketSchema), Example: json.RawMessage(`{"ticketId": "x"}`)}, []string{"example/status", "example/ticketId"}},
		{"example not an object", TypeInput{Type: "a.b", Description: "d", Example: json.RawMessage(`"x"`)}, []string{"example"}},
		{"bad schema", TypeInput{Type: "a.b", Description: "d", Schema: json.RawMessage(`{"type": "nope"}`)}, []string{"schema/type"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, fields(tt.in.Problems())); diff != "" {
				t.Errorf("Problems(%+v) (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}

func openRegistry(t *testing.T, s *natstest.Server) *Registry {
	t.Helper()
	_, js := s.Connect(t)
	r, err := OpenRegistry(context.Background(), js, RegistryConfig{}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

// TestRegistry registers, changes and deprecates types on one replica and
// sees each change on another through its watch.
func TestRegistry(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := natstest.Start(t, natstest.Options{})
	a, b := openRegistry(t, srv), openRegistry(t, srv)

	if got := len(a.Catalog()); got != len(DefaultCatalog()) {
		t.Fatalf("fresh registry has %d types, want the %d built-in ones", got, len(DefaultCatalog()))
	}
	typ, err := a.Create(ctx, TypeInput{Type: "ticket.escalated", Description: "A ticket was escalated.", Schema: json.RawMessage(ticketSchema)})
	if err != nil {
		t.Fatal(err)
	}
	if typ.Type != "ticket.escalated" || typ.compiled == nil {
		t.Fatalf("Create = %+v, want the type with its compiled schema", typ)
	}
	if _, err := a.Create(ctx, TypeInput{Type: "ticket.escalated", Description: "again"}); !errors.Is(err, ErrTypeExists) {
		t.Errorf("Create twice = %v, want ErrTypeExists", err)
	}
	if _, err := a.Create(ctx, TypeInput{Type: "ticket.updated", Description: "a built-in"}); !errors.Is(err, ErrTypeExists) {
		t.Errorf("Create of a built-in = %v, want ErrTypeExists", err)
	}
	var ve *ValidationError
	if _, err := a.Create(ctx, TypeInput{Type: "x", Description: ""}); !errors.As(err, &ve) || len(ve.Problems) != 2 {
		t.Errorf("Create of a bad input = %v, want a ValidationError with two problems", err)
	}

	poll.Until(t, 30*time.Second, "the other replica sees the new type", func() bool { return b.Catalog().Has("ticket.escalated") })
	bad := Event{ID: "evt_1", TenantID: "ten_1", Type: "ticket.escalated", Data: json.RawMessage(`{"ticketId": "T-1"}`)}
	if diff := cmp.Diff([]string{"data/status"}, fields(bad.Problems(b.Catalog()))); diff != "" {
		t.Errorf("problems of an event failing the schema, on the other replica (-want +got):\n%s", diff)
	}

	// A built-in gains a schema, then is deprecated.
	if _, err := a.Update(ctx, "board.updated", TypePatch{Schema: json.RawMessage(`{"required": ["boardId"]}`)}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Deprecate(ctx, "board.updated"); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 30*time.Second, "the other replica sees board.updated deprecated", func() bool { return b.Catalog().Deprecated("board.updated") })
	got, _ := b.Catalog().Lookup("board.updated")
	if got.Description != "A board's configuration changed." || string(got.Schema) != `{"required":["boardId"]}` {
		t.Errorf("board.updated = %+v, want its description kept and the schema added", got)
	}
	if !b.Catalog().ValidPattern("board.updated") {
		t.Error("a deprecated type is no longer a known pattern; it must stay deliverable")
	}
	// Removing the schema and the deprecation.
	no := false
	if _, err := a.Update(ctx, "board.updated", TypePatch{Schema: json.RawMessage(`null`), Deprecated: &no}); err != nil {
		t.Fatal(err)
	}
	got, _ = a.Catalog().Lookup("board.updated")
	if got.Deprecated || got.Schema != nil || got.compiled != nil {
		t.Errorf("after removing schema and deprecation: %+v", got)
	}

	if _, err := a.Update(ctx, TypeWebhookTest, TypePatch{Deprecated: &no}); !errors.As(err, &ve) {
		t.Errorf("Update of an internal type = %v, want a ValidationError", err)
	}
	if _, err := a.Update(ctx, "ticket.nope", TypePatch{}); !errors.Is(err, ErrTypeNotFound) {
		t.Errorf("Update of an unknown type = %v, want ErrTypeNotFound", err)
	}
	if _, err := a.Update(ctx, "ticket.escalated", TypePatch{Example: json.RawMessage(`{"ticketId": 1}`)}); !errors.As(err, &ve) {
		t.Errorf("Update with an example off the schema = %v, want a ValidationError", err)
	}

	// Order: built-ins first, then registered ones by name.
	if _, err := a.Create(ctx, TypeInput{Type: "asset.created", Description: "An asset."}); err != nil {
		t.Fatal(err)
	}
	cat := a.Catalog()
	n := len(DefaultCatalog())
	if cat[n].Type != "asset.created" || cat[n+1].Type != "ticket.escalated" || cat[0].Type != DefaultCatalog()[0].Type {
		t.Errorf("catalog order: %v", cat)
	}
}

// TestRegistryRestart: a registry opened again reads what was registered.
func TestRegistryRestart(t *testing.T) {
	t.Parallel()
	srv := natstest.Start(t, natstest.Options{})
	a := openRegistry(t, srv)
	if _, err := a.Create(context.Background(), TypeInput{Type: "ticket.merged", Description: "Two tickets merged.", Schema: json.RawMessage(ticketSchema)}); err != nil {
		t.Fatal(err)
	}
	a.Close()
	b := openRegistry(t, srv)
	typ, ok := b.Catalog().Lookup("ticket.merged")
	if !ok || typ.compiled == nil {
		t.Fatalf("reopened registry: ticket.merged = %+v, %v; want it with its schema", typ, ok)
	}
}

// TestPublisherChecksSchemas: a publisher with the registry refuses data
// that fails its type's schema on both of its paths, and publishes the
// rest.
func TestPublisherChecksSchemas(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := natstest.Start(t, natstest.Options{})
	_, js := srv.Connect(t)
	if _, err := EnsureStream(ctx, js, StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	reg := openRegistry(t, srv)
	if _, err := reg.Create(ctx, TypeInput{Type: "ticket.escalated", Description: "d", Schema: json.RawMessage(ticketSchema)}); err != nil {
		t.Fatal(err)
	}
	pub := NewPublisher(js, PublisherConfig{}).WithTypes(reg)
	mk := func(typ, data string) Event {
		return Event{ID: NewID(), Type: typ, TenantID: "ten_1", OccurredAt: time.Now(), Data: json.RawMessage(data)}
	}
	good, bad := mk("ticket.escalated", `{"ticketId": "T-1", "status": "open"}`), mk("ticket.escalated", `{"ticketId": "T-1"}`)
	var ve *ValidationError
	err := pub.PublishEvents(ctx, false, good, bad)
	if !errors.As(err, &ve) || len(ve.Problems) != 1 || ve.Problems[0].Field != "events[1].data/status" {
		t.Fatalf("PublishEvents(good, bad) = %v, want one problem at events[1].data/status", err)
	}
	if err := pub.PublishEvents(ctx, false, good, mk("ticket.updated", `{"anything": true}`)); err != nil {
		t.Errorf("PublishEvents of valid events = %v", err)
	}
	if err := pub.Publish(Subject("ten_1", bad.Type), NewMessage(bad)); !errors.As(err, &ve) {
		t.Errorf("Watermill Publish of bad data = %v, want a ValidationError", err)
	}
	if err := pub.Publish(Subject("ten_1", good.Type), NewMessage(good)); err != nil {
		t.Errorf("Watermill Publish of good data = %v", err)
	}
	if err := NewPublisher(js, PublisherConfig{}).PublishEvents(ctx, false, bad); err != nil {
		t.Errorf("a publisher without types checked data: %v", err)
	}
}

// FuzzTypeInput feeds arbitrary registrations to the checks: they never
// panic, and an input they accept compiles, and its example passes its
// own schema.
func FuzzTypeInput(f *testing.F) {
	f.Add("ticket.escalated", "d", ticketSchema, `{"ticketId": "T-1", "status": "open"}`)
	f.Add("a.b", "d", `{"$ref": "#/$defs/x", "$defs": {"x": {"type": "object"}}}`, `{}`)
	f.Add("a.b", "d", `{"$ref": "#"}`, `{}`)
	f.Add("a.b", "d", `{"pattern": "(a+)+$"}`, ``)
	f.Add("a..b", "", `[]`, `"x"`)
	f.Fuzz(func(t *testing.T, name, descr, schema, example string) {
		in := TypeInput{Type: name, Description: descr, Schema: json.RawMessage(schema), Example: json.RawMessage(example)}
		if len(in.Problems()) > 0 {
			return
		}
		if !ValidTypeName(name) {
			t.Fatalf("accepted type name %q", name)
		}
		in.Schema, in.Example = present(in.Schema), present(in.Example)
		if len(in.Schema) == 0 {
			return
		}
		s, problems := CompileSchema(in.Schema)
		if len(problems) > 0 {
			t.Fatalf("accepted schema %q does not compile: %v", schema, problems)
		}
		if len(in.Example) > 0 {
			if p := s.Check(in.Example); len(p) > 0 {
				t.Fatalf("accepted example %q fails its schema: %v", example, p)
			}
		}
	})
}

// BenchmarkSchemaCheck is what a schema adds to publishing one event:
// validating a typical ticket's data, next to the check every event gets
// (well-formed JSON object).
func BenchmarkSchemaCheck(b *testing.B) {
	data := json.RawMessage(`{"ticketId": "T-1042", "status": "pending", "priority": "high", "dueAt": "2026-11-30T10:00:00Z", "tags": ["vip", "billing"], "subject": "Invoice shows the wrong VAT rate", "assignee": "u-17"}`)
	s, problems := CompileSchema(json.RawMessage(ticketSchema))
	if problems != nil {
		b.Fatal(problems)
	}
	b.Run("type-only", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if !validData(data) {
				b.Fatal("invalid")
			}
		}
	})
	b.Run("schema", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if !validData(data) || len(s.Check(data)) > 0 {
				b.Fatal("invalid")
			}
		}
	})
}
