// Package endpointauth authenticates webhook deliveries to endpoints behind
// gateways: an OAuth2 client-credentials bearer token, or a TLS client
// certificate (mutual TLS) with, optionally, the CA bundle that endpoint's
// server certificate is checked against. It holds a subscription's
// authentication settings (Config), checks them (Problems), shows their
// public part (Public), and, at delivery, prepares each request
// (Authenticator): the token, fetched through the egress dial guard and
// cached, or the transport that presents the certificate.
package endpointauth

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/onestack/webhooks/egress"
)

// Types of endpoint authentication.
const (
	TypeOAuth2 = "oauth2"
	TypeMTLS   = "mtls"
)

// Bounds on a Config's fields.
const (
	MaxClientIDLen     = 256
	MaxClientSecretLen = 1024
	MaxScopes          = 20
	MaxScopeLen        = 128
	MaxAudienceLen     = 1024
	// MaxPEMLen bounds a certificate (with its chain) and a private key.
	MaxPEMLen = 32 << 10
	// MaxCABundleLen bounds a CA bundle.
	MaxCABundleLen = 128 << 10
)

// Config is one endpoint's authentication as it is given and stored,
// secrets included (ClientSecret, PrivateKey). It is what the API accepts
// in "auth" and what a subscription's record keeps; answers show Public
// instead. Its String and LogValue show no secret.
type Config struct {
	// Type is TypeOAuth2 or TypeMTLS.
	Type string `json:"type"`

	// OAuth2 client credentials.
	TokenURL     string   `json:"tokenUrl,omitempty"`
	ClientID     string   `json:"clientId,omitempty"`
	ClientSecret string   `json:"clientSecret,omitempty"`
	Scopes       []string `json:"scopes,omitempty"`
	Audience     string   `json:"audience,omitempty"`

	// Mutual TLS: the client certificate (PEM, leaf first, then any
	// intermediates), its private key (PEM) and the CA certificates (PEM)
	// the endpoint's server certificate must chain to; without CABundle
	// the system's roots.
	Certificate string `json:"certificate,omitempty"`
	PrivateKey  string `json:"privateKey,omitempty"`
	CABundle    string `json:"caBundle,omitempty"`

	// fingerprint is a hash of every field, set by Prepared.
	fingerprint string
	// leaf is Certificate's first certificate parsed, set by Prepared.
	leaf *x509.Certificate
}

// Public is what an answer shows of a Config: its type and the parts that
// are not secret. Exactly one group of fields is set, by Type.
type Public struct {
	Type string `json:"type"`

	// oauth2
	TokenURL string    `json:"tokenUrl,omitempty"`
	ClientID string    `json:"clientId,omitempty"`
	Scopes   *[]string `json:"scopes,omitempty"`
	Audience string    `json:"audience,omitempty"`

	// mtls: the client certificate's subject, issuer and expiry, and
	// whether a CA bundle replaces the system's roots.
	Subject              string     `json:"subject,omitempty"`
	Issuer               string     `json:"issuer,omitempty"`
	CertificateExpiresAt *time.Time `json:"certificateExpiresAt,omitempty"`
	HasCABundle          *bool      `json:"hasCaBundle,omitempty"`
}

// MarshalJSON writes p with the fields of its type: an mtls certificate's
// subject and issuer are always there, even empty (a certificate named
// only by its subject alternative names, as a SPIFFE one, has an empty
// subject), as the API document requires them.
func (p Public) MarshalJSON() ([]byte, error) {
	type plain Public
	if p.Type != TypeMTLS {
		return json.Marshal(plain(p))
	}
	return json.Marshal(struct {
		Type                 string     `json:"type"`
		Subject              string     `json:"subject"`
		Issuer               string     `json:"issuer"`
		CertificateExpiresAt *time.Time `json:"certificateExpiresAt,omitempty"`
		HasCABundle          *bool      `json:"hasCaBundle,omitempty"`
	}{p.Type, p.Subject, p.Issuer, p.CertificateExpiresAt, p.HasCABundle})
}

// Prepared returns a copy of c ready to be shared: its fingerprint taken
// and its certificate parsed, once, so that neither a delivery nor an
// answer does it again. The copy must not be modified.
func (c *Config) Prepared() *Config {
	p := *c
	p.Scopes = slices.Clone(c.Scopes)
	p.fingerprint = c.computeFingerprint()
	if c.Type == TypeMTLS {
		p.leaf, _ = parseLeaf(c.Certificate)
	}
	return &p
}

// Fingerprint identifies c's settings, secrets included, without showing
// them: two configs with the same fingerprint authenticate the same way.
// Caches of tokens and transports are keyed by it, so a changed config
// never uses what was made for the old one.
func (c *Config) Fingerprint() string {
	if c.fingerprint != "" {
		return c.fingerprint
	}
	return c.computeFingerprint()
}

