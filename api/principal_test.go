package api

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/onestack/webhooks/egress"
	"github.com/onestack/webhooks/events"
	"github.com/onestack/webhooks/internal/natstest"
	"github.com/onestack/webhooks/subscriptions"
)

// TestPrincipal serves tenant routes as a Principal a trusted caller
// attached: the tenant and, when named, its key must still stand.
func TestPrincipal(t *testing.T) {
	_, js := natstest.Start(t, natstest.Options{}).Connect(t)
	ctx := context.Background()
	store, err := subscriptions.Open(ctx, js, subscriptions.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(store.Close)
	a := New(Config{Store: store, Rules: subscriptions.NewRules(events.DefaultCatalog(), egress.Policy{}), Registry: prometheus.NewRegistry()})
	acme, _, acmeKey, err := store.CreateTenant(ctx, subscriptions.TenantInput{Name: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	other, _, otherKey, _ := store.CreateTenant(ctx, subscriptions.TenantInput{Name: "other"})
	_, revoked, _ := store.CreateKey(ctx, acme.ID)
	if err := store.RevokeKey(ctx, acme.ID, revoked.ID); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		p    *Principal
		want int
	}{
		{"the tenant", &Principal{Tenant: acme.ID}, 200},
		{"the tenant and its live key", &Principal{Tenant: acme.ID, KeyID: acmeKey.ID}, 200},
		{"a revoked key", &Principal{Tenant: acme.ID, KeyID: revoked.ID}, 401},
		{"another tenant's key", &Principal{Tenant: acme.ID, KeyID: otherKey.ID}, 401},
		{"an unknown tenant", &Principal{Tenant: "ten_nope"}, 401},
		{"an empty principal", &Principal{}, 401},
		{"none and no key", nil, 401},
		{"the other tenant", &Principal{Tenant: other.ID}, 200},
	}
	for _, tt := range tests {
		r := httptest.NewRequest("GET", "/api/subscriptions", nil)
		if tt.p != nil {
			r = r.WithContext(AsTenant(r.Context(), *tt.p))
		}
		w := httptest.NewRecorder()
		a.ServeHTTP(w, r)
		if w.Code != tt.want {
			t.Errorf("%s: GET /api/subscriptions = %d %s, want %d", tt.name, w.Code, w.Body, tt.want)
		}
	}
	// A principal does not open the operator API.
	r := httptest.NewRequest("GET", "/admin/tenants", nil)
	w := httptest.NewRecorder()
	a.ServeHTTP(w, r.WithContext(AsTenant(r.Context(), Principal{Tenant: acme.ID})))
	if w.Code != http.StatusNotFound {
		t.Errorf("operator API with a principal and no admin token configured = %d, want 404", w.Code)
	}
}
