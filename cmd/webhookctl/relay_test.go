package main

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/onestack/webhooks/signature"
)

// TestRelayLearnsANewKey: a webhook signed by a key the relay does not
// know makes it read the subscription's key again (a rotation, or a
// switch between v1 and v1a while listening), at most every relayRelearn;
// keys learnt before keep verifying, and a key read again is not held
// twice.
func TestRelayLearnsANewKey(t *testing.T) {
	v1, v1a := signature.NewSecret(), signature.NewSigningKey()
	current, reads := v1.Reveal(), 0
	rl := &relay{keys: func(context.Context) (string, error) { reads++; return current, nil }}
	if err := rl.learn(context.Background()); err != nil {
		t.Fatal(err)
	}
	signed := func(s signature.Secret) (func(string) string, []byte) {
		body := []byte(`{"type":"ticket.updated"}`)
		now := time.Now()
		h := http.Header{}
		h.Set(signature.HeaderID, "evt_1")
		h.Set(signature.HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
		h.Set(signature.HeaderSignature, signature.Sign(s, "evt_1", now, body))
		return h.Get, body
	}
	ctx := context.Background()
	check := func(s signature.Secret) error {
		get, body := signed(s)
		return rl.verify(ctx, get, body)
	}
	if err := check(v1); err != nil || reads != 1 {
		t.Fatalf("v1 webhook: %v after %d reads, want verified with the key read at start", err, reads)
	}
	// The scheme switched to v1a: the relay has just read a key, so it
	// does not read again at once.
	current = v1a.PublicKey().String()
	if err := check(v1a); !errors.Is(err, signature.ErrNoMatch) || reads != 1 {
		t.Errorf("v1a webhook within %v of the last read: %v after %d reads, want no match and no read", relayRelearn, err, reads)
	}
	rl.learnedAt = time.Now().Add(-2 * relayRelearn)
	if err := check(v1a); err != nil || reads != 2 {
		t.Errorf("v1a webhook later: %v after %d reads, want verified after reading the public key", err, reads)
	}
	if err := check(v1); err != nil || reads != 2 {
		t.Errorf("the old v1 key through the overlap: %v after %d reads, want verified without a read", err, reads)
	}
	// A forged webhook is refused, the key read again at most once.
	rl.learnedAt = time.Now().Add(-2 * relayRelearn)
	if err := check(signature.NewSecret()); !errors.Is(err, signature.ErrNoMatch) || reads != 3 {
		t.Errorf("a forged webhook: %v after %d reads, want no match after one more read", err, reads)
	}
	if n := len(rl.verifier.Secrets) + len(rl.verifier.PublicKeys); n != 2 {
		t.Errorf("the relay holds %d keys after reading the v1a key twice, want 2 (v1 and v1a once each)", n)
	}
}
