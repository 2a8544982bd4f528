package testenv_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/onestack/webhooks/testenv"
)

// TestContractCatchesBreakage shows that the contract check fails when a
// handler or the document is wrong: real answers of the stack, and
// answers altered the way a broken handler would alter them, are checked
// against the served document and against a broken copy of it.
func TestContractCatchesBreakage(t *testing.T) {
	t.Parallel()
	env, ten := setup(t, testenv.Options{})
	sub, err := env.Subscribe(ten, "http://127.0.0.1:9/h", "ticket.*")
	if err != nil {
		t.Fatal(err)
	}
	get := func(path, key string) (*http.Request, *testenv.Response) {
		t.Helper()
		r, err := env.Do("GET", path, key, nil)
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest("GET", env.URL()+path, nil)
		return req, r
	}
	req, good := get("/api/subscriptions/"+sub.ID, ten.APIKey)
	c := env.Contract()
	if err := c.Check(req, nil, good.Status, good.Header, good.Body); err != nil {
		t.Fatalf("the real answer breaks the document: %v", err)
	}
	without := func(field string) []byte {
		var m map[string]any
		json.Unmarshal(good.Body, &m)
		delete(m, field)
		b, _ := json.Marshal(m)
		return b
	}
	with := func(field string, v any) []byte {
		var m map[string]any
		json.Unmarshal(good.Body, &m)
		m[field] = v
		b, _ := json.Marshal(m)
		return b
	}
	noHeader := func(name string) http.Header {
		h := good.Header.Clone()
		h.Del(name)
		return h
	}
	broken := []struct {
		name   string
		req    *http.Request
		status int
		header http.Header
		body   []byte
		want   string
	}{
		{"a required field dropped", req, 200, good.Header, without("url"), "url"},
		{"an undocumented field added", req, 200, good.Header, with("secret", "whsec_x"), "secret"},
		{"a field of the wrong type", req, 200, good.Header, with("active", "yes"), "active"},
		{"a rate-limit header dropped", req, 200, noHeader("X-RateLimit-Remaining"), good.Body, "X-Ratelimit-Remaining"},
		{"an undocumented status", req, http.StatusTeapot, good.Header, good.Body, "418"},
		{"an error outside the error shape", req, 404, good.Header, []byte(`{"message":"nope"}`), "schema"},
		{"a body on a 304", req, 304, good.Header, good.Body, "without a body"},
	}
	for _, b := range broken {
		err := c.Check(b.req, nil, b.status, b.header, b.body)
		if err == nil || !strings.Contains(strings.ToLower(err.Error()), strings.ToLower(b.want)) {
			t.Errorf("%s: Check = %v, want a violation naming %q", b.name, err, b.want)
		}
	}

	// A route the document lacks, answered 200, and a 405 whose Allow
	// differs from the document.
	undocumented, _ := http.NewRequest("GET", env.URL()+"/api/widgets", nil)
	if err := c.Check(undocumented, nil, 200, good.Header, []byte(`{}`)); err == nil || !strings.Contains(err.Error(), "route missing") {
		t.Errorf("undocumented route: Check = %v, want a violation", err)
	}
	put, _ := http.NewRequest("PUT", env.URL()+"/api/subscriptions", nil)
	h := http.Header{"Allow": {"GET, POST"}}
	if err := c.Check(put, nil, 405, h, []byte(`{"error":"no","code":"METHOD_NOT_ALLOWED"}`)); err == nil || !strings.Contains(err.Error(), "Allow") {
		t.Errorf("405 with a wrong Allow: Check = %v, want a violation", err)
	}
	// A request the document refuses but the server accepted.
	post, _ := http.NewRequest("POST", env.URL()+"/api/events", nil)
	post.Header.Set("Content-Type", "application/json")
	if err := c.Check(post, []byte(`{"type":"ticket.updated"}`), 202, good.Header, []byte(`{"id":"evt_1"}`)); err == nil || !strings.Contains(err.Error(), "refuses this request") {
		t.Errorf("accepted a request the document refuses: Check = %v, want a violation", err)
	}

	// The same real answer against a broken document: a status removed.
	doc, err := env.Do("GET", "/openapi.json", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	var d map[string]any
	if err := json.Unmarshal(doc.Body, &d); err != nil {
		t.Fatal(err)
	}
	op := d["paths"].(map[string]any)["/api/subscriptions/{id}"].(map[string]any)["get"].(map[string]any)
	delete(op["responses"].(map[string]any), "200")
	b, _ := json.Marshal(d)
	brokenDoc, err := testenv.NewContract(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := brokenDoc.Check(req, nil, good.Status, good.Header, good.Body); err == nil || !strings.Contains(err.Error(), "not documented") {
		t.Errorf("against a document without the 200: Check = %v, want a violation", err)
	}
}

// TestOddRequestsKeepTheContract sends requests off the happy path (other
// methods, unknown paths, HEAD, bad parameters) through the checked
// client: each answer must still be one the document allows.
func TestOddRequestsKeepTheContract(t *testing.T) {
	t.Parallel()
	env, ten := setup(t, testenv.Options{})
	sub, err := env.Subscribe(ten, "http://127.0.0.1:9/h", "*")
	if err != nil {
		t.Fatal(err)
	}
	for _, rq := range []struct{ method, path, token string }{
		{"HEAD", "/api/subscriptions", ten.APIKey},
		{"HEAD", "/healthz", ""},
		{"OPTIONS", "/api/subscriptions", ten.APIKey},
		{"GET", "/api/subscriptions/batch", ten.APIKey},
		{"PUT", "/api/subscriptions/" + sub.ID, ten.APIKey},
		{"POST", "/api/deliveries/dlv_nope", ten.APIKey},
		{"GET", "/api/subscriptions/" + sub.ID + "/deliveries?status=nope", ten.APIKey},
		{"GET", "/api/subscriptions?cursor=nope", ten.APIKey},
		{"GET", "/api/deliveries/dlv_nope", ten.APIKey},
		{"POST", "/api/deliveries/dlv_nope/retry", ten.APIKey},
		{"GET", "/admin/nope", env.AdminToken},
		{"PUT", "/admin/tenants", env.AdminToken},
		{"GET", "/admin/tenants?limit=0", env.AdminToken},
		{"GET", "/admin/tenants/ten_nope/keys", env.AdminToken},
		{"DELETE", "/admin/tenants/ten_nope/portal-sessions", env.AdminToken},
		{"GET", "/admin/tenants", "wrong"},
		{"GET", "/readyz", ""},
		{"GET", "/openapi.json", ""},
		{"GET", "/metrics", ""},
		{"GET", "/nope", ""},
	} {
		if _, err := env.Do(rq.method, rq.path, rq.token, nil); err != nil {
			t.Fatal(err)
		}
	}
	r, _ := env.Do("POST", "/api/subscriptions/"+sub.ID+"/test", ten.APIKey, nil, "Idempotency-Key", strings.Repeat("k", 300))
	if r.Status != 400 {
		t.Errorf("an Idempotency-Key over 255 characters = %d, want 400", r.Status)
	}
}
