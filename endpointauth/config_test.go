package endpointauth

import (
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/onestack/webhooks/egress"
	"github.com/onestack/webhooks/internal/testpki"
)

func TestProblems(t *testing.T) {
	ca := testpki.NewCA(t, "Test CA")
	client := ca.Client(t, "svc", time.Hour)
	other := ca.Client(t, "other", time.Hour)
	oauth := func(edit func(*Config)) Config {
		c := Config{Type: TypeOAuth2, TokenURL: "https://idp.example.com/token", ClientID: "cid", ClientSecret: "s3cret", Scopes: []string{"webhooks:write"}, Audience: "https://api.example.com"}
		if edit != nil {
			edit(&c)
		}
		return c
	}
	mtls := func(edit func(*Config)) Config {
		c := Config{Type: TypeMTLS, Certificate: client.CertPEM, PrivateKey: client.KeyPEM, CABundle: ca.PEM}
		if edit != nil {
			edit(&c)
		}
		return c
	}
	tests := []struct {
		name   string
		cfg    Config
		policy egress.Policy
		want   []string // fields with a problem
	}{
		{"oauth2 valid", oauth(nil), egress.Policy{}, nil},
		{"oauth2 minimal", Config{Type: TypeOAuth2, TokenURL: "https://idp.example.com/t", ClientID: "a", ClientSecret: "b"}, egress.Policy{}, nil},
		{"mtls valid", mtls(nil), egress.Policy{}, nil},
		{"mtls without bundle", mtls(func(c *Config) { c.CABundle = "" }), egress.Policy{}, nil},
		{"mtls chain", mtls(func(c *Config) { c.Certificate = client.CertPEM + ca.PEM }), egress.Policy{}, nil},
		{"no type", Config{}, egress.Policy{}, []string{"type"}},
		{"unknown type", Config{Type: "basic"}, egress.Policy{}, []string{"type"}},
		{"oauth2 empty", Config{Type: TypeOAuth2}, egress.Policy{}, []string{"tokenUrl", "clientId", "clientSecret"}},
		{"oauth2 with mtls fields", oauth(func(c *Config) { c.PrivateKey = client.KeyPEM }), egress.Policy{}, []string{"privateKey"}},
		{"mtls with oauth2 fields", mtls(func(c *Config) { c.ClientSecret = "x" }), egress.Policy{}, []string{"clientSecret"}},
		{"token url http", oauth(func(c *Config) { c.TokenURL = "http://idp.example.com/token" }), egress.Policy{}, []string{"tokenUrl"}},
		{"token url http allowed", oauth(func(c *Config) { c.TokenURL = "http://idp.example.com/token" }), egress.Policy{AllowHTTP: true}, nil},
		{"token url credentials", oauth(func(c *Config) { c.TokenURL = "https://u:p@idp.example.com/token" }), egress.Policy{}, []string{"tokenUrl"}},
		{"token url private", oauth(func(c *Config) { c.TokenURL = "https://10.0.0.1/token" }), egress.Policy{}, []string{"tokenUrl"}},
		{"token url private allowed", oauth(func(c *Config) { c.TokenURL = "https://10.0.0.1/token" }), egress.Policy{AllowPrivate: true}, nil},
		{"token url metadata", oauth(func(c *Config) { c.TokenURL = "https://169.254.169.254/token" }), egress.Policy{}, []string{"tokenUrl"}},
		{"scope with space", oauth(func(c *Config) { c.Scopes = []string{"a b"} }), egress.Policy{}, []string{"scopes[0]"}},
		{"scope repeated", oauth(func(c *Config) { c.Scopes = []string{"a", "a"} }), egress.Policy{}, []string{"scopes[1]"}},
		{"too many scopes", oauth(func(c *Config) { c.Scopes = manyScopes(MaxScopes + 1) }), egress.Policy{}, []string{"scopes"}},
		{"client id too long", oauth(func(c *Config) { c.ClientID = strings.Repeat("a", MaxClientIDLen+1) }), egress.Policy{}, []string{"clientId"}},
		{"secret with newline", oauth(func(c *Config) { c.ClientSecret = "a\nb" }), egress.Policy{}, []string{"clientSecret"}},
		{"mtls empty", Config{Type: TypeMTLS}, egress.Policy{}, []string{"certificate", "privateKey"}},
		{"certificate not PEM", mtls(func(c *Config) { c.Certificate = "hello" }), egress.Policy{}, []string{"certificate"}},
		{"certificate is a key", mtls(func(c *Config) { c.Certificate = client.KeyPEM }), egress.Policy{}, []string{"certificate"}},
		{"certificate garbage DER", mtls(func(c *Config) { c.Certificate = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n" }), egress.Policy{}, []string{"certificate"}},
		{"key not PEM", mtls(func(c *Config) { c.PrivateKey = "nope" }), egress.Policy{}, []string{"privateKey"}},
		{"key is a certificate", mtls(func(c *Config) { c.PrivateKey = client.CertPEM }), egress.Policy{}, []string{"privateKey"}},
		{"key of another certificate", mtls(func(c *Config) { c.PrivateKey = other.KeyPEM }), egress.Policy{}, []string{"privateKey"}},
		{"bundle not PEM", mtls(func(c *Config) { c.CABundle = "x" }), egress.Policy{}, []string{"caBundle"}},
		{"key of openssl ecparam -genkey (EC PARAMETERS first)", mtls(func(c *Config) { c.PrivateKey = withECParameters(t, client.KeyPEM) }), egress.Policy{}, nil},
		{"key with EC PARAMETERS after it", mtls(func(c *Config) { c.PrivateKey = sec1(t, client.KeyPEM) + ecParameters }), egress.Policy{}, []string{"privateKey"}},
		{"bundle trailing text", mtls(func(c *Config) { c.CABundle = ca.PEM + "junk" }), egress.Policy{}, []string{"caBundle"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, p := range tt.cfg.Problems(tt.policy) {
				got = append(got, p.Field)
				if strings.Contains(p.Reason, "PRIVATE KEY-----") || (tt.cfg.ClientSecret != "" && strings.Contains(p.Reason, tt.cfg.ClientSecret)) {
					t.Errorf("reason %q quotes a secret", p.Reason)
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Problems() fields (-want +got):\n%s", diff)
			}
		})
	}
}

// ecParameters is the PEM block `openssl ecparam -name prime256v1 -genkey`
// writes before the key: the curve's OID.
var ecParameters = string(pem.EncodeToMemory(&pem.Block{Type: "EC PARAMETERS", Bytes: []byte{0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07}}))

// sec1 re-encodes a PKCS #8 EC key PEM as SEC 1 ("EC PRIVATE KEY").
func sec1(t *testing.T, pkcs8PEM string) string {
	t.Helper()
	b, _ := pem.Decode([]byte(pkcs8PEM))
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalECPrivateKey(k.(*ecdsa.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}))
}

// withECParameters is a key as openssl ecparam -genkey writes it: the
// curve's parameters, then the SEC 1 key.
func withECParameters(t *testing.T, pkcs8PEM string) string {
	return ecParameters + sec1(t, pkcs8PEM)
}

func manyScopes(n int) []string {
	s := make([]string, n)
	for i := range s {
		s[i] = fmt.Sprintf("s%d", i)
	}
	return s
}

// TestPublic: what an answer or a log shows holds the kind and the
// non-secret parts, never clientSecret or privateKey.
func TestPublic(t *testing.T) {
	ca := testpki.NewCA(t, "Test CA")
	client := ca.Client(t, "svc", 2*time.Hour)
	spiffe := ca.SPIFFE(t, "spiffe://example.org/webhooks", time.Hour)
	tests := []struct {
		name   string
		cfg    *Config
		want   string
		secret string
	}{
		{"oauth2", &Config{Type: TypeOAuth2, TokenURL: "https://idp/t", ClientID: "cid", ClientSecret: "very-secret", Scopes: []string{"a", "b"}, Audience: "aud"},
			`{"type":"oauth2","tokenUrl":"https://idp/t","clientId":"cid","scopes":["a","b"],"audience":"aud"}`, "very-secret"},
		{"oauth2 no scopes", &Config{Type: TypeOAuth2, TokenURL: "https://idp/t", ClientID: "cid", ClientSecret: "very-secret"},
			`{"type":"oauth2","tokenUrl":"https://idp/t","clientId":"cid","scopes":[]}`, "very-secret"},
		{"mtls", &Config{Type: TypeMTLS, Certificate: client.CertPEM, PrivateKey: client.KeyPEM},
			fmt.Sprintf(`{"type":"mtls","subject":"CN=svc,O=One Stack tests","issuer":"CN=Test CA","certificateExpiresAt":%q,"hasCaBundle":false}`, client.Cert.NotAfter.UTC().Format(time.RFC3339)), "PRIVATE KEY"},
		{"mtls empty subject", &Config{Type: TypeMTLS, Certificate: spiffe.CertPEM, PrivateKey: spiffe.KeyPEM},
			fmt.Sprintf(`{"type":"mtls","subject":"","issuer":"CN=Test CA","certificateExpiresAt":%q,"hasCaBundle":false}`, spiffe.Cert.NotAfter.UTC().Format(time.RFC3339)), "PRIVATE KEY"},
		{"mtls bundle", (&Config{Type: TypeMTLS, Certificate: client.CertPEM, PrivateKey: client.KeyPEM, CABundle: ca.PEM}).Prepared(),
			fmt.Sprintf(`{"type":"mtls","subject":"CN=svc,O=One Stack tests","issuer":"CN=Test CA","certificateExpiresAt":%q,"hasCaBundle":true}`, client.Cert.NotAfter.UTC().Format(time.RFC3339)), "PRIVATE KEY"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := json.Marshal(tt.cfg.Public())
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tt.want {
				t.Errorf("Public() = %s, want %s", b, tt.want)
			}
			var logged strings.Builder
			slog.New(slog.NewTextHandler(&logged, nil)).Info("x", "auth", tt.cfg)
			slog.New(slog.NewJSONHandler(&logged, nil)).Info("x", "auth", *tt.cfg)
			wrapped := struct{ Auth *Config }{tt.cfg}
			for _, shown := range []string{tt.cfg.String(), fmt.Sprint(tt.cfg), fmt.Sprint(*tt.cfg), fmt.Sprintf("%+v %#v", *tt.cfg, tt.cfg), fmt.Sprintf("%+v", wrapped), logged.String()} {
				if strings.Contains(shown, tt.secret) {
					t.Errorf("shown as %q, holding the secret", shown)
				}
			}
		})
	}
}

// TestFingerprint: every field, secrets included, changes it; Prepared
// keeps it.
func TestFingerprint(t *testing.T) {
	base := Config{Type: TypeOAuth2, TokenURL: "https://idp/t", ClientID: "cid", ClientSecret: "s", Scopes: []string{"a"}, Audience: "x"}
	edits := map[string]func(*Config){
		"type":         func(c *Config) { c.Type = TypeMTLS },
		"tokenUrl":     func(c *Config) { c.TokenURL += "2" },
		"clientId":     func(c *Config) { c.ClientID += "2" },
		"clientSecret": func(c *Config) { c.ClientSecret += "2" },
		"scopes":       func(c *Config) { c.Scopes = []string{"a", "b"} },
		"scope split":  func(c *Config) { c.Scopes = []string{"a", ""} },
		"audience":     func(c *Config) { c.Audience += "2" },
		"certificate":  func(c *Config) { c.Certificate = "c" },
		"privateKey":   func(c *Config) { c.PrivateKey = "k" },
		"caBundle":     func(c *Config) { c.CABundle = "b" },
	}
	fp := base.Fingerprint()
	if got := base.Prepared().Fingerprint(); got != fp {
		t.Errorf("Prepared().Fingerprint() = %s, want %s", got, fp)
	}
	for name, edit := range edits {
		c := base
		c.Scopes = []string{"a"}
		edit(&c)
		if c.Fingerprint() == fp {
			t.Errorf("changing %s kept the fingerprint", name)
		}
	}
	if strings.Contains(fp, "s") && len(fp) != 32 {
		t.Errorf("fingerprint %q is not 16 bytes of hex", fp)
	}
}

// TestECParametersKey: a key written by openssl ecparam -genkey, its
// "EC PARAMETERS" block first, is accepted and presented.
func TestECParametersKey(t *testing.T) {
	client := testpki.NewCA(t, "CA").Client(t, "svc", time.Hour)
	c := &Config{Type: TypeMTLS, Certificate: client.CertPEM, PrivateKey: withECParameters(t, client.KeyPEM)}
	if p := c.Problems(egress.Policy{}); len(p) != 0 {
		t.Fatalf("Problems() = %v, want none", p)
	}
	tc, err := c.tlsConfig()
	if err != nil || len(tc.Certificates) != 1 {
		t.Fatalf("tlsConfig() = %v, %v; want the certificate presented", tc, err)
	}
}
