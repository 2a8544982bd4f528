package dispatcher

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/onestack/webhooks/egress"
	"github.com/onestack/webhooks/endpointauth"
	"github.com/onestack/webhooks/internal/testpki"
)

// TestDescribeTokenErrors: an attempt that could not get its OAuth2 token
// says so, "oauth2 token: ", then what happened, as a transport error is
// described, and never the secret.
func TestDescribeTokenErrors(t *testing.T) {
	t.Parallel()
	refusing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprint(w, `{"error":"invalid_client","error_description":"bad secret hunter2"}`)
	}))
	defer refusing.Close()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + l.Addr().String() + "/token"
	l.Close()
	open := egress.Policy{AllowHTTP: true, AllowPrivate: true}
	tests := []struct {
		name     string
		policy   egress.Policy
		tokenURL string
		want     string
	}{
		{"refused credentials", open, refusing.URL, "oauth2 token: the token endpoint answered 401 (invalid_client)"},
		{"connection refused", open, closed, "oauth2 token: connection refused"},
		{"internal address", egress.Policy{AllowHTTP: true}, refusing.URL, "oauth2 token: destination refused: internal address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := endpointauth.NewAuthenticator(endpointauth.AuthenticatorConfig{Base: newTransport(tt.policy)})
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://receiver.invalid/", nil)
			auth := (&endpointauth.Config{Type: endpointauth.TypeOAuth2, TokenURL: tt.tokenURL, ClientID: "c", ClientSecret: "hunter2"}).Prepared()
			_, err := a.Prepare(ctx, "sub_1", auth, req)
			if err == nil {
				t.Fatal("Prepare succeeded; want a token error")
			}
			if got := describe(ctx, err); got != tt.want {
				t.Errorf("describe = %q (%v), want %q", got, err, tt.want)
			}
			if !isTokenError(err) {
				t.Errorf("isTokenError(%v) = false", err)
			}
		})
	}
}

// TestDescribeMissingClientCertificate: an endpoint that requires a client
// certificate refuses a connection without one (or with one it does not
// trust); the attempt says so.
func TestDescribeMissingClientCertificate(t *testing.T) {
	t.Parallel()
	ca := testpki.NewCA(t, "Private CA")
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{ca.Server(t).TLS(t)}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: ca.Pool()}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	defer srv.Close()
	stranger := testpki.NewCA(t, "Other CA").Client(t, "intruder", time.Hour)
	for _, tt := range []struct {
		name  string
		certs []tls.Certificate
	}{{"none", nil}, {"another CA's", []tls.Certificate{stranger.TLS(t)}}} {
		for _, version := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
			tr := newTransport(egress.Policy{AllowPrivate: true})
			tr.TLSClientConfig = &tls.Config{RootCAs: ca.Pool(), Certificates: tt.certs, MinVersion: version, MaxVersion: version}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL, nil)
			resp, err := tr.RoundTrip(req)
			if err == nil {
				resp.Body.Close()
				t.Fatalf("%s certificate, TLS %x: the endpoint accepted the request", tt.name, version)
			}
			want := "TLS error: the endpoint refused the handshake (a client certificate it requires missing or not accepted)"
			if got := describe(ctx, err); got != want {
				t.Errorf("%s certificate, TLS %x: describe = %q (%v), want %q", tt.name, version, got, err, want)
			}
			cancel()
		}
	}
}
