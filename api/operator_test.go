package api

import (
	"crypto/tls"
	"net/http/httptest"
	"testing"
)

func TestCheckPublicURL(t *testing.T) {
	for in, ok := range map[string]bool{
		"https://hooks.example.com":      true,
		"https://hooks.example.com/":     true,
		"http://127.0.0.1:8080":          true,
		"hooks.example.com":              false,
		"ftp://hooks.example.com":        false,
		"https://":                       false,
		"https://u:p@hooks.example.com":  false,
		"https://hooks.example.com/base": false,
		"https://hooks.example.com/?x=1": false,
		"https://hooks.example.com/#x":   false,
	} {
		if err := CheckPublicURL(in); (err == nil) != ok {
			t.Errorf("CheckPublicURL(%q) = %v, want ok %v", in, err, ok)
		}
	}
}

func TestPublicBase(t *testing.T) {
	r := httptest.NewRequest("POST", "http://10.0.0.1:8080/admin/tenants/x/portal-sessions", nil)
	if got := publicBase("", r); got != "http://10.0.0.1:8080" {
		t.Errorf("publicBase over http = %q", got)
	}
	r.TLS = &tls.ConnectionState{}
	if got := publicBase("", r); got != "https://10.0.0.1:8080" {
		t.Errorf("publicBase over https = %q", got)
	}
	if got := publicBase("https://hooks.example.com/", r); got != "https://hooks.example.com" {
		t.Errorf("publicBase with a public URL = %q", got)
	}
}
