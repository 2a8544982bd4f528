// Package signature signs and verifies webhooks by the Standard Webhooks
// scheme (https://www.standardwebhooks.com). It imports only the standard
// library, so a receiver can verify deliveries without pulling in the server.
//
// The signed content is "<webhook-id>.<webhook-timestamp>.<body>". It is
// signed by one of two schemes: v1, HMAC-SHA256 keyed with the
// base64-decoded part of a "whsec_" secret, and v1a, Ed25519 with a key
// pair whose public half is written "whpk_<base64>" and whose secret half
// "whsk_<base64>". The header value is a space-separated list of
// "v1,<base64 MAC>" and "v1a,<base64 signature>" entries.
package signature

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Header names of a Standard Webhooks delivery.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// SecretPrefix starts every secret in its text form.
const SecretPrefix = "whsec_"

// Prefixes of the halves of a v1a (Ed25519) key pair in their text form.
const (
	SigningKeyPrefix = "whsk_"
	PublicKeyPrefix  = "whpk_"
)

// Signature schemes, as they start a signature in the header.
const (
	// SchemeV1 is HMAC-SHA256 with a shared secret.
	SchemeV1 = "v1"
	// SchemeV1a is Ed25519: the receiver verifies with a public key.
	SchemeV1a = "v1a"
)

// DefaultTolerance is how far a timestamp may be from the verifier's clock.
const DefaultTolerance = 5 * time.Minute

// Errors returned by parsing and verification.
var (
	ErrInvalidSecret    = errors.New("invalid webhook secret")
	ErrInvalidPublicKey = errors.New("invalid webhook public key")
	ErrMissingHeader    = errors.New("missing webhook header")
	ErrInvalidTimestamp = errors.New("invalid webhook timestamp")
	ErrTimestampRange   = errors.New("webhook timestamp outside tolerance")
	ErrNoMatch          = errors.New("no matching webhook signature")
)

// minKeyLen and maxKeyLen bound a secret's decoded key. Standard Webhooks
// asks for 24 to 64 bytes; shorter keys are too weak to accept.
const (
	minKeyLen = 24
	maxKeyLen = 64
)

// Secret is a signing key: an HMAC secret (scheme v1) or the private half
// of an Ed25519 key pair (scheme v1a). Its zero value is not usable; build
// one with ParseSecret, NewSecret or NewSigningKey. It never prints its
// key: String and LogValue give "REDACTED".
type Secret struct {
	key []byte
	// macs holds HMAC states keyed with key, shared by the copies of
	// the secret: a signature resets one rather than hashing the key's
	// pads into a new one.
	macs *sync.Pool
	// priv is set instead of key for scheme v1a.
	priv ed25519.PrivateKey
}

// hmacSecret is the v1 secret of key.
func hmacSecret(key []byte) Secret {
	return Secret{key: key, macs: &sync.Pool{New: func() any { return newMACState(key) }}}
}

// NewSecret returns a fresh secret of 32 random bytes.
func NewSecret() Secret {
	key := make([]byte, 32)
	rand.Read(key) // never fails, per crypto/rand's documentation
	return hmacSecret(key)
}

// NewSigningKey returns a fresh Ed25519 key pair, for scheme v1a.
func NewSigningKey() Secret {
	_, priv, _ := ed25519.GenerateKey(nil) // never fails with crypto/rand
	return Secret{priv: priv}
}

// ParseSecret parses "whsec_<base64>" (the prefix is optional, as in other
// verifiers), whose key must decode to 24..64 bytes, or an Ed25519 secret
// key "whsk_<base64>" of its 32-byte seed or 64-byte private key.
func ParseSecret(s string) (Secret, error) {
	if b64, ok := strings.CutPrefix(s, SigningKeyPrefix); ok {
		key, err := base64.StdEncoding.DecodeString(b64)
		switch {
		case err != nil:
			return Secret{}, fmt.Errorf("%w: not base64", ErrInvalidSecret)
		case len(key) == ed25519.SeedSize:
			return Secret{priv: ed25519.NewKeyFromSeed(key)}, nil
		case len(key) == ed25519.PrivateKeySize:
			priv := ed25519.NewKeyFromSeed(key[:ed25519.SeedSize])
			if !hmac.Equal(priv, key) {
				return Secret{}, fmt.Errorf("%w: public half does not match the seed", ErrInvalidSecret)
			}
			return Secret{priv: priv}, nil
		default:
			return Secret{}, fmt.Errorf("%w: key must be %d or %d bytes, got %d", ErrInvalidSecret, ed25519.SeedSize, ed25519.PrivateKeySize, len(key))
		}
	}
	b64 := strings.TrimPrefix(s, SecretPrefix)
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return Secret{}, fmt.Errorf("%w: not base64", ErrInvalidSecret)
	}
	if len(key) < minKeyLen || len(key) > maxKeyLen {
		return Secret{}, fmt.Errorf("%w: key must be %d to %d bytes, got %d", ErrInvalidSecret, minKeyLen, maxKeyLen, len(key))
	}
	return hmacSecret(key), nil
}

