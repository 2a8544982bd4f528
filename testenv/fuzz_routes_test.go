package testenv_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/onestack/webhooks/testenv"
)

// operation is one method and path of the served OpenAPI document.
type operation struct{ method, path string }

// FuzzRoutes drives every operation of /openapi.json with arbitrary ids in
// its path and arbitrary bodies, authenticated as an operator or a tenant:
// whatever the input, the answer is never a 5xx (an id that cannot exist is
// a 404, a bad body a 4xx, never an outage).
func FuzzRoutes(f *testing.F) {
	env := testenv.Start(f, testenv.Options{})
	ten, err := env.CreateTenant("fuzz", 1_000_000)
	if err != nil {
		f.Fatal(err)
	}
	sub, err := env.Subscribe(ten, "https://example.com/h", "ticket.*")
	if err != nil {
		f.Fatal(err)
	}
	doc, err := env.Do("GET", "/openapi.json", "", nil)
	if err != nil {
		f.Fatal(err)
	}
	var spec struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(doc.Body, &spec); err != nil {
		f.Fatal(err)
	}
	var ops []operation
	for path, methods := range spec.Paths {
		for m := range methods {
			ops = append(ops, operation{strings.ToUpper(m), path})
		}
	}
	slices.SortFunc(ops, func(a, b operation) int { return strings.Compare(a.method+a.path, b.method+b.path) })

	hostile := []string{"%00", "é", "../../admin", "' OR 1=1 --", "", "sub_", "ten_01ZZZZZZZZZZZZZZZZZZZZZZZZ", "key_*", "a.b.>", strings.Repeat("x", 300)}
	bodies := []string{"", "{}", `{"url":"https://example.com/h","eventTypes":["ticket.*"]}`, `{"since":"2026-01-01T00:00:00Z"}`, `{"ids":["%00"]}`, "[", "null"}
	for i := range ops {
		for j, id := range hostile {
			f.Add(uint16(i), id, j%2 == 0, []byte(bodies[(i+j)%len(bodies)]))
		}
	}
	// realFirst puts an existing id in the path's first slot, so the
	// hostile one reaches the second ({keyId}) past the first's checks.
	f.Fuzz(func(t *testing.T, pick uint16, id string, realFirst bool, body []byte) {
		op := ops[int(pick)%len(ops)]
		first := id
		if realFirst {
			first = sub.ID
			if strings.HasPrefix(op.path, "/admin/") {
				first = ten.ID
			}
		}
		path := strings.NewReplacer("{id}", first, "{keyId}", id).Replace(op.path)
		req, err := http.NewRequest(op.method, env.URL()+path, bytes.NewReader(body))
		if err != nil {
			// Not a URL as it stands: send its escaped form instead.
			path = strings.NewReplacer("{id}", url.PathEscape(first), "{keyId}", url.PathEscape(id)).Replace(op.path)
			if req, err = http.NewRequest(op.method, env.URL()+path, bytes.NewReader(body)); err != nil {
				t.Skip("no request can carry this id")
			}
		}
		req.Header.Set("Content-Type", "application/json")
		token := ten.APIKey
		if strings.HasPrefix(op.path, "/admin/") {
			token = env.AdminToken
		}
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", op.method, path, err)
		}
		answer, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode >= 500 {
			t.Fatalf("%s %s with body %q = %d %s, want no 5xx", op.method, path, body, resp.StatusCode, answer)
		}
	})
}
