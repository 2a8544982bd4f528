package endpointauth

import (
	"strings"
	"testing"
	"time"

	"github.com/onestack/webhooks/egress"
	"github.com/onestack/webhooks/internal/testpki"
)

// FuzzMTLSProblems checks arbitrary certificates, keys and bundles: the
// check never panics, never quotes the key, and what it accepts builds a
// TLS configuration.
func FuzzMTLSProblems(f *testing.F) {
	ca := testpki.NewCA(f, "CA")
	pair := ca.Client(f, "svc", time.Hour)
	other := ca.Client(f, "other", time.Hour)
	f.Add(pair.CertPEM, pair.KeyPEM, ca.PEM)
	f.Add(pair.CertPEM+ca.PEM, pair.KeyPEM, "")
	f.Add(pair.CertPEM, other.KeyPEM, ca.PEM)
	f.Add(pair.KeyPEM, pair.CertPEM, pair.KeyPEM)
	f.Add("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n", "x")
	f.Add("", "", "")
	f.Fuzz(func(t *testing.T, cert, key, bundle string) {
		c := Config{Type: TypeMTLS, Certificate: cert, PrivateKey: key, CABundle: bundle}
		problems := c.Problems(egress.Policy{})
		for _, p := range problems {
			if key != "" && len(key) > 8 && strings.Contains(p.Reason, key) {
				t.Fatalf("reason %q quotes the key", p.Reason)
			}
		}
		if len(problems) == 0 {
			if _, err := c.tlsConfig(); err != nil {
				t.Fatalf("accepted config does not build a TLS configuration: %v", err)
			}
		}
	})
}