// Reveal returns the secret in its "whsec_" text form, or a v1a key pair's
// private key as "whsk_<base64>". Call it only to hand an HMAC secret to
// its owner, or to store a private key, which never leaves the server.
func (s Secret) Reveal() string {
	if s.priv != nil {
		return SigningKeyPrefix + base64.StdEncoding.EncodeToString(s.priv)
	}
	return SecretPrefix + base64.StdEncoding.EncodeToString(s.key)
}

// Scheme returns SchemeV1 or SchemeV1a.
func (s Secret) Scheme() string {
	if s.priv != nil {
		return SchemeV1a
	}
	return SchemeV1
}

// PublicKey returns the public half of a v1a key pair; it is the zero
// PublicKey for an HMAC secret.
func (s Secret) PublicKey() PublicKey {
	if s.priv == nil {
		return PublicKey{}
	}
	return PublicKey{key: s.priv.Public().(ed25519.PublicKey)}
}

// IsZero reports whether s holds no key.
func (s Secret) IsZero() bool { return len(s.key) == 0 && s.priv == nil }

// String hides the key.
func (s Secret) String() string { return "REDACTED" }

// LogValue hides the key from log/slog.
func (s Secret) LogValue() slog.Value { return slog.StringValue("REDACTED") }

// PublicKey verifies v1a signatures; it is no secret and prints as
// "whpk_<base64>".
type PublicKey struct {
	key ed25519.PublicKey
}

// ParsePublicKey parses "whpk_<base64>" of a 32-byte Ed25519 public key
// (the prefix is optional).
func ParsePublicKey(s string) (PublicKey, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(s, PublicKeyPrefix))
	if err != nil {
		return PublicKey{}, fmt.Errorf("%w: not base64", ErrInvalidPublicKey)
	}
	if len(key) != ed25519.PublicKeySize {
		return PublicKey{}, fmt.Errorf("%w: key must be %d bytes, got %d", ErrInvalidPublicKey, ed25519.PublicKeySize, len(key))
	}
	return PublicKey{key: key}, nil
}

// String returns the key as "whpk_<base64>", or "" for the zero key.
func (k PublicKey) String() string {
	if k.key == nil {
		return ""
	}
	return PublicKeyPrefix + base64.StdEncoding.EncodeToString(k.key)
}

// IsZero reports whether k holds no key.
func (k PublicKey) IsZero() bool { return k.key == nil }

// Sign returns the "v1,<base64>" (or "v1a,<base64>") signature of one
// message.
func Sign(s Secret, id string, ts time.Time, body []byte) string {
	return string(AppendSignature(nil, s, id, ts.Unix(), body))
}

// AppendSignature appends the "v1,<base64>" signature of one message to dst
// and returns the extended buffer; with a reused dst it does not allocate
// beyond the MAC's own state. With a v1a key it appends
// "v1a,<base64 Ed25519 signature>", allocating the signature.
func AppendSignature(dst []byte, s Secret, id string, unix int64, body []byte) []byte {
	if s.priv != nil {
		msg := content(id, unix, body)
		sig := ed25519.Sign(s.priv, *msg)
		releaseContent(msg)
		dst = append(dst, "v1a,"...)
		return base64.StdEncoding.AppendEncode(dst, sig)
	}
	sum := computeMAC(s, id, unix, body)
	dst = append(dst, "v1,"...)
	return base64.StdEncoding.AppendEncode(dst, sum[:])
}

// computeMAC is HMAC-SHA256 over "<id>.<unix>.<body>", with a keyed
// state from the secret's pool, reset and handed back after (a zero
// Secret has no pool: a state of its own).
func computeMAC(s Secret, id string, unix int64, body []byte) [sha256.Size]byte {
	var m *macState
	if s.macs != nil {
		m = s.macs.Get().(*macState)
		defer s.macs.Put(m)
	} else {
		m = newMACState(s.key)
	}
	p := append(m.scratch[:0], id...)
	p = append(p, '.')
	p = strconv.AppendInt(p, unix, 10)
	p = append(p, '.')
	m.scratch = p[:0] // grown for a long id: kept so
	m.h.Write(p)
	m.h.Write(body)
	var sum [sha256.Size]byte
	copy(sum[:], m.h.Sum(m.scratch[:0]))
	m.h.Reset()
	return sum
}

// macState is an HMAC state keyed with a secret and the buffer it is fed
// from: the signed content's prefix, then its sum. Both stay on the heap
// with the state, reused from signature to signature.
type macState struct {
	h       hash.Hash
	scratch []byte
}

func newMACState(key []byte) *macState {
	return &macState{h: hmac.New(sha256.New, key), scratch: make([]byte, 0, 96)}
}

// contents holds the buffers of signed content: Ed25519 takes its message
// whole, so a v1a signature or verification copies it once.
var contents = sync.Pool{New: func() any { return new([]byte) }}