func (c *Config) computeFingerprint() string {
	h := sha256.New()
	for _, f := range []string{c.Type, c.TokenURL, c.ClientID, c.ClientSecret, c.Audience, c.Certificate, c.PrivateKey, c.CABundle} {
		fmt.Fprintf(h, "%d:%s;", len(f), f)
	}
	for _, s := range c.Scopes {
		fmt.Fprintf(h, "s%d:%s;", len(s), s)
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// Public returns what an answer may show of c.
func (c Config) Public() Public {
	p := Public{Type: c.Type}
	switch c.Type {
	case TypeOAuth2:
		scopes := slices.Clone(c.Scopes)
		if scopes == nil {
			scopes = []string{}
		}
		p.TokenURL, p.ClientID, p.Scopes, p.Audience = c.TokenURL, c.ClientID, &scopes, c.Audience
	case TypeMTLS:
		if leaf := c.certificate(); leaf != nil {
			at := leaf.NotAfter.UTC()
			p.Subject, p.Issuer, p.CertificateExpiresAt = leaf.Subject.String(), leaf.Issuer.String(), &at
		}
		has := c.CABundle != ""
		p.HasCABundle = &has
	}
	return p
}

// CertificateExpiresAt returns when an mtls config's client certificate
// expires; false for oauth2 or a certificate that does not parse.
func (c *Config) CertificateExpiresAt() (time.Time, bool) {
	if c.Type != TypeMTLS {
		return time.Time{}, false
	}
	leaf := c.certificate()
	if leaf == nil {
		return time.Time{}, false
	}
	return leaf.NotAfter.UTC(), true
}

// certificate is an mtls config's client certificate: the one Prepared
// parsed, else parsed now; nil when it does not parse.
func (c *Config) certificate() *x509.Certificate {
	if c.leaf != nil {
		return c.leaf
	}
	leaf, _ := parseLeaf(c.Certificate)
	return leaf
}

// String shows c without its secrets (a value receiver, so that a Config
// printed by value hides them too).
func (c Config) String() string {
	p := c.Public()
	switch c.Type {
	case TypeOAuth2:
		return fmt.Sprintf("oauth2(tokenUrl=%s clientId=%s clientSecret=REDACTED)", p.TokenURL, p.ClientID)
	case TypeMTLS:
		return fmt.Sprintf("mtls(subject=%q privateKey=REDACTED)", p.Subject)
	}
	return "auth(" + c.Type + ")"
}

// GoString is String, for %#v.
func (c Config) GoString() string { return c.String() }

// LogValue shows c to log/slog without its secrets.
func (c Config) LogValue() slog.Value { return slog.StringValue(c.String()) }

// Problem is one thing wrong with a Config; Field is the JSON name of the
// field within it ("privateKey").
type Problem struct {
	Field  string
	Reason string
}

// Problems checks c: a known type, the fields of that type (and none of
// the other's), the token URL against policy as a webhook URL is, and the
// PEM blocks parsed, the private key matching the certificate.
func (c *Config) Problems(policy egress.Policy) []Problem {
	var out []Problem
	add := func(field, reason string) { out = append(out, Problem{field, reason}) }
	oauth := map[string]bool{"tokenUrl": c.TokenURL != "", "clientId": c.ClientID != "", "clientSecret": c.ClientSecret != "", "scopes": len(c.Scopes) > 0, "audience": c.Audience != ""}
	mtls := map[string]bool{"certificate": c.Certificate != "", "privateKey": c.PrivateKey != "", "caBundle": c.CABundle != ""}
	refuse := func(fields map[string]bool, typ string) {
		for _, f := range []string{"tokenUrl", "clientId", "clientSecret", "scopes", "audience", "certificate", "privateKey", "caBundle"} {
			if fields[f] {
				add(f, "is not a field of auth type "+typ)
			}
		}
	}
	switch c.Type {
	case TypeOAuth2:
		refuse(mtls, TypeOAuth2)
		out = append(out, c.oauth2Problems(policy)...)
	case TypeMTLS:
		refuse(oauth, TypeMTLS)
		out = append(out, c.mtlsProblems()...)
	case "":
		add("type", "is required: oauth2 or mtls")
	default:
		add("type", "must be one of: oauth2, mtls")
	}
	return out
}

func (c *Config) oauth2Problems(policy egress.Policy) []Problem {
	var out []Problem
	add := func(field, reason string) { out = append(out, Problem{field, reason}) }
	switch {
	case c.TokenURL == "":
		add("tokenUrl", "is required")
	default:
		if err := policy.CheckURL(c.TokenURL); err != nil {
			add("tokenUrl", err.Error())
		}
	}
	switch {
	case c.ClientID == "":
		add("clientId", "is required")
	case len(c.ClientID) > MaxClientIDLen || !printable(c.ClientID):
		add("clientId", fmt.Sprintf("must be at most %d characters of visible ASCII", MaxClientIDLen))
	}
	switch {
	case c.ClientSecret == "":
		add("clientSecret", "is required")
	case len(c.ClientSecret) > MaxClientSecretLen || !printable(c.ClientSecret):
		add("clientSecret", fmt.Sprintf("must be at most %d characters of visible ASCII", MaxClientSecretLen))
	}
	if len(c.Scopes) > MaxScopes {
		add("scopes", fmt.Sprintf("must have at most %d entries", MaxScopes))
	}
	seen := map[string]bool{}
	for i, s := range c.Scopes {
		field := fmt.Sprintf("scopes[%d]", i)
		switch {
		case s == "" || len(s) > MaxScopeLen || !scopeToken(s):
			add(field, fmt.Sprintf("must be an OAuth2 scope: 1 to %d visible ASCII characters other than space, \" and \\", MaxScopeLen))
		case seen[s]:
			add(field, "must not repeat an entry")
		}
		seen[s] = true
	}
	if len(c.Audience) > MaxAudienceLen || !printable(c.Audience) {
		add("audience", fmt.Sprintf("must be at most %d characters of visible ASCII", MaxAudienceLen))
	}
	return out
}

// printable reports whether s is visible ASCII (spaces allowed inside).
func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

// scopeToken reports whether s is an RFC 6749 scope-token.
func scopeToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}
