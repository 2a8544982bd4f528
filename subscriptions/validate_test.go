package subscriptions

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/onestack/webhooks/egress"
	"github.com/onestack/webhooks/events"
	"github.com/onestack/webhooks/limits"
)

func ptr[T any](v T) *T { return &v }

func TestRulesCheck(t *testing.T) {
	r := NewRules(events.DefaultCatalog(), egress.Policy{})
	tests := []struct {
		name string
		in   any
		want []string // field paths
	}{
		{"valid", &CreateInput{URL: "https://example.com/h", EventTypes: []string{"ticket.updated", "board.*", "*"}}, nil},
		{"missing all", &CreateInput{}, []string{"url", "eventTypes"}},
		{"bad type", &CreateInput{URL: "https://example.com/h", EventTypes: []string{"ticket.updated", "nope"}}, []string{"eventTypes[1]"}},
		{"bad family", &CreateInput{URL: "https://example.com/h", EventTypes: []string{"nope.*"}}, []string{"eventTypes[0]"}},
		{"duplicate", &CreateInput{URL: "https://example.com/h", EventTypes: []string{"ticket.updated", "ticket.updated"}}, []string{"eventTypes"}},
		{"http", &CreateInput{URL: "http://example.com/h", EventTypes: []string{"*"}}, []string{"url"}},
		{"loopback", &CreateInput{URL: "https://127.0.0.1/h", EventTypes: []string{"*"}}, []string{"url"}},
		{"long description", &CreateInput{URL: "https://example.com/h", EventTypes: []string{"*"}, Description: strings.Repeat("x", 501)}, []string{"description"}},
		{"metadata key", &CreateInput{URL: "https://example.com/h", EventTypes: []string{"*"}, Metadata: map[string]string{strings.Repeat("k", 41): "v"}}, []string{"metadata[" + strings.Repeat("k", 41) + "]"}},
		{"bad secret", &CreateInput{URL: "https://example.com/h", EventTypes: []string{"*"}, Secret: ptr("whsec_short")}, []string{"secret"}},
		{"patch ok", &PatchInput{Active: ptr(true)}, nil},
		{"patch empty types", &PatchInput{EventTypes: &[]string{}}, []string{"eventTypes"}},
		{"no pace", &CreateInput{URL: "https://example.com/h", EventTypes: []string{"*"}, RateLimit: ptr(0.0)}, nil},
		{"slowest pace", &CreateInput{URL: "https://example.com/h", EventTypes: []string{"*"}, RateLimit: ptr(0.01)}, nil},
		{"pace under the floor", &CreateInput{URL: "https://example.com/h", EventTypes: []string{"*"}, RateLimit: ptr(0.0001)}, []string{"rateLimit"}},
		{"negative pace", &CreateInput{URL: "https://example.com/h", EventTypes: []string{"*"}, RateLimit: ptr(-1.0)}, []string{"rateLimit"}},
		{"pace too fast", &CreateInput{URL: "https://example.com/h", EventTypes: []string{"*"}, RateLimit: ptr(10_001.0)}, []string{"rateLimit"}},
		{"patch pace under the floor", &PatchInput{RateLimit: ptr(0.009)}, []string{"rateLimit"}},
		{"patch pace removed", &PatchInput{RateLimit: ptr(0.0)}, nil},
		{"tenant limit", &TenantInput{Name: "acme", RateLimit: ptr(0)}, []string{"rateLimit"}},
		{"tenant limit high", &TenantPatch{RateLimit: ptr(1_000_001)}, []string{"rateLimit"}},
		{"tenant limits", &TenantPatch{Limits: &limits.Patch{Subscriptions: limits.Set(500), Jobs: limits.Reset()}}, nil},
		{"tenant limits out of bounds", &TenantPatch{Limits: &limits.Patch{Subscriptions: limits.Set(0), EventBytes: limits.Set(1 << 20)}},
			[]string{"limits.subscriptions", "limits.eventBytes"}},
		{"tenant limits at creation", &TenantInput{Name: "acme", Limits: &limits.Patch{Jobs: limits.Set(1001)}}, []string{"limits.jobs"}},
		{"rate limit twice, the same", &TenantPatch{RateLimit: ptr(300), Limits: &limits.Patch{RequestsPerMinute: limits.Set(300)}}, nil},
		{"rate limit twice, different", &TenantPatch{RateLimit: ptr(300), Limits: &limits.Patch{RequestsPerMinute: limits.Set(200)}}, []string{"limits.requestsPerMinute"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := r.Check(tt.in)
			var got []string
			if err != nil {
				ve, ok := err.(*ValidationError)
				if !ok {
					t.Fatalf("Check = %T %v, want *ValidationError", err, err)
				}
				for _, f := range ve.Fields {
					if f.Reason == "" {
						t.Errorf("field %s has no reason", f.Field)
					}
					got = append(got, f.Field)
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Check(%s) fields (-want +got):\n%s", tt.name, diff)
			}
		})
	}
}

// TestPaceFloorReason: a pace under the floor is refused, once, with a
// reason naming the floor.
func TestPaceFloorReason(t *testing.T) {
	r := NewRules(events.DefaultCatalog(), egress.Policy{})
	err := r.Check(&PatchInput{RateLimit: ptr(0.0001)})
	ve, ok := err.(*ValidationError)
	if !ok || len(ve.Fields) != 1 {
		t.Fatalf("Check(rateLimit 0.0001) = %v, want one field", err)
	}
	if f := ve.Fields[0]; f.Field != "rateLimit" || !strings.Contains(f.Reason, "0.01") {
		t.Errorf("Check(rateLimit 0.0001) = %+v, want rateLimit with a reason naming the floor, 0.01", f)
	}
}

func TestKeysAndSecretsNeverLogged(t *testing.T) {
	var buf strings.Builder
	logger := slog.New(slog.NewTextHandler(&buf, nil))
	key, _ := newKey("ten_1", time.Now())
	logger.Info("issued", "key", key)
	if strings.Contains(buf.String(), string(key)) || !strings.Contains(buf.String(), "REDACTED") {
		t.Errorf("log line = %q, want the key REDACTED", buf.String())
	}
	if fmt.Sprint(key) != "REDACTED" {
		t.Errorf("fmt.Sprint(key) = %q, want REDACTED", fmt.Sprint(key))
	}
}
