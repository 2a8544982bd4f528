// Package signature signs and verifies webhooks by the Standard Webhooks
// scheme (https://www.standardwebhooks.com). It imports only the standard
// library, so a receiver can verify deliveries without pulling in the server.
//
// The signed content is "<webhook-id>.<webhook-timestamp>.<body>", the MAC is
// HMAC-SHA256 keyed with the base64-decoded part of a "whsec_" secret, and the
// header value is a space-separated list of "v1,<base64 MAC>" entries.
package signature

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
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

// DefaultTolerance is how far a timestamp may be from the verifier's clock.
const DefaultTolerance = 5 * time.Minute

// Errors returned by parsing and verification.
var (
	ErrInvalidSecret    = errors.New("invalid webhook secret")
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

// Secret is a signing key. Its zero value is not usable; build one with
// ParseSecret or NewSecret. It never prints its key: String and LogValue
// give "REDACTED".
type Secret struct {
	key []byte
}

// NewSecret returns a fresh secret of 32 random bytes.
func NewSecret() Secret {
	key := make([]byte, 32)
	rand.Read(key) // never fails, per crypto/rand's documentation
	return Secret{key: key}
}

// ParseSecret parses "whsec_<base64>" (the prefix is optional, as in other
// verifiers). The key must decode to 24..64 bytes.
func ParseSecret(s string) (Secret, error) {
	b64 := strings.TrimPrefix(s, SecretPrefix)
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return Secret{}, fmt.Errorf("%w: not base64", ErrInvalidSecret)
	}
	if len(key) < minKeyLen || len(key) > maxKeyLen {
		return Secret{}, fmt.Errorf("%w: key must be %d to %d bytes, got %d", ErrInvalidSecret, minKeyLen, maxKeyLen, len(key))
	}
	return Secret{key: key}, nil
}

// Reveal returns the secret in its "whsec_" text form. Call it only to hand
// the secret to its owner.
func (s Secret) Reveal() string {
	return SecretPrefix + base64.StdEncoding.EncodeToString(s.key)
}

// IsZero reports whether s holds no key.
func (s Secret) IsZero() bool { return len(s.key) == 0 }

// String hides the key.
func (s Secret) String() string { return "REDACTED" }

// LogValue hides the key from log/slog.
func (s Secret) LogValue() slog.Value { return slog.StringValue("REDACTED") }

// Sign returns the "v1,<base64>" signature of one message.
func Sign(s Secret, id string, ts time.Time, body []byte) string {
	return string(AppendSignature(nil, s, id, ts.Unix(), body))
}

// AppendSignature appends the "v1,<base64>" signature of one message to dst
// and returns the extended buffer; with a reused dst it does not allocate
// beyond the MAC's own state.
func AppendSignature(dst []byte, s Secret, id string, unix int64, body []byte) []byte {
	sum := computeMAC(s, id, unix, body)
	dst = append(dst, "v1,"...)
	return base64.StdEncoding.AppendEncode(dst, sum[:])
}

// computeMAC is HMAC-SHA256 over "<id>.<unix>.<body>".
func computeMAC(s Secret, id string, unix int64, body []byte) [sha256.Size]byte {
	mac := hmac.New(sha256.New, s.key)
	var prefix [96]byte
	p := append(prefix[:0], id...)
	p = append(p, '.')
	p = strconv.AppendInt(p, unix, 10)
	p = append(p, '.')
	mac.Write(p)
	mac.Write(body)
	var sum [sha256.Size]byte
	mac.Sum(sum[:0])
	return sum
}

// SignAll returns the header value carrying one signature per secret,
// space-separated, as sent while a rotated secret is still valid.
func SignAll(secrets []Secret, id string, ts time.Time, body []byte) string {
	var buf []byte
	for i, s := range secrets {
		if i > 0 {
			buf = append(buf, ' ')
		}
		buf = AppendSignature(buf, s, id, ts.Unix(), body)
	}
	return string(buf)
}

// ParseSignatures splits a webhook-signature header into its v1 MACs.
// Entries of other versions are skipped; malformed base64 is skipped too,
// so one bad entry cannot hide a good one.
func ParseSignatures(header string) [][]byte {
	var macs [][]byte
	for _, entry := range strings.Fields(header) {
		version, value, ok := strings.Cut(entry, ",")
		if !ok || version != "v1" {
			continue
		}
		mac, err := base64.StdEncoding.DecodeString(value)
		if err != nil || len(mac) != sha256.Size {
			continue
		}
		macs = append(macs, mac)
	}
	return macs
}

// Verifier checks deliveries against one or more secrets.
type Verifier struct {
	// Secrets are tried in turn; any one matching signature is enough.
	Secrets []Secret
	// Tolerance bounds the distance between the timestamp and Now; zero
	// means DefaultTolerance.
	Tolerance time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Verify checks the three headers' values against body. It returns nil when
// the timestamp is within tolerance and any v1 signature matches any secret.
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
	for _, s := range v.Secrets {
		want := computeMAC(s, id, unix, body)
		for _, mac := range macs {
			if hmac.Equal(mac, want[:]) {
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
