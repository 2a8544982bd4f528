package subscriptions

import (
	"context"
	"errors"
	"testing"

	"github.com/onestack/webhooks/signature"
)

// TestEnsureOperator: without a url no tenant is made; with one the
// operator's tenant gets its one subscription, for every type, which a
// later start brings to new flags (re-enabled if disabled) and deletes
// when the url is unset.
func TestEnsureOperator(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := openStore(t, startJetStream(t))
	if err := st.EnsureOperator(ctx, "", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Tenant(OperatorTenant); !errors.Is(err, ErrNotFound) {
		t.Fatalf("operator's tenant without a url: %v, want none", err)
	}
	s1, s2 := signature.NewSecret().Reveal(), signature.NewSecret().Reveal()
	if err := st.EnsureOperator(ctx, "https://ops.example.com/a", s1); err != nil {
		t.Fatal(err)
	}
	sub, err := st.LoadSubscription(ctx, OperatorTenant, OperatorSubscription)
	if err != nil || sub.URL != "https://ops.example.com/a" || sub.Secret() != s1 || !sub.Active || len(sub.EventTypes) != 1 || sub.EventTypes[0] != "*" {
		t.Fatalf("operator's subscription = %+v, %v; want the url, the secret, every type, active", sub, err)
	}
	if _, err := st.Disable(ctx, OperatorTenant, OperatorSubscription, "endpoint answered 410 Gone"); err != nil {
		t.Fatal(err)
	}
	if err := st.EnsureOperator(ctx, "https://ops.example.com/b", s2); err != nil {
		t.Fatal(err)
	}
	sub, err = st.LoadSubscription(ctx, OperatorTenant, OperatorSubscription)
	if err != nil || sub.URL != "https://ops.example.com/b" || sub.Secret() != s2 || !sub.Active || sub.DisabledReason != "" {
		t.Fatalf("operator's subscription after new flags = %+v, %v; want the new url and secret, active", sub, err)
	}
	rev := sub.Revision
	if err := st.EnsureOperator(ctx, "https://ops.example.com/b", s2); err != nil {
		t.Fatal(err)
	}
	if sub, _ := st.LoadSubscription(ctx, OperatorTenant, OperatorSubscription); sub.Revision != rev {
		t.Errorf("the same flags again wrote the subscription (revision %d, was %d)", sub.Revision, rev)
	}
	if err := st.EnsureOperator(ctx, "", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := st.LoadSubscription(ctx, OperatorTenant, OperatorSubscription); !errors.Is(err, ErrNotFound) {
		t.Errorf("operator's subscription with the url unset: %v, want deleted", err)
	}
}
