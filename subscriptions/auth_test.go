package subscriptions

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/onestack/webhooks/egress"
	"github.com/onestack/webhooks/endpointauth"
	"github.com/onestack/webhooks/events"
	"github.com/onestack/webhooks/internal/poll"
	"github.com/onestack/webhooks/internal/testpki"
)

// TestAuthRules: "auth" is checked on create and update, its problems
// named auth.<field>.
func TestAuthRules(t *testing.T) {
	r := NewRules(events.DefaultCatalog(), egress.Policy{})
	ca := testpki.NewCA(t, "CA")
	c1, c2 := ca.Client(t, "one", time.Hour), ca.Client(t, "two", time.Hour)
	create := func(a *endpointauth.Config) *CreateInput {
		return &CreateInput{URL: "https://example.com/h", EventTypes: []string{"*"}, Auth: a}
	}
	oauth := &endpointauth.Config{Type: "oauth2", TokenURL: "https://idp.example.com/token", ClientID: "c", ClientSecret: "s"}
	tests := []struct {
		name string
		in   any
		want []string
	}{
		{"none", create(nil), nil},
		{"oauth2", create(oauth), nil},
		{"mtls", create(&endpointauth.Config{Type: "mtls", Certificate: c1.CertPEM, PrivateKey: c1.KeyPEM, CABundle: ca.PEM}), nil},
		{"unknown type", create(&endpointauth.Config{Type: "apikey"}), []string{"auth.type"}},
		{"mismatched key", create(&endpointauth.Config{Type: "mtls", Certificate: c1.CertPEM, PrivateKey: c2.KeyPEM}), []string{"auth.privateKey"}},
		{"bad certificate", create(&endpointauth.Config{Type: "mtls", Certificate: "x", PrivateKey: c1.KeyPEM}), []string{"auth.certificate"}},
		{"token url loopback", create(&endpointauth.Config{Type: "oauth2", TokenURL: "https://127.0.0.1/t", ClientID: "c", ClientSecret: "s"}), []string{"auth.tokenUrl"}},
		{"patch oauth2", &PatchInput{Auth: AuthPatch{Set: true, Value: oauth}}, nil},
		{"patch null", &PatchInput{Auth: AuthPatch{Set: true}}, nil},
		{"patch missing secret", &PatchInput{Auth: AuthPatch{Set: true, Value: &endpointauth.Config{Type: "oauth2", TokenURL: "https://idp.example.com/t", ClientID: "c"}}}, []string{"auth.clientSecret"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			if err := r.Check(tt.in); err != nil {
				for _, f := range err.(*ValidationError).Fields {
					got = append(got, f.Field)
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Check fields (-want +got):\n%s", diff)
			}
		})
	}
}

// TestAuthPatch: an absent auth leaves it, null removes it, an object
// replaces it.
func TestAuthPatch(t *testing.T) {
	cur := &endpointauth.Config{Type: "oauth2", TokenURL: "https://a/t", ClientID: "old", ClientSecret: "s"}
	tests := []struct {
		body string
		want string // clientId left, "" for none
	}{
		{`{}`, "old"},
		{`{"description": "x"}`, "old"},
		{`{"auth": null}`, ""},
		{`{"auth": {"type": "oauth2", "tokenUrl": "https://b/t", "clientId": "new", "clientSecret": "s2"}}`, "new"},
	}
	for _, tt := range tests {
		var p PatchInput
		dec := json.NewDecoder(bytes.NewReader([]byte(tt.body)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&p); err != nil {
			t.Fatalf("decode %s: %v", tt.body, err)
		}
		sub := &Subscription{auth: cur.Prepared()}
		if err := p.Apply(sub); err != nil {
			t.Fatal(err)
		}
		got := ""
		if sub.Auth() != nil {
			got = sub.Auth().ClientID
		}
		if got != tt.want {
			t.Errorf("PATCH %s: clientId %q, want %q", tt.body, got, tt.want)
		}
	}
	var p PatchInput
	dec := json.NewDecoder(strings.NewReader(`{"auth": {"type": "oauth2", "clientSecrets": "x"}}`))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err == nil || !strings.Contains(err.Error(), "unknown field") {
		t.Errorf("decode an unknown auth field = %v, want unknown field", err)
	}
}

// TestAuthStored: the auth and its secrets are kept in the record, read
// back by another replica, and never in the subscription's public JSON.
func TestAuthStored(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a, b, ten := twoReplicas(t)
	ca := testpki.NewCA(t, "CA")
	pair := ca.Client(t, "svc", time.Hour)
	sub, err := a.CreateSubscription(ctx, ten.ID, CreateInput{URL: "https://example.com/h", EventTypes: []string{"*"},
		Auth: &endpointauth.Config{Type: "mtls", Certificate: pair.CertPEM, PrivateKey: pair.KeyPEM}})
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := json.Marshal(sub)
	if bytes.Contains(pub, []byte("PRIVATE KEY")) || bytes.Contains(pub, []byte(`"auth"`)) {
		t.Errorf("public JSON = %s, want no auth", pub)
	}
	poll.Until(t, waitLimit, "the subscription on replica b", func() bool {
		_, ok := b.Index().Subscription(ten.ID, sub.ID)
		return ok
	})
	got, _ := b.Index().Subscription(ten.ID, sub.ID)
	if got.Auth() == nil || got.Auth().PrivateKey != pair.KeyPEM || got.Auth().Fingerprint() != sub.Auth().Fingerprint() {
		t.Fatalf("auth read back on replica b = %v, want the same mtls config", got.Auth())
	}
	if v := got.AuthView(); v == nil || v.Subject != "CN=svc,O=One Stack tests" || v.CertificateExpiresAt == nil {
		t.Errorf("AuthView = %+v, want the certificate's subject and expiry", v)
	}
	updated, err := a.UpdateSubscription(ctx, ten.ID, sub.ID, nil, PatchInput{Auth: AuthPatch{Set: true}}.Apply)
	if err != nil || updated.Auth() != nil {
		t.Fatalf("PATCH auth null = %v, %v; want no auth", updated.Auth(), err)
	}
	poll.Until(t, waitLimit, "the removal on replica b", func() bool {
		s, ok := b.Index().Subscription(ten.ID, sub.ID)
		return ok && s.Auth() == nil
	})
}
