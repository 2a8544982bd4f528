package main

import (
	"strings"
	"testing"
)

// TestSignatureSchemeFlags creates a v1a subscription, reads and rotates
// its public key, and switches it to v1 with --signature-scheme.
func TestSignatureSchemeFlags(t *testing.T) {
	t.Parallel()
	c, rc := startCtl(t)
	var ten struct{ APIKey struct{ Key string } }
	c.json(&ten, "tenants", "create", "--name", "acme")
	c.apiKey = ten.APIKey.Key

	var sub struct{ ID, Secret, PublicKey, SignatureScheme string }
	c.json(&sub, "subscriptions", "create", "--url", rc.URL()+"/h", "--types", "ticket.*", "--signature-scheme", "v1a")
	if sub.SignatureScheme != "v1a" || sub.Secret != "" || !strings.HasPrefix(sub.PublicKey, "whpk_") {
		t.Fatalf("subscriptions create --signature-scheme v1a = %+v", sub)
	}
	var key, rotated struct{ Secret, PublicKey string }
	c.json(&key, "subscriptions", "secret", sub.ID)
	c.json(&rotated, "subscriptions", "rotate-secret", sub.ID)
	if key.PublicKey != sub.PublicKey || !strings.HasPrefix(rotated.PublicKey, "whpk_") || rotated.PublicKey == key.PublicKey {
		t.Errorf("secret %+v, rotated %+v, created with %q", key, rotated, sub.PublicKey)
	}
	if out, _, code := c.run("subscriptions", "get", sub.ID); code != 0 || !strings.Contains(out, "v1a") {
		t.Errorf("subscriptions get = exit %d %q, want the scheme shown", code, out)
	}
	c.json(&sub, "subscriptions", "update", sub.ID, "--signature-scheme", "v1")
	c.json(&key, "subscriptions", "secret", sub.ID)
	if sub.SignatureScheme != "v1" || !strings.HasPrefix(key.Secret, "whsec_") {
		t.Errorf("after update --signature-scheme v1: %+v, secret %+v", sub, key)
	}
	if _, errOut, code := c.run("subscriptions", "update", sub.ID, "--signature-scheme", "v9"); code == 0 || !strings.Contains(errOut, "signatureScheme") {
		t.Errorf("update --signature-scheme v9 = exit %d %q, want a refusal naming signatureScheme", code, errOut)
	}
}
