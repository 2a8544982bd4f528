package api

import (
	"encoding/json"
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
