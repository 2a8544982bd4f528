package subscriptions

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/onestack/webhooks/egress"
	"github.com/onestack/webhooks/events"
	"github.com/onestack/webhooks/signature"
)

func TestSignatureSchemeRules(t *testing.T) {
	r := NewRules(events.DefaultCatalog(), egress.Policy{})
	url, types := "https://example.com/h", []string{"*"}
	tests := []struct {
		name string
		in   any
		want []string
	}{
		{"v1", &CreateInput{URL: url, EventTypes: types, SignatureScheme: ptr("v1")}, nil},
		{"v1a", &CreateInput{URL: url, EventTypes: types, SignatureScheme: ptr("v1a")}, nil},
		{"unknown", &CreateInput{URL: url, EventTypes: types, SignatureScheme: ptr("v2")}, []string{"signatureScheme"}},
		{"empty", &CreateInput{URL: url, EventTypes: types, SignatureScheme: ptr("")}, []string{"signatureScheme"}},
		{"v1a with a secret", &CreateInput{URL: url, EventTypes: types, SignatureScheme: ptr("v1a"), Secret: ptr(signature.NewSecret().Reveal())}, []string{"secret"}},
		{"patch v1a", &PatchInput{SignatureScheme: ptr("v1a")}, nil},
		{"patch unknown", &PatchInput{SignatureScheme: ptr("ed25519")}, []string{"signatureScheme"}},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, fieldsOf(t, r.Check(tt.in))); diff != "" {
			t.Errorf("Check(%s) fields (-want +got):\n%s", tt.name, diff)
		}
	}
}

// schemesOf lists the schemes of the keys signing sub at now, current first.
func schemesOf(sub *Subscription, now time.Time) []string {
	var out []string
	for _, k := range sub.SigningSecrets(now) {
		out = append(out, k.Scheme())
	}
	return out
}

func TestSignatureSchemeKeys(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := openStore(t, startJetStream(t))
	ten, _, _, err := st.CreateTenant(ctx, TenantInput{Name: "acme"})
	if err != nil {
		t.Fatalf("CreateTenant: %v", err)
	}
	sub, err := st.CreateSubscription(ctx, ten.ID, CreateInput{URL: "https://example.com/h", EventTypes: []string{"*"}, SignatureScheme: ptr("v1a")})
	if err != nil {
		t.Fatalf("CreateSubscription: %v", err)
	}
	now := time.Now()
	if sub.Scheme() != "v1a" || sub.Secret() != "" || !strings.HasPrefix(sub.PublicKey(), "whpk_") || sub.Revealed() != sub.PublicKey() {
		t.Fatalf("v1a subscription: scheme %q, secret %q, public key %q; want v1a, none, whpk_", sub.Scheme(), sub.Secret(), sub.PublicKey())
	}
	if diff := cmp.Diff([]string{"v1a"}, schemesOf(&sub, now)); diff != "" {
		t.Errorf("signing keys (-want +got):\n%s", diff)
	}

	pub, err := st.RotateSecret(ctx, ten.ID, sub.ID)
	if err != nil {
		t.Fatalf("RotateSecret: %v", err)
	}
	rotated, _ := st.IndexedSubscription(ten.ID, sub.ID)
	if pub == sub.PublicKey() || pub != rotated.PublicKey() {
		t.Errorf("RotateSecret = %q, subscription's key now %q, before %q; want a new public key", pub, rotated.PublicKey(), sub.PublicKey())
	}
	if diff := cmp.Diff([]string{"v1a", "v1a"}, schemesOf(&rotated, now)); diff != "" {
		t.Errorf("signing keys after rotation (-want +got):\n%s", diff)
	}
	if got := schemesOf(&rotated, now.Add(25*time.Hour)); len(got) != 1 {
		t.Errorf("signing keys past the overlap = %v, want the current one", got)
	}

	back, err := st.UpdateSubscription(ctx, ten.ID, sub.ID, nil, PatchInput{SignatureScheme: ptr("v1")}.Apply)
	if err != nil {
		t.Fatalf("UpdateSubscription(v1): %v", err)
	}
	if back.Scheme() != "v1" || !strings.HasPrefix(back.Secret(), "whsec_") || back.PublicKey() != "" {
		t.Errorf("switched to v1: scheme %q, secret %q, public key %q; want v1, whsec_, none", back.Scheme(), back.Secret(), back.PublicKey())
	}
	if diff := cmp.Diff([]string{"v1", "v1a", "v1a"}, schemesOf(&back, now)); diff != "" {
		t.Errorf("signing keys after the switch (-want +got):\n%s", diff)
	}
	same, err := st.UpdateSubscription(ctx, ten.ID, sub.ID, nil, PatchInput{SignatureScheme: ptr("v1")}.Apply)
	if err != nil || same.Secret() != back.Secret() {
		t.Errorf("PATCH to the scheme it has: secret %q, %v; want unchanged %q", same.Secret(), err, back.Secret())
	}
}
