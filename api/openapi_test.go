package api

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

// TestOpenAPIDocumentsEveryRoute fails when a registered route is missing
// from the OpenAPI document.
func TestOpenAPIDocumentsEveryRoute(t *testing.T) {
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(openapiDoc, &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	if doc.OpenAPI != "3.1.0" {
		t.Errorf("openapi = %q, want 3.1.0", doc.OpenAPI)
	}
	a := &API{}
	routes := append(a.routeTable(), route{method: "GET", pattern: "/metrics"})
	for _, rt := range routes {
		ops, ok := doc.Paths[rt.pattern]
		if !ok {
			t.Errorf("route %s %s: path missing from openapi.json", rt.method, rt.pattern)
			continue
		}
		if _, ok := ops[strings.ToLower(rt.method)]; !ok {
			t.Errorf("route %s %s: method missing from openapi.json", rt.method, rt.pattern)
		}
	}
}

// TestOpenAPIDocumentsTracing: the traceparent header (sent to receivers,
// taken from producers), the subscriptions' sendTraceparent and each
// attempt's traceId are in the document the contract checks answers
// against.
func TestOpenAPIDocumentsTracing(t *testing.T) {
	var doc struct {
		Paths      map[string]map[string]json.RawMessage `json:"paths"`
		Webhooks   map[string]map[string]json.RawMessage `json:"webhooks"`
		Components struct {
			Schemas map[string]struct {
				Properties map[string]json.RawMessage `json:"properties"`
				Required   []string                   `json:"required"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(openapiDoc, &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	for _, c := range []struct {
		schema, property string
		required         bool
	}{
		{"Subscription", "sendTraceparent", true},
		{"SubscriptionCreated", "sendTraceparent", true},
		{"SubscriptionInput", "sendTraceparent", false},
		{"SubscriptionPatch", "sendTraceparent", false},
		{"Attempt", "traceId", true},
	} {
		s := doc.Components.Schemas[c.schema]
		if _, ok := s.Properties[c.property]; !ok {
			t.Errorf("schema %s has no property %s", c.schema, c.property)
		}
		if c.required && !slices.Contains(s.Required, c.property) {
			t.Errorf("schema %s does not require %s", c.schema, c.property)
		}
	}
	has := func(raw json.RawMessage) bool {
		var op operation
		if err := json.Unmarshal(raw, &op); err != nil {
			t.Fatal(err)
		}
		return slices.ContainsFunc(op.Parameters, func(p parameter) bool { return p.Name == "traceparent" && p.In == "header" })
	}
	if !has(doc.Webhooks["event"]["post"]) {
		t.Errorf("the webhook sent to receivers documents no traceparent header")
	}
	for _, path := range []string{"/api/events", "/api/events/batch"} {
		if !has(doc.Paths[path]["post"]) {
			t.Errorf("POST %s documents no traceparent header", path)
		}
	}
}

type operation struct {
	Parameters []parameter `json:"parameters"`
}

type parameter struct {
	Name string `json:"name"`
	In   string `json:"in"`
}
