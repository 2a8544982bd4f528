package endpointauth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
)

// mtlsProblems checks an mtls config: the certificate and the key parse,
// match, and the CA bundle holds at least one certificate.
func (c *Config) mtlsProblems() []Problem {
	var out []Problem
	add := func(field, reason string) { out = append(out, Problem{field, reason}) }
	certOK, keyOK := false, false
	switch {
	case c.Certificate == "":
		add("certificate", "is required")
	case len(c.Certificate) > MaxPEMLen:
		add("certificate", fmt.Sprintf("must be at most %d bytes", MaxPEMLen))
	default:
		if _, err := parseLeaf(c.Certificate); err != nil {
			add("certificate", err.Error())
		} else {
			certOK = true
		}
	}
	switch {
	case c.PrivateKey == "":
		add("privateKey", "is required")
	case len(c.PrivateKey) > MaxPEMLen:
		add("privateKey", fmt.Sprintf("must be at most %d bytes", MaxPEMLen))
	default:
		if _, err := parseKey(c.PrivateKey); err != nil {
			add("privateKey", err.Error())
		} else {
			keyOK = true
		}
	}
	if certOK && keyOK {
		if _, err := tls.X509KeyPair([]byte(c.Certificate), []byte(c.PrivateKey)); err != nil {
			add("privateKey", "does not match the certificate's public key")
		}
	}
	if c.CABundle != "" {
		if len(c.CABundle) > MaxCABundleLen {
			add("caBundle", fmt.Sprintf("must be at most %d bytes", MaxCABundleLen))
		} else if _, err := parseBundle(c.CABundle); err != nil {
			add("caBundle", err.Error())
		}
	}
	return out
}

// errNoCertificate is the reason of a certificate or bundle without one.
var errNoCertificate = errors.New("must hold a PEM \"CERTIFICATE\" block")

// parseLeaf parses the first certificate of a PEM chain, and checks that
// every block of it is a certificate that parses.
func parseLeaf(s string) (*x509.Certificate, error) {
	certs, err := parseCertificates(s)
	if err != nil {
		return nil, err
	}
	return certs[0], nil
}

// parseCertificates parses every PEM block of s, each a certificate.
func parseCertificates(s string) ([]*x509.Certificate, error) {
	rest := []byte(s)
	var certs []*x509.Certificate
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("holds a PEM %q block; only \"CERTIFICATE\" blocks belong here", b.Type)
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d does not parse as X.509", len(certs)+1)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 || strings.TrimSpace(string(rest)) != "" {
		if len(certs) > 0 {
			return nil, errors.New("has text after its last PEM block that is not PEM")
		}
		return nil, errNoCertificate
	}
	return certs, nil
}

// parseBundle parses a CA bundle into a pool.
func parseBundle(s string) (*x509.CertPool, error) {
	certs, err := parseCertificates(s)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	for _, c := range certs {
		pool.AddCert(c)
	}
	return pool, nil
}

// parseKey parses one PEM private key: PKCS #8, PKCS #1 (RSA) or SEC 1
// (EC), which may follow the "EC PARAMETERS" block `openssl ecparam
// -genkey` writes first (as tls.X509KeyPair skips it). The reason never
// quotes the key.
func parseKey(s string) (crypto.PrivateKey, error) {
	b, rest := pem.Decode([]byte(s))
	for b != nil && b.Type == "EC PARAMETERS" {
		b, rest = pem.Decode(rest)
	}
	if b == nil {
		return nil, errors.New("must hold one PEM private key block (\"PRIVATE KEY\", \"RSA PRIVATE KEY\" or \"EC PRIVATE KEY\")")
	}
	if strings.TrimSpace(string(rest)) != "" {
		return nil, errors.New("must hold one PEM block, the private key, and nothing else")
	}
	var (
		k   any
		err error
	)
	switch b.Type {
	case "PRIVATE KEY":
		k, err = x509.ParsePKCS8PrivateKey(b.Bytes)
	case "RSA PRIVATE KEY":
		k, err = x509.ParsePKCS1PrivateKey(b.Bytes)
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(b.Bytes)
	default:
		return nil, fmt.Errorf("holds a PEM %q block; want \"PRIVATE KEY\", \"RSA PRIVATE KEY\" or \"EC PRIVATE KEY\" (an encrypted key is not accepted)", b.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("%s block does not parse", b.Type)
	}
	switch k.(type) {
	case *rsa.PrivateKey, *ecdsa.PrivateKey, ed25519.PrivateKey:
		return k, nil
	}
	return nil, errors.New("must be an RSA, ECDSA or Ed25519 key")
}

// tlsConfig is the client TLS configuration of an mtls config: its
// certificate presented, and its CA bundle, if any, as the only roots.
func (c *Config) tlsConfig() (*tls.Config, error) {
	pair, err := tls.X509KeyPair([]byte(c.Certificate), []byte(c.PrivateKey))
	if err != nil {
		return nil, fmt.Errorf("mtls: client certificate and key: %w", err)
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{pair}}
	if c.CABundle != "" {
		if tc.RootCAs, err = parseBundle(c.CABundle); err != nil {
			return nil, fmt.Errorf("mtls: caBundle: %w", err)
		}
	}
	return tc, nil
}
