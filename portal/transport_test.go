package portal

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/onestack/webhooks/client"
)

// seen is what the API handler was given of one in-process request.
type seen struct {
	Method, Path, Query, Host, RemoteAddr string
	Authorization, IfMatch, IfNoneMatch   string
	Body                                  string
}

// TestInProcessClient: a page's client hands the API handler a request as
// one from outside would arrive (its path and query, the browser's host
// and address, the client's headers, its body) without the client's
// placeholder key; the handler's answer comes back whole (status,
// headers, body), a cached answer is revalidated only within its tenant,
// and a 503 is not tried again (the page answers it).
func TestInProcessClient(t *testing.T) {
	var got []seen
	answers := []func(w http.ResponseWriter){
		func(w http.ResponseWriter) {
			w.Header().Set("ETag", `"r1"`)
			w.Header().Set("X-RateLimit-Limit", "100")
			w.Header().Set("X-RateLimit-Remaining", "97")
			w.Header().Set("X-RateLimit-Reset", "1764172860")
			w.Write([]byte(`{"id":"sub_1","url":"https://example.com/h"}`))
		},
		func(w http.ResponseWriter) { w.Header().Set("ETag", `"r1"`); w.WriteHeader(http.StatusNotModified) },
		func(w http.ResponseWriter) { w.Header().Set("ETag", `"r1"`); w.Write([]byte(`{"id":"sub_1"}`)) },
		func(w http.ResponseWriter) {
			w.Header().Set("Retry-After", "3")
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte(`{"error":"busy","code":"UNAVAILABLE"}`))
		},
	}
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got = append(got, seen{r.Method, r.URL.Path, r.URL.RawQuery, r.Host, r.RemoteAddr,
			r.Header.Get("Authorization"), r.Header.Get("If-Match"), r.Header.Get("If-None-Match"), string(body)})
		answers[len(got)-1](w)
	})
	p := &Portal{cfg: Config{API: api}, cache: client.NewCache(8)}
	browser := httptest.NewRequest("GET", "/portal/subscriptions/sub_1", nil)
	browser.Host, browser.RemoteAddr = "hooks.example.com", "203.0.113.5:4000"
	a := p.apiClient(browser, Session{Tenant: "ten_a", KeyID: "key_1"})
	ctx := browser.Context()

	s, etag, err := a.SubscriptionWithETag(ctx, "sub_1")
	if err != nil || s.URL != "https://example.com/h" || etag != `"r1"` {
		t.Fatalf("first read = %+v, %q, %v", s, etag, err)
	}
	if b := a.Budget(); b.Limit != 100 || b.Remaining != 97 || b.Reset.Unix() != 1764172860 {
		t.Errorf("Budget = %+v", b)
	}
	if s, err := a.Subscription(ctx, "sub_1"); err != nil || s.URL != "https://example.com/h" {
		t.Fatalf("revalidated read = %+v, %v; want the cached answer", s, err)
	}
	other := p.apiClient(browser, Session{Tenant: "ten_b"})
	if _, err := other.Subscription(ctx, "sub_1"); err != nil {
		t.Fatal(err)
	}
	_, err = a.UpdateSubscriptionIfMatch(ctx, "sub_1", `"r1"`, client.SubscriptionPatch{Active: new(bool)})
	var ae *client.Error
	if !errors.As(err, &ae) || ae.Status != http.StatusServiceUnavailable || ae.RetryAfter != 3 || apiMessage(ae) != "busy" {
		t.Fatalf("a 503 = %v, want its Error with Retry-After 3", err)
	}

	page := seen{Method: "GET", Path: "/api/subscriptions/sub_1", Host: "hooks.example.com", RemoteAddr: "203.0.113.5:4000"}
	revalidate := page
	revalidate.IfNoneMatch = `"r1"`
	update := page
	update.Method, update.IfMatch, update.Body = "PATCH", `"r1"`, `{"active":false}`
	want := []seen{page, revalidate, page, update}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("requests the API was given (-want +got):\n%s", diff)
	}
}

// TestAPIMessage: an answer in the API's error shape shows its message;
// any other shows its status's text.
func TestAPIMessage(t *testing.T) {
	for _, tt := range []struct {
		err  client.Error
		want string
	}{
		{client.Error{Status: 400, Code: "VALIDATION_FAILED", Message: "invalid"}, "invalid"},
		{client.Error{Status: 502, Message: "<html>bad gateway</html>"}, "Bad Gateway"},
	} {
		if got := apiMessage(&tt.err); got != tt.want {
			t.Errorf("apiMessage(%+v) = %q, want %q", tt.err, got, tt.want)
		}
	}
}
