package subscriptions

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"log/slog"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/onestack/webhooks/limits"
)

// DefaultRateLimit is a tenant's API budget per minute unless the
// operator's default or the tenant's own says otherwise.
const DefaultRateLimit = 100

// MaxRateLimit bounds a custom arrangement.
const MaxRateLimit = 1_000_000

// Tenant is one customer of the platform.
type Tenant struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	// RateLimit is the tenant's own requests a minute
	// (limits.RequestsPerMinute); zero means the default. Tenants created
	// before defaults existed hold 100 here, as their own.
	RateLimit int `json:"rateLimit"`
	// Limits are the tenant's own limits, those the operator set; a zero
	// means the default. RequestsPerMinute is always zero here: it is
	// RateLimit.
	Limits    limits.Limits `json:"limits,omitzero"`
	CreatedAt time.Time     `json:"createdAt"`
	Revision  uint64        `json:"-"`
}

// applyLimits changes the tenant's own limits by an operator's patch,
// requestsPerMinute being RateLimit.
func (t *Tenant) applyLimits(p limits.Patch) {
	l := t.Limits
	l.RequestsPerMinute = int64(t.RateLimit)
	l = p.Apply(l)
	t.RateLimit, l.RequestsPerMinute = int(l.RequestsPerMinute), 0
	t.Limits = l
}

// NewTenantID returns a fresh tenant id.
func NewTenantID() string { return tenantIDPrefix + ulid.Make().String() }

// APIKey is the stored form of a tenant's key: never the key itself.
type APIKey struct {
	ID        string    `json:"id"`
	TenantID  string    `json:"tenantId"`
	Hash      string    `json:"hash"` // hex SHA-256 of the whole key
	CreatedAt time.Time `json:"createdAt"`
}

// Key is an API key in clear, shown once to its owner. It prints as
// REDACTED.
type Key string

// String hides the key.
func (Key) String() string { return "REDACTED" }

// LogValue hides the key from log/slog.
func (Key) LogValue() slog.Value { return slog.StringValue("REDACTED") }

const (
	keyPrefix   = "sk_"
	keyIDPrefix = "key_"
	ulidLen     = 26
)

// newKey returns a fresh key and its stored form. The key is
// "sk_<ULID>_<43 base64url chars>": the ULID names the key (its id is
// "key_<ULID>"), so a lookup needs no scan, and the rest is 256 random bits.
func newKey(tenant string, now time.Time) (Key, APIKey) {
	id := ulid.Make().String()
	raw := make([]byte, 32)
	rand.Read(raw)
	k := keyPrefix + id + "_" + base64.RawURLEncoding.EncodeToString(raw)
	return Key(k), APIKey{ID: keyIDPrefix + id, TenantID: tenant, Hash: hashKey(k), CreatedAt: now.UTC()}
}

func hashKey(k string) string {
	sum := sha256.Sum256([]byte(k))
	return hex.EncodeToString(sum[:])
}

// keyID returns the id a presented key claims, or false if it is malformed.
func keyID(k string) (string, bool) {
	rest, ok := strings.CutPrefix(k, keyPrefix)
	if !ok || len(rest) != ulidLen+1+43 || rest[ulidLen] != '_' {
		return "", false
	}
	if _, err := ulid.ParseStrict(rest[:ulidLen]); err != nil {
		return "", false
	}
	return keyIDPrefix + rest[:ulidLen], true
}

// matches compares a presented key with the stored hash in constant time.
func (k APIKey) matches(presented string) bool {
	want, err := hex.DecodeString(k.Hash)
	if err != nil {
		return false
	}
	got := sha256.Sum256([]byte(presented))
	return subtle.ConstantTimeCompare(want, got[:]) == 1
}
