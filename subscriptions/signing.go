package subscriptions

import (
	"strings"
	"time"

	"github.com/onestack/webhooks/signature"
)

// Signature schemes a subscription may choose.
const (
	SchemeV1  = signature.SchemeV1
	SchemeV1a = signature.SchemeV1a
)

// Scheme returns the subscription's signature scheme: signature.SchemeV1
// (HMAC with a shared secret) or signature.SchemeV1a (Ed25519).
func (s *Subscription) Scheme() string {
	if s.SignatureScheme == signature.SchemeV1a {
		return signature.SchemeV1a
	}
	return signature.SchemeV1
}

// PublicKey returns the public key of the current v1a key pair as
// "whpk_<base64>"; "" with scheme v1.
func (s *Subscription) PublicKey() string {
	if len(s.secrets) == 0 || !strings.HasPrefix(s.secrets[0].Secret, signature.SigningKeyPrefix) {
		return ""
	}
	k := s.secrets[0].key
	if k.IsZero() {
		var err error
		if k, err = signature.ParseSecret(s.secrets[0].Secret); err != nil {
			return ""
		}
	}
	return k.PublicKey().String()
}

// Revealed returns what the owner may see of the current signing key: the
// "whsec_" secret with scheme v1, the "whpk_" public key with v1a.
func (s *Subscription) Revealed() string {
	if s.Scheme() == signature.SchemeV1a {
		return s.PublicKey()
	}
	return s.Secret()
}

// newSigningKey returns a fresh key of scheme in its stored text form: a
// "whsec_" secret, or a "whsk_" private key for v1a.
func newSigningKey(scheme string) string {
	if scheme == signature.SchemeV1a {
		return signature.NewSigningKey().Reveal()
	}
	return signature.NewSecret().Reveal()
}

// rekey makes fresh the current key of sub, of its scheme; the previous
// current key keeps signing until now+overlap, and keys already past
// their overlap are dropped.
func rekey(sub *Subscription, fresh string, now time.Time, overlap time.Duration) {
	kept := []secretEntry{{Secret: fresh}}
	for i, e := range sub.secrets {
		if i == 0 {
			e.Expires = now.Add(overlap)
		}
		if e.Expires.After(now) {
			kept = append(kept, e)
		}
	}
	sub.secrets = kept
}

// keyMatchesScheme reports whether sub's current key is of its scheme. A
// change of scheme makes it false until the store rekeys.
func keyMatchesScheme(sub *Subscription) bool {
	if len(sub.secrets) == 0 {
		return false
	}
	isV1a := strings.HasPrefix(sub.secrets[0].Secret, signature.SigningKeyPrefix)
	return isV1a == (sub.Scheme() == signature.SchemeV1a)
}

// normalScheme is the stored form of a scheme: "v1a", or "" for v1.
func normalScheme(scheme *string) string {
	if scheme != nil && *scheme == signature.SchemeV1a {
		return signature.SchemeV1a
	}
	return ""
}

// signingProblems refuses a secret given with scheme v1a, whose key pair
// the server makes.
func signingProblems(in any) []FieldError {
	if c, ok := in.(*CreateInput); ok && c.Secret != nil && normalScheme(c.SignatureScheme) == signature.SchemeV1a {
		return []FieldError{{Field: "secret", Reason: "cannot be given with signatureScheme v1a: the server makes the key pair and shows its public key"}}
	}
	return nil
}
