package api

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/onestack/webhooks/egress"
	"github.com/onestack/webhooks/events"
	"github.com/onestack/webhooks/subscriptions"
)

// bodyTypes are every request body the API decodes.
func bodyTypes() []func() any {
	return []func() any{
		func() any { return new(subscriptions.CreateInput) },
		func() any { return new(subscriptions.PatchInput) },
		func() any { return new(subscriptions.TenantInput) },
		func() any { return new(subscriptions.TenantPatch) },
		func() any { return new(eventInput) },
		func() any {
			return new(struct {
				IDs []string `json:"ids"`
			})
		},
		func() any {
			return new(struct {
				Events []eventInput `json:"events"`
			})
		},
		func() any { return new(events.TypeInput) },
		func() any { return new(events.TypePatch) },
		func() any {
			return new(struct {
				Since  *time.Time `json:"since"`
				Until  *time.Time `json:"until"`
				Status *string    `json:"status"`
			})
		},
	}
}

// FuzzRequestBodies decodes arbitrary bytes as every request body: the
// decoder and the validation rules must never panic, and what decodes must
// encode and decode back to the same value.
func FuzzRequestBodies(f *testing.F) {
	for _, s := range []string{
		`{"url":"https://example.com/h","eventTypes":["ticket.*"],"metadata":{"k":"v"},"secret":"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}`,
		`{"active":true,"eventTypes":["*"]}`,
		`{"name":"acme","rateLimit":100}`,
		`{"type":"ticket.updated","data":{"a":[1,2,{"b":null}]},"id":"evt_1"}`,
		`{"ids":["sub_1","sub_2"]}`,
		`{"events":[{"type":"ticket.updated","data":{}}]}`,
		`{"url":1}`, `[]`, `{"a":1} {"b":2}`, `{"metadata":{"":""}}`,
		`{"url":"https://example.com/h","eventTypes":["ticket.*"],"filter":"data.n > 1","headers":{"X-A":"b"}}`,
		`{"type":"ticket.escalated","description":"d","schema":{"required":["a"]},"example":{"a":1}}`,
		`{"schema":null,"deprecated":true}`, `{"since":"2026-01-01T00:00:00Z","status":"failed"}`,
		`{"name":"acme","limits":{"subscriptions":500,"jobs":null,"eventBytes":1e3}}`, `{"limits":{"eventTypes":1.5,"storedBytes":-1}}`,
		`{"url":"https://example.com/h","eventTypes":["*"],"signatureScheme":"v1a"}`, `{"signatureScheme":"v1a","secret":"whsec_x"}`, `{"signatureScheme":3}`,
		`{"url":"https://example.com/h","eventTypes":["*"],"auth":{"type":"oauth2","tokenUrl":"https://idp.example.com/t","clientId":"c","clientSecret":"s","scopes":["a"],"audience":"x"}}`,
		`{"auth":null}`, `{"auth":{"type":"mtls","certificate":"x","privateKey":"y","caBundle":"z"}}`, `{"auth":{"type":"oauth2","other":1}}`, `{"auth":[]}`,
	} {
		f.Add([]byte(s))
	}
	rules := subscriptions.NewRules(events.DefaultCatalog(), egress.Policy{})
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, mk := range bodyTypes() {
			v := mk()
			if err := decodeBytes(body, v); err != nil {
				if _, ok := err.(*Error); !ok {
					t.Fatalf("decodeBytes(%q) returned %T, want *Error", body, err)
				}
				continue
			}
			_ = rules.Check(v)
			enc, err := json.Marshal(v)
			if err != nil {
				t.Fatalf("re-encode %T: %v", v, err)
			}
			again := mk()
			if err := decodeBytes(enc, again); err != nil {
				t.Fatalf("decode of re-encoded %s: %v", enc, err)
			}
			if !reflect.DeepEqual(normalize(t, v), normalize(t, again)) {
				t.Fatalf("round trip of %q changed %T: %s", body, v, enc)
			}
		}
	})
}

// normalize compares decoded values through their JSON form, so raw JSON
// data compares by meaning, not bytes.
func normalize(t *testing.T, v any) any {
	b, _ := json.Marshal(v)
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// FuzzCursor: any string is safe to decode; every id a page can end on
// round-trips.
func FuzzCursor(f *testing.F) {
	f.Add("djE6c3ViXzAxSkRRNA", "sub_01JDQ4")
	f.Add("", "x")
	f.Add("!!!", "sub_")
	f.Fuzz(func(t *testing.T, cursor, id string) {
		_, _ = decodeCursor(cursor)
		if !events.ValidID(id) {
			return
		}
		got, ok := decodeCursor(encodeCursor(id))
		if !ok || got != id {
			t.Fatalf("decodeCursor(encodeCursor(%q)) = %q, %v", id, got, ok)
		}
	})
}

// FuzzETagHeader: conditional headers never panic, and a list holding the
// tag matches it.
func FuzzETagHeader(f *testing.F) {
	f.Add(`"12", W/"13"`, uint64(12))
	f.Add(`*`, uint64(1))
	f.Add(`,,W/`, uint64(0))
	f.Fuzz(func(t *testing.T, header string, rev uint64) {
		_ = etagMatches(header, etagFor(rev), true)
		if !etagMatches(header+", "+etagFor(rev), etagFor(rev), true) {
			t.Fatalf("etagMatches(%q + own tag) = false", header)
		}
	})
}
