package signature

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"
)

// The RFC 8032 section 7.1 TEST 1 key pair: an independent check that
// "whsk_" and "whpk_" hold the plain Ed25519 seed and public key.
const (
	rfcSeed   = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"
	rfcPublic = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
)

func TestV1aKeyText(t *testing.T) {
	seed, pub := unhex(t, rfcSeed), unhex(t, rfcPublic)
	s, err := ParseSecret(SigningKeyPrefix + base64.StdEncoding.EncodeToString(seed))
	if err != nil {
		t.Fatalf("ParseSecret(whsk_ seed) = %v", err)
	}
	if got, want := s.PublicKey().String(), PublicKeyPrefix+base64.StdEncoding.EncodeToString(pub); got != want {
		t.Errorf("PublicKey() = %q, want %q", got, want)
	}
	if s.Scheme() != SchemeV1a || NewSecret().Scheme() != SchemeV1 {
		t.Errorf("Scheme() = %q and %q, want v1a and v1", s.Scheme(), NewSecret().Scheme())
	}
	back, err := ParseSecret(s.Reveal())
	if err != nil || back.Reveal() != s.Reveal() || !strings.HasPrefix(s.Reveal(), SigningKeyPrefix) {
		t.Errorf("ParseSecret(Reveal()) = %v, %v; want the same whsk_ key", back.Reveal(), err)
	}
	if s.String() != "REDACTED" || s.LogValue().String() != "REDACTED" {
		t.Errorf("v1a key prints as %q / %q, want REDACTED", s.String(), s.LogValue())
	}
	if !NewSecret().PublicKey().IsZero() {
		t.Errorf("an HMAC secret has a public key")
	}
}

func TestParseV1aKeys(t *testing.T) {
	full := NewSigningKey().Reveal()
	raw, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(full, SigningKeyPrefix))
	raw[40] ^= 1 // a public half that is not the seed's
	secrets := []struct {
		in   string
		want error
	}{
		{full, nil},
		{SigningKeyPrefix + base64.StdEncoding.EncodeToString(raw), ErrInvalidSecret},
		{SigningKeyPrefix + "c2hvcnQ=", ErrInvalidSecret},
		{SigningKeyPrefix + "!!", ErrInvalidSecret},
	}
	for _, tt := range secrets {
		if _, err := ParseSecret(tt.in); !errors.Is(err, tt.want) {
			t.Errorf("ParseSecret(%q) = %v, want %v", tt.in, err, tt.want)
		}
	}
	pub := NewSigningKey().PublicKey().String()
	keys := []struct {
		in   string
		want error
	}{
		{pub, nil},
		{strings.TrimPrefix(pub, PublicKeyPrefix), nil},
		{PublicKeyPrefix + "c2hvcnQ=", ErrInvalidPublicKey},
		{PublicKeyPrefix + "***", ErrInvalidPublicKey},
		{"", ErrInvalidPublicKey},
	}
	for _, tt := range keys {
		k, err := ParsePublicKey(tt.in)
		if !errors.Is(err, tt.want) {
			t.Errorf("ParsePublicKey(%q) = %v, want %v", tt.in, err, tt.want)
		}
		if err == nil && k.String() != pub {
			t.Errorf("ParsePublicKey(%q).String() = %q, want %q", tt.in, k.String(), pub)
		}
	}
}

func TestVerifyV1a(t *testing.T) {
	cur, old, other := NewSigningKey(), NewSigningKey(), NewSigningKey()
	hmacKey := NewSecret()
	at := time.Unix(vectorTS, 0)
	body := []byte(vectorBody)
	one := SignAll([]Secret{cur}, vectorID, at, body)
	both := SignAll([]Secret{cur, old}, vectorID, at, body)
	mixed := SignAll([]Secret{cur, hmacKey}, vectorID, at, body)
	tests := []struct {
		name    string
		secrets []Secret
		keys    []PublicKey
		id      string
		sig     string
		body    string
		want    error
	}{
		{"public key", nil, []PublicKey{cur.PublicKey()}, vectorID, one, vectorBody, nil},
		{"own secret", []Secret{cur}, nil, vectorID, one, vectorBody, nil},
		{"rotated: new key", nil, []PublicKey{cur.PublicKey()}, vectorID, both, vectorBody, nil},
		{"rotated: old key", nil, []PublicKey{old.PublicKey()}, vectorID, both, vectorBody, nil},
		{"v1 receiver of a switch", []Secret{hmacKey}, nil, vectorID, mixed, vectorBody, nil},
		{"v1a receiver of a switch", nil, []PublicKey{cur.PublicKey()}, vectorID, mixed, vectorBody, nil},
		{"wrong key", nil, []PublicKey{other.PublicKey()}, vectorID, both, vectorBody, ErrNoMatch},
		{"wrong secret", []Secret{other, hmacKey}, nil, vectorID, one, vectorBody, ErrNoMatch},
		{"body changed", nil, []PublicKey{cur.PublicKey()}, vectorID, one, vectorBody + " ", ErrNoMatch},
		{"id changed", nil, []PublicKey{cur.PublicKey()}, "msg_x", one, vectorBody, ErrNoMatch},
		{"sent as v1", nil, []PublicKey{cur.PublicKey()}, vectorID, strings.Replace(one, "v1a,", "v1,", 1), vectorBody, ErrNoMatch},
		{"no keys", nil, nil, vectorID, one, vectorBody, ErrNoMatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := Verifier{Secrets: tt.secrets, PublicKeys: tt.keys, Now: func() time.Time { return at }}
			if err := v.Verify(tt.id, "1614265330", tt.sig, []byte(tt.body)); !errors.Is(err, tt.want) {
				t.Errorf("Verify(%q) = %v, want %v", tt.name, err, tt.want)
			}
		})
	}
}

// TestV1aIsPlainEd25519 checks a signature with crypto/ed25519 alone, as a
// receiver without this package does.
func TestV1aIsPlainEd25519(t *testing.T) {
	s := NewSigningKey()
	at := time.Unix(vectorTS, 0)
	header := SignAll([]Secret{s, NewSigningKey()}, vectorID, at, []byte(vectorBody))
	entries := strings.Fields(header)
	if len(entries) != 2 {
		t.Fatalf("SignAll of two keys = %q, want two signatures", header)
	}
	sig, ok := strings.CutPrefix(entries[0], "v1a,")
	if !ok {
		t.Fatalf("signature %q does not start with v1a,", entries[0])
	}
	raw, err := base64.StdEncoding.DecodeString(sig)
	if err != nil {
		t.Fatalf("signature %q: %v", sig, err)
	}
	pub, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(s.PublicKey().String(), PublicKeyPrefix))
	msg := vectorID + ".1614265330." + vectorBody
	if !ed25519.Verify(pub, []byte(msg), raw) {
		t.Errorf("ed25519.Verify(whpk_ key, %q) = false, want true", msg)
	}
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func BenchmarkSignV1a(b *testing.B) {
	s := NewSigningKey()
	body := []byte(`{"id":"evt_01JDQ4","type":"ticket.updated","tenantId":"ten_01","occurredAt":"2026-11-26T10:00:00Z","data":{"ticketId":"T-1042","status":"open","priority":"high"}}`)
	buf := make([]byte, 0, 128)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendSignature(buf[:0], s, "evt_01JDQ4", 1764172800, body)
	}
}
