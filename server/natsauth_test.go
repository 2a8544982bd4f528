package server

import (
	"strings"
	"testing"
)

func TestRedactURLs(t *testing.T) {
	tests := []struct{ in, want string }{
		{"nats://n1:4222", "nats://n1:4222"},
		{"nats://hooks:pa55@n1:4222", "nats://hooks:REDACTED@n1:4222"},
		{"nats://s3cret@n1:4222", "nats://REDACTED@n1:4222"},
		{"nats://n1:4222?token=s3cret&name=x", "nats://n1:4222?name=x&token=REDACTED"},
		{"tls://u:p@n1:4222,tls://u:p@n2:4222", "tls://u:REDACTED@n1:4222,tls://u:REDACTED@n2:4222"},
		{"n1:4222", "n1:4222"},
		{"u:p@n1:4222", "REDACTED@n1:4222"},
		{"nats://u:p%zz@n1:4222", "nats://REDACTED@n1:4222"}, // does not parse
		{"", ""},
	}
	for _, tt := range tests {
		if got := RedactURLs(tt.in); got != tt.want {
			t.Errorf("RedactURLs(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestNATSAuthValidate(t *testing.T) {
	tests := []struct {
		auth    NATSAuth
		listen  string
		wantErr string
	}{
		{NATSAuth{}, "", ""},
		{NATSAuth{}, "127.0.0.1:4222", "needs credentials"},
		{NATSAuth{Token: "t"}, "127.0.0.1:4222", ""},
		{NATSAuth{User: "u", Password: "p"}, "127.0.0.1:4222", ""},
		{NATSAuth{NkeySeedFile: "seed"}, "127.0.0.1:4222", ""},
		{NATSAuth{User: "u"}, "127.0.0.1:4222", "needs a password"},
		{NATSAuth{Password: "p"}, "", "needs a password"},
		{NATSAuth{Token: "t", User: "u", Password: "p"}, "", "one of"},
		{NATSAuth{Token: "t", TLSCert: "c.pem"}, "127.0.0.1:4222", "needs its key"},
	}
	for _, tt := range tests {
		err := tt.auth.validate(tt.listen)
		if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("%+v.validate(%q) = %v, want %q", tt.auth, tt.listen, err, tt.wantErr)
		}
	}
}
