package testenv_test

import (
	"crypto/ed25519"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/onestack/webhooks/signature"
	"github.com/onestack/webhooks/testenv"
)

// verifyV1a checks a delivery's webhook-signature with a "whpk_" public
// key as a receiver without this project would: crypto/ed25519 over
// "<webhook-id>.<webhook-timestamp>.<body>", any v1a entry enough.
func verifyV1a(publicKey, id, ts, header string, body []byte) bool {
	raw, ok := strings.CutPrefix(publicKey, "whpk_")
	if !ok {
		return false
	}
	key, err := base64.StdEncoding.DecodeString(raw)
	if err != nil || len(key) != ed25519.PublicKeySize {
		return false
	}
	msg := []byte(id + "." + ts + "." + string(body))
	for _, entry := range strings.Fields(header) {
		sig, ok := strings.CutPrefix(entry, "v1a,")
		if !ok {
			continue
		}
		if b, err := base64.StdEncoding.DecodeString(sig); err == nil && ed25519.Verify(key, msg, b) {
			return true
		}
	}
	return false
}

// TestV1aSignatures creates a subscription signed with Ed25519, verifies
// its webhooks with the public key read from GET .../secret, rotates the
// key pair (both keys sign through the overlap), and switches it to v1
// and back by PATCH.
func TestV1aSignatures(t *testing.T) {
	t.Parallel()
	env, ten := setup(t, testenv.Options{})
	rc := receiver(t)
	base := "/api/subscriptions/"

	r, _ := env.Do("POST", base[:len(base)-1], ten.APIKey, map[string]any{"url": rc.URL(), "eventTypes": []string{"ticket.*"}, "signatureScheme": "v1a"})
	var created struct {
		ID, SignatureScheme, PublicKey string
		Secret                         *string
	}
	r.JSON(&created)
	if r.Status != 201 || created.SignatureScheme != "v1a" || !strings.HasPrefix(created.PublicKey, "whpk_") || created.Secret != nil {
		t.Fatalf("create v1a = %d %s; want 201 with signatureScheme v1a, a whpk_ publicKey and no secret", r.Status, r.Body)
	}
	if strings.Contains(string(r.Body), "whsk_") {
		t.Errorf("create answer holds a private key: %s", r.Body)
	}
	r, _ = env.Do("GET", base+created.ID+"/secret", ten.APIKey, nil)
	var secret struct{ PublicKey, Secret string }
	r.JSON(&secret)
	if r.Status != 200 || secret.PublicKey != created.PublicKey || secret.Secret != "" {
		t.Fatalf("GET secret = %d %s; want {\"publicKey\": %q}", r.Status, r.Body, created.PublicKey)
	}
	r, _ = env.Do("GET", base+created.ID, ten.APIKey, nil)
	if !strings.Contains(string(r.Body), `"signatureScheme":"v1a"`) || strings.Contains(string(r.Body), "whpk_") || strings.Contains(string(r.Body), "whsk_") {
		t.Errorf("GET subscription = %s; want signatureScheme v1a and no key", r.Body)
	}

	publish(t, env, ten, "ticket.updated")
	got := rc.WaitFor(1, 30*time.Second)
	if len(got) != 1 {
		t.Fatalf("got %d webhooks, want 1", len(got))
	}
	w := got[0]
	if !strings.HasPrefix(w.Signature, "v1a,") || len(strings.Fields(w.Signature)) != 1 {
		t.Errorf("webhook-signature = %q, want one v1a entry", w.Signature)
	}
	if !verifyV1a(secret.PublicKey, w.ID, w.Timestamp, w.Signature, w.Body) {
		t.Errorf("ed25519 verify with the subscription's public key failed: %q", w.Signature)
	}
	if verifyV1a(signature.NewSigningKey().PublicKey().String(), w.ID, w.Timestamp, w.Signature, w.Body) {
		t.Errorf("another public key verified the webhook")
	}

	r, _ = env.Do("POST", base+created.ID+"/rotate-secret", ten.APIKey, nil)
	var rotated struct{ PublicKey, Secret string }
	r.JSON(&rotated)
	if r.Status != 200 || !strings.HasPrefix(rotated.PublicKey, "whpk_") || rotated.PublicKey == created.PublicKey || rotated.Secret != "" {
		t.Fatalf("rotate = %d %s; want a new publicKey", r.Status, r.Body)
	}
	publish(t, env, ten, "ticket.updated")
	got = rc.WaitFor(2, 30*time.Second)
	if len(got) != 2 {
		t.Fatalf("got %d webhooks, want 2", len(got))
	}
	w = got[1]
	if n := len(strings.Fields(w.Signature)); n != 2 {
		t.Errorf("webhook-signature after rotation has %d entries, want 2: %q", n, w.Signature)
	}
	for name, k := range map[string]string{"old": created.PublicKey, "new": rotated.PublicKey} {
		if !verifyV1a(k, w.ID, w.Timestamp, w.Signature, w.Body) {
			t.Errorf("verify with the %s public key alone failed: %q", name, w.Signature)
		}
	}

	// Switch to v1: a fresh whsec_ secret signs, and the v1a keys keep
	// signing through the overlap.
	r, _ = env.Do("PATCH", base+created.ID, ten.APIKey, map[string]any{"signatureScheme": "v1"})
	if r.Status != 200 || !strings.Contains(string(r.Body), `"signatureScheme":"v1"`) {
		t.Fatalf("PATCH signatureScheme v1 = %d %s", r.Status, r.Body)
	}
	r, _ = env.Do("GET", base+created.ID+"/secret", ten.APIKey, nil)
	var v1 struct{ PublicKey, Secret string }
	r.JSON(&v1)
	if r.Status != 200 || !strings.HasPrefix(v1.Secret, "whsec_") || v1.PublicKey != "" {
		t.Fatalf("GET secret after the switch to v1 = %d %s; want a whsec_ secret", r.Status, r.Body)
	}
	publish(t, env, ten, "ticket.updated")
	got = rc.WaitFor(3, 30*time.Second)
	if len(got) != 3 {
		t.Fatalf("got %d webhooks, want 3", len(got))
	}
	w = got[2]
	sec, err := signature.ParseSecret(v1.Secret)
	if err != nil {
		t.Fatal(err)
	}
	if err := (signature.Verifier{Secrets: []signature.Secret{sec}}).Verify(w.ID, w.Timestamp, w.Signature, w.Body); err != nil {
		t.Errorf("verify with the new v1 secret after the switch: %v (%q)", err, w.Signature)
	}
	if !verifyV1a(rotated.PublicKey, w.ID, w.Timestamp, w.Signature, w.Body) {
		t.Errorf("the v1a key stopped signing at the switch, within its overlap: %q", w.Signature)
	}

	// And back to v1a: a new key pair.
	r, _ = env.Do("PATCH", base+created.ID, ten.APIKey, map[string]any{"signatureScheme": "v1a"})
	if r.Status != 200 || !strings.Contains(string(r.Body), `"signatureScheme":"v1a"`) {
		t.Fatalf("PATCH signatureScheme v1a = %d %s", r.Status, r.Body)
	}
	r, _ = env.Do("GET", base+created.ID+"/secret", ten.APIKey, nil)
	var back struct{ PublicKey, Secret string }
	r.JSON(&back)
	if !strings.HasPrefix(back.PublicKey, "whpk_") || back.PublicKey == rotated.PublicKey || back.Secret != "" {
		t.Fatalf("GET secret after the switch back to v1a = %s; want a new public key", r.Body)
	}
	publish(t, env, ten, "ticket.updated")
	got = rc.WaitFor(4, 30*time.Second)
	if len(got) != 4 || !verifyV1a(back.PublicKey, got[3].ID, got[3].Timestamp, got[3].Signature, got[3].Body) {
		t.Errorf("the webhook after the switch back does not verify with the new public key")
	}
}

