package client

import "time"

// Auth is how a subscription's attempts authenticate to its endpoint, as
// sent on create and update: OAuth2 client credentials (Type "oauth2")
// or a client certificate (Type "mtls"). Its secrets (ClientSecret,
// PrivateKey) are write-only: answers carry an AuthView instead.
type Auth struct {
	Type string `json:"type"`

	// OAuth2 client credentials: each attempt carries a bearer token
	// from TokenURL.
	TokenURL     string   `json:"tokenUrl,omitempty"`
	ClientID     string   `json:"clientId,omitempty"`
	ClientSecret string   `json:"clientSecret,omitempty"`
	Scopes       []string `json:"scopes,omitempty"`
	Audience     string   `json:"audience,omitempty"`

	// Mutual TLS, all PEM: the attempt's connection presents Certificate
	// and PrivateKey, and trusts CABundle (when set) for this endpoint.
	Certificate string `json:"certificate,omitempty"`
	PrivateKey  string `json:"privateKey,omitempty"`
	CABundle    string `json:"caBundle,omitempty"`
}

// Auth types.
const (
	AuthOAuth2 = "oauth2"
	AuthMTLS   = "mtls"
)

// OAuth2 returns the Auth of the OAuth2 client-credentials grant.
func OAuth2(tokenURL, clientID, clientSecret string, scopes []string, audience string) *Auth {
	return &Auth{Type: AuthOAuth2, TokenURL: tokenURL, ClientID: clientID, ClientSecret: clientSecret, Scopes: scopes, Audience: audience}
}

// MTLS returns the Auth of a client certificate (caBundle may be "").
func MTLS(certificatePEM, privateKeyPEM, caBundlePEM string) *Auth {
	return &Auth{Type: AuthMTLS, Certificate: certificatePEM, PrivateKey: privateKeyPEM, CABundle: caBundlePEM}
}

// AuthView is a subscription's endpoint authentication as answers show
// it: which kind, and its parts that are not secret.
type AuthView struct {
	Type string `json:"type"`

	// OAuth2.
	TokenURL string   `json:"tokenUrl,omitempty"`
	ClientID string   `json:"clientId,omitempty"`
	Scopes   []string `json:"scopes,omitempty"`
	Audience string   `json:"audience,omitempty"`

	// Mutual TLS: the client certificate's subject, issuer and expiry, and
	// whether a CA bundle replaces the system roots for the endpoint.
	Subject              string     `json:"subject,omitempty"`
	Issuer               string     `json:"issuer,omitempty"`
	CertificateExpiresAt *time.Time `json:"certificateExpiresAt,omitempty"`
	HasCABundle          bool       `json:"hasCaBundle,omitempty"`
}
