// Package testpki makes a private PKI for tests: a CA, and server and
// client certificates it issues, all in PEM as an endpoint's mtls settings
// take them.
package testpki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/url"
	"testing"
	"time"
)

// CA is a test certificate authority.
type CA struct {
	// PEM is the CA's certificate.
	PEM  string
	Cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// Pair is a certificate and its private key, in PEM.
type Pair struct {
	CertPEM, KeyPEM string
	Cert            *x509.Certificate
}

// TLS returns the pair for a tls.Config.
func (p Pair) TLS(t testing.TB) tls.Certificate {
	t.Helper()
	c, err := tls.X509KeyPair([]byte(p.CertPEM), []byte(p.KeyPEM))
	if err != nil {
		t.Fatalf("testpki: key pair: %v", err)
	}
	return c
}

// NewCA makes a CA named name, valid from an hour ago for a day.
func NewCA(t testing.TB, name string) *CA {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("testpki: CA certificate: %v", err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &CA{PEM: encode("CERTIFICATE", der), Cert: cert, key: key}
}

// Pool returns a pool holding the CA.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// Server issues a server certificate for 127.0.0.1, ::1 and localhost.
func (ca *CA) Server(t testing.TB) Pair {
	t.Helper()
	return ca.issue(t, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "localhost"},
		DNSNames:    []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, 24*time.Hour)
}

// Client issues a client certificate named cn, valid for validFor.
func (ca *CA) Client(t testing.TB, cn string, validFor time.Duration) Pair {
	t.Helper()
	return ca.issue(t, &x509.Certificate{
		Subject:     pkix.Name{CommonName: cn, Organization: []string{"One Stack tests"}},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, validFor)
}

// ClientUntil issues a client certificate named cn whose notAfter is
// notAfter (to the second), which may be past: valid from an hour before
// the earlier of now and notAfter.
func (ca *CA) ClientUntil(t testing.TB, cn string, notAfter time.Time) Pair {
	t.Helper()
	return ca.issueUntil(t, &x509.Certificate{
		Subject:     pkix.Name{CommonName: cn, Organization: []string{"One Stack tests"}},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, notAfter.Truncate(time.Second))
}

// SPIFFE issues a client certificate with an empty subject, named only by
// the URI in its subject alternative name (as SPIFFE X.509-SVIDs may be).
func (ca *CA) SPIFFE(t testing.TB, id string, validFor time.Duration) Pair {
	t.Helper()
	u, err := url.Parse(id)
	if err != nil {
		t.Fatalf("testpki: SPIFFE id: %v", err)
	}
	return ca.issue(t, &x509.Certificate{
		URIs:        []*url.URL{u},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, validFor)
}

func (ca *CA) issue(t testing.TB, tmpl *x509.Certificate, validFor time.Duration) Pair {
	t.Helper()
	return ca.issueUntil(t, tmpl, time.Now().Add(validFor).Truncate(time.Second))
}

func (ca *CA) issueUntil(t testing.TB, tmpl *x509.Certificate, notAfter time.Time) Pair {
	t.Helper()
	key := newKey(t)
	tmpl.SerialNumber = serial(t)
	from := time.Now()
	if notAfter.Before(from) {
		from = notAfter
	}
	tmpl.NotBefore = from.Add(-time.Hour)
	tmpl.NotAfter = notAfter
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatalf("testpki: issue %s: %v", tmpl.Subject.CommonName, err)
	}
	cert, _ := x509.ParseCertificate(der)
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatalf("testpki: marshal key: %v", err)
	}
	return Pair{CertPEM: encode("CERTIFICATE", der), KeyPEM: encode("PRIVATE KEY", kder), Cert: cert}
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("testpki: key: %v", err)
	}
	return k
}

func serial(t testing.TB) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatalf("testpki: serial: %v", err)
	}
	return n
}

func encode(typ string, der []byte) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}))
}