// maxPooled bounds the buffers kept for reuse.
const maxPooled = 1 << 20

// content returns "<id>.<unix>.<body>" in a pooled buffer; give it back
// with releaseContent.
func content(id string, unix int64, body []byte) *[]byte {
	p := contents.Get().(*[]byte)
	b := append((*p)[:0], id...)
	b = append(b, '.')
	b = strconv.AppendInt(b, unix, 10)
	b = append(b, '.')
	*p = append(b, body...)
	return p
}

func releaseContent(p *[]byte) {
	if cap(*p) <= maxPooled {
		contents.Put(p)
	}
}

// SignAll returns the header value carrying one signature per secret,
// space-separated, as sent while a rotated secret is still valid.
func SignAll(secrets []Secret, id string, ts time.Time, body []byte) string {
	var buf [2 * v1Len]byte // one secret, or two during a rotation
	return string(AppendAll(buf[:0], secrets, id, ts.Unix(), body))
}

// v1Len is the length of a "v1,<base64 MAC>" signature.
const v1Len = len(SchemeV1) + 1 + 44

// AppendAll appends SignAll's header value to dst and returns the
// extended buffer; with room in dst and v1 secrets only it does not
// allocate.
func AppendAll(dst []byte, secrets []Secret, id string, unix int64, body []byte) []byte {
	for i, s := range secrets {
		if i > 0 {
			dst = append(dst, ' ')
		}
		dst = AppendSignature(dst, s, id, unix, body)
	}
	return dst
}

// ParseSignatures splits a webhook-signature header into its v1 MACs.
// Entries of other versions are skipped; malformed base64 is skipped too,
// so one bad entry cannot hide a good one.
func ParseSignatures(header string) [][]byte {
	return parseEntries(header, SchemeV1, sha256.Size)
}

// ParseAsymmetricSignatures splits a webhook-signature header into its v1a
// (Ed25519) signatures, skipping everything else as ParseSignatures does.
func ParseAsymmetricSignatures(header string) [][]byte {
	return parseEntries(header, SchemeV1a, ed25519.SignatureSize)
}

// parseEntries returns the decoded values of the entries of one version
// that decode to size bytes.
func parseEntries(header, version string, size int) [][]byte {
	var out [][]byte
	for _, entry := range strings.Fields(header) {
		v, value, ok := strings.Cut(entry, ",")
		if !ok || v != version {
			continue
		}
		raw, err := base64.StdEncoding.DecodeString(value)
		if err != nil || len(raw) != size {
			continue
		}
		out = append(out, raw)
	}
	return out
}

// Verifier checks deliveries against one or more secrets or public keys.
type Verifier struct {
	// Secrets are tried in turn; any one matching signature is enough. A
	// v1a secret verifies v1a signatures by its public half.
	Secrets []Secret
	// PublicKeys verify v1a signatures, as Secrets do v1 ones.
	PublicKeys []PublicKey
	// Tolerance bounds the distance between the timestamp and Now; zero
	// means DefaultTolerance.
	Tolerance time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Verify checks the three headers' values against body. It returns nil when
// the timestamp is within tolerance and any v1 signature matches any HMAC
// secret, or any v1a signature verifies with any public key.
func (v Verifier) Verify(id, timestamp, sigHeader string, body []byte) error {
	if id == "" || timestamp == "" || sigHeader == "" {
		return ErrMissingHeader
	}
	unix, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return ErrInvalidTimestamp
	}
	now := time.Now
	if v.Now != nil {
		now = v.Now
	}
	tol := v.Tolerance
	if tol <= 0 {
		tol = DefaultTolerance
	}
	nowUnix := now().Unix()
	if unix < nowUnix-int64(tol/time.Second) || unix > nowUnix+int64(tol/time.Second) {
		return ErrTimestampRange
	}
	macs := ParseSignatures(sigHeader)
	var keys []PublicKey
	for _, s := range v.Secrets {
		if s.priv != nil {
			keys = append(keys, s.PublicKey())
			continue
		}
		want := computeMAC(s, id, unix, body)
		for _, mac := range macs {
			if hmac.Equal(mac, want[:]) {
				return nil
			}
		}
	}
	keys = append(keys, v.PublicKeys...)
	if len(keys) == 0 {
		return ErrNoMatch
	}
	sigs := ParseAsymmetricSignatures(sigHeader)
	if len(sigs) == 0 {
		return ErrNoMatch
	}
	msg := content(id, unix, body)
	defer releaseContent(msg)
	for _, k := range keys {
		if k.IsZero() {
			continue
		}
		for _, sig := range sigs {
			if ed25519.Verify(k.key, *msg, sig) {
				return nil
			}
		}
	}
	return ErrNoMatch
}

// VerifyHeaders is Verify reading the three headers through get (for
// example an http.Header's Get).
func (v Verifier) VerifyHeaders(get func(string) string, body []byte) error {
	return v.Verify(get(HeaderID), get(HeaderTimestamp), get(HeaderSignature), body)
}