// TestV1aRefusals: an unknown scheme, or a secret given with v1a, is 400
// VALIDATION_FAILED naming the field.
func TestV1aRefusals(t *testing.T) {
	t.Parallel()
	env, ten := setup(t, testenv.Options{})
	rc := receiver(t)
	sub := subscribe(t, env, ten, rc, "ticket.*")
	tests := []struct {
		name, method, path string
		body               map[string]any
		field              string
	}{
		{"create unknown", "POST", "/api/subscriptions", map[string]any{"url": rc.URL(), "eventTypes": []string{"*"}, "signatureScheme": "ed25519"}, "signatureScheme"},
		{"create v1a with a secret", "POST", "/api/subscriptions", map[string]any{"url": rc.URL(), "eventTypes": []string{"*"}, "signatureScheme": "v1a", "secret": sub.Secret}, "secret"},
		{"patch unknown", "PATCH", "/api/subscriptions/" + sub.ID, map[string]any{"signatureScheme": "v2"}, "signatureScheme"},
	}
	for _, tt := range tests {
		r, _ := env.Do(tt.method, tt.path, ten.APIKey, tt.body)
		if r.Status != 400 || !strings.Contains(string(r.Body), "VALIDATION_FAILED") || !strings.Contains(string(r.Body), `"`+tt.field+`"`) {
			t.Errorf("%s = %d %s; want 400 VALIDATION_FAILED on %s", tt.name, r.Status, r.Body, tt.field)
		}
	}
}
