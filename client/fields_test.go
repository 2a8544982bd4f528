package client

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// answering is a server that records each request's body and answers
// every request with the same JSON.
func answering(t *testing.T, status int, body string) (*Client, *[]map[string]any) {
	t.Helper()
	var sent []map[string]any
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m map[string]any
		json.NewDecoder(r.Body).Decode(&m)
		sent = append(sent, m)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	c, err := New(Config{BaseURL: srv.URL, APIKey: "sk_test"})
	if err != nil {
		t.Fatal(err)
	}
	return c, &sent
}

// TestAuthSecretsAreSentNotRead: create sends the OAuth2 client secret;
// the answer, in the spec's shape, shows only the parts that are not
// secret, and the view type has no field that could hold one.
func TestAuthSecretsAreSentNotRead(t *testing.T) {
	c, sent := answering(t, http.StatusCreated, `{"id":"sub_1","url":"https://example.com/h","eventTypes":["*"],
		"active":true,"signatureScheme":"v1","secret":"whsec_x","sendTraceparent":false,
		"auth":{"type":"oauth2","tokenUrl":"https://idp.example.com/token","clientId":"cid","scopes":["a","b"],"audience":"aud"}}`)
	off := false
	s, err := c.CreateSubscription(context.Background(), NewSubscription{URL: "https://example.com/h", EventTypes: []string{"*"},
		Auth: OAuth2("https://idp.example.com/token", "cid", "s3cret", []string{"a", "b"}, "aud"), SendTraceparent: &off})
	if err != nil {
		t.Fatal(err)
	}
	wantSent := map[string]any{"type": "oauth2", "tokenUrl": "https://idp.example.com/token", "clientId": "cid",
		"clientSecret": "s3cret", "scopes": []any{"a", "b"}, "audience": "aud"}
	if diff := cmp.Diff(wantSent, (*sent)[0]["auth"]); diff != "" {
		t.Errorf("auth sent (-want +got):\n%s", diff)
	}
	if got := (*sent)[0]["sendTraceparent"]; got != false {
		t.Errorf("sendTraceparent sent = %v, want false", got)
	}
	want := &AuthView{Type: "oauth2", TokenURL: "https://idp.example.com/token", ClientID: "cid", Scopes: []string{"a", "b"}, Audience: "aud"}
	if diff := cmp.Diff(want, s.Auth); diff != "" {
		t.Errorf("Auth read (-want +got):\n%s", diff)
	}
	if s.SendTraceparent == nil || *s.SendTraceparent {
		t.Errorf("SendTraceparent = %v, want false", s.SendTraceparent)
	}
	b, _ := json.Marshal(s.Auth)
	if strings.Contains(string(b), "secret") || strings.Contains(string(b), "privateKey") {
		t.Errorf("AuthView can carry a secret: %s", b)
	}
}

// TestMTLSView: an mTLS answer shows the certificate's subject and expiry.
func TestMTLSView(t *testing.T) {
	c, sent := answering(t, http.StatusOK, `{"id":"sub_1","auth":{"type":"mtls","subject":"CN=hooks","certificateExpiresAt":"2027-01-02T03:04:05Z"},
		"failingSince":"2026-12-01T10:00:00Z","backlog":7,"active":false,"disabledReason":"endpoint answered 410 Gone"}`)
	s, err := c.UpdateSubscription(context.Background(), "sub_1", SubscriptionPatch{Auth: MTLS("CERT", "KEY", "")})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]any{"type": "mtls", "certificate": "CERT", "privateKey": "KEY"}, (*sent)[0]["auth"]); diff != "" {
		t.Errorf("auth sent (-want +got):\n%s", diff)
	}
	exp := time.Date(2027, 1, 2, 3, 4, 5, 0, time.UTC)
	if s.Auth == nil || s.Auth.Subject != "CN=hooks" || s.Auth.CertificateExpiresAt == nil || !s.Auth.CertificateExpiresAt.Equal(exp) {
		t.Errorf("Auth = %+v", s.Auth)
	}
	if s.FailingSince == nil || !s.FailingSince.Equal(time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)) {
		t.Errorf("FailingSince = %v", s.FailingSince)
	}
	if s.Backlog == nil || *s.Backlog != 7 {
		t.Errorf("Backlog = %v, want 7", s.Backlog)
	}
}

// TestPatchAuth: a patch sends auth only when asked to, and RemoveAuth
// sends an explicit null.
func TestPatchAuth(t *testing.T) {
	url := "https://example.com/new"
	tests := []struct {
		name  string
		patch SubscriptionPatch
		want  string
	}{
		{"untouched", SubscriptionPatch{URL: &url}, `{"url":"https://example.com/new"}`},
		{"removed", SubscriptionPatch{URL: &url, RemoveAuth: true}, `{"url":"https://example.com/new","auth":null}`},
		{"removal wins", SubscriptionPatch{Auth: MTLS("C", "K", ""), RemoveAuth: true}, `{"auth":null}`},
		{"set", SubscriptionPatch{Auth: MTLS("C", "K", "CA")}, `{"auth":{"type":"mtls","certificate":"C","privateKey":"K","caBundle":"CA"}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := json.Marshal(tt.patch)
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tt.want {
				t.Errorf("Marshal(%+v) = %s, want %s", tt.patch, b, tt.want)
			}
		})
	}
}

// TestAttemptTraceID: an attempt's trace id is read when the server
// sends one.
func TestAttemptTraceID(t *testing.T) {
	c, _ := answering(t, http.StatusOK, `{"id":"dlv_1","status":"succeeded","attempts":[
		{"at":"2026-12-01T10:00:00Z","statusCode":204,"durationMs":3,"responseBody":"","traceId":"4bf92f3577b34da6a3ce929d0e0e4736"},
		{"at":"2026-12-01T10:00:01Z","statusCode":204,"durationMs":3,"responseBody":""}]}`)
	d, err := c.Delivery(context.Background(), "dlv_1")
	if err != nil {
		t.Fatal(err)
	}
	if got := []string{d.Attempts[0].TraceID, d.Attempts[1].TraceID}; !cmp.Equal(got, []string{"4bf92f3577b34da6a3ce929d0e0e4736", ""}) {
		t.Errorf("trace ids = %q", got)
	}
}

// TestLimits reads the spec's shape of GET /api/limits.
func TestLimits(t *testing.T) {
	c, _ := answering(t, http.StatusOK, `{"limits":{"requestsPerMinute":100,"subscriptions":50,"storedBytes":1073741824},"usage":{"subscriptions":3,"jobs":0}}`)
	l, err := c.Limits(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := Limits{Max: map[string]int64{"requestsPerMinute": 100, "subscriptions": 50, "storedBytes": 1 << 30},
		Usage: map[string]int64{"subscriptions": 3, "jobs": 0}}
	if diff := cmp.Diff(want, l); diff != "" {
		t.Errorf("Limits (-want +got):\n%s", diff)
	}
}
