package testenv

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

// Contract checks API exchanges against an OpenAPI document, normally the
// one the stack serves at /openapi.json: the document is then a checked
// fact, not hand-kept text. Every request the stack tests send through
// Env.Do or Env.HTTPClient is checked; a test fails at its end if any
// exchange broke the document.
//
// What one exchange must satisfy:
//   - its route (path and method) is in the document; a path it lacks is
//     answered 404 in the error shape, and a method it lacks 405 with an
//     Allow header naming exactly the documented methods (401 when the
//     request carried no valid credentials, which is checked first);
//   - its status is one the operation documents, with every required
//     header (rate-limit headers, Retry-After, ETag, Location, ...) and a
//     body matching the documented schema and content type, or no body
//     where none is documented (304s included);
//   - a request the document refuses (schema, parameters) is not accepted
//     (2xx): the document must be at least as permissive as the server.
//     Requests the server refuses for rules a schema cannot say (unknown
//     event types, loopback URLs) are fine either way.
//
// Paths under /portal/ are HTML pages, not API, and are not checked.
type Contract struct {
	doc    *openapi3.T
	router routers.Router

	// mu serialises validation: kin-openapi compiles schemas lazily.
	mu         sync.Mutex
	violations []string
}

// NewContract parses and validates an OpenAPI document.
func NewContract(doc []byte) (*Contract, error) {
	loader := openapi3.NewLoader()
	t, err := loader.LoadFromData(doc)
	if err != nil {
		return nil, fmt.Errorf("load openapi document: %w", err)
	}
	if err := t.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("openapi document is not valid: %w", err)
	}
	r, err := gorillamux.NewRouter(t)
	if err != nil {
		return nil, fmt.Errorf("openapi router: %w", err)
	}
	return &Contract{doc: t, router: r}, nil
}

// FetchContract reads the document a stack serves at base + /openapi.json.
func FetchContract(base string) (*Contract, error) {
	resp, err := http.Get(base + "/openapi.json")
	if err != nil {
		return nil, fmt.Errorf("get openapi.json: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("get openapi.json: %d %v", resp.StatusCode, err)
	}
	return NewContract(b)
}

// Violations returns every violation recorded so far.
func (c *Contract) Violations() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.violations)
}

// Record checks one exchange and keeps its violation, if any.
func (c *Contract) Record(req *http.Request, reqBody []byte, status int, header http.Header, body []byte) {
	if err := c.Check(req, reqBody, status, header, body); err != nil {
		c.mu.Lock()
		c.violations = append(c.violations, err.Error())
		c.mu.Unlock()
	}
}

// Check validates one exchange: the request as sent (with its body) and
// the answer as received. It returns nil when the exchange keeps to the
// document.
func (c *Contract) Check(req *http.Request, reqBody []byte, status int, header http.Header, body []byte) error {
	if strings.HasPrefix(req.URL.Path, "/portal/") || req.URL.Path == "/portal" {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	where := fmt.Sprintf("%s %s → %d", req.Method, req.URL.RequestURI(), status)
	err := c.check(req, reqBody, status, header, body)
	if err != nil {
		return fmt.Errorf("openapi contract: %s: %w\n  answer: %s", where, err, truncate(body, 400))
	}
	return nil
}

func (c *Contract) check(req *http.Request, reqBody []byte, status int, header http.Header, body []byte) error {
	req = req.Clone(context.Background())
	req.Body = io.NopCloser(bytes.NewReader(reqBody))
	head := req.Method == http.MethodHead
	if head {
		// HEAD is GET without the body (net/http serves it so).
		req.Method = http.MethodGet
	}
	route, params, err := c.router.FindRoute(req)
	switch {
	case errors.Is(err, routers.ErrPathNotFound):
		if status == http.StatusUnauthorized && isErrorShape(body, "UNAUTHORIZED") {
			return nil // credentials are checked before the path
		}
		if status != http.StatusNotFound || !isErrorShape(body, "NOT_FOUND") {
			return errors.New("route missing from the document (only a 404 NOT_FOUND may answer a path it lacks)")
		}
		return nil
	case errors.Is(err, routers.ErrMethodNotAllowed):
		return c.checkNotAllowed(req, status, header, body)
	case err != nil:
		return fmt.Errorf("find route: %w", err)
	}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, SkipSettingDefaults: true}}
	reqErr := openapi3filter.ValidateRequest(context.Background(), in)
	if reqErr != nil && status >= 200 && status < 300 {
		return fmt.Errorf("the document refuses this request, but the server accepted it: %w", reqErr)
	}
	resp := route.Operation.Responses.Status(status)
	if resp == nil || resp.Value == nil {
		return fmt.Errorf("status %d is not documented for %s %s", status, route.Method, route.Path)
	}
	if head {
		return nil
	}
	if len(resp.Value.Content) == 0 && len(bytes.TrimSpace(body)) > 0 {
		return fmt.Errorf("status %d is documented without a body, but one came", status)
	}
	if status == http.StatusNotModified {
		// kin-openapi skips 304s; their headers are checked here.
		for name, h := range resp.Value.Headers {
			if h.Value != nil && h.Value.Required && header.Get(name) == "" {
				return fmt.Errorf("response header %q missing", name)
			}
		}
		return nil
	}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: status, Header: header,
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true}}
	out.SetBodyBytes(body)
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		return err
	}
	return nil
}

// checkNotAllowed checks the answer to a method the document does not
// list for a path it does.
func (c *Contract) checkNotAllowed(req *http.Request, status int, header http.Header, body []byte) error {
	switch {
	case status == http.StatusUnauthorized && isErrorShape(body, "UNAUTHORIZED"):
		return nil // credentials are checked before the method
	case status != http.StatusMethodNotAllowed || !isErrorShape(body, "METHOD_NOT_ALLOWED"):
		return errors.New("method missing from the document (only a 405 METHOD_NOT_ALLOWED may answer it)")
	}
	var methods []string
	probe := req.Clone(context.Background())
	for _, m := range []string{"GET", "POST", "PATCH", "PUT", "DELETE"} {
		probe.Method = m
		if route, _, err := c.router.FindRoute(probe); err == nil {
			for op := range route.PathItem.Operations() {
				methods = append(methods, strings.ToUpper(op))
			}
			if route.PathItem.Get != nil {
				methods = append(methods, http.MethodHead)
			}
			break
		}
	}
	sort.Strings(methods)
	if want := strings.Join(methods, ", "); header.Get("Allow") != want {
		return fmt.Errorf("Allow = %q, want the documented methods %q", header.Get("Allow"), want)
	}
	return nil
}

// isErrorShape reports whether body is the API's error shape with code.
func isErrorShape(body []byte, code string) bool {
	var e map[string]json.RawMessage
	if json.Unmarshal(body, &e) != nil {
		return false
	}
	var got string
	json.Unmarshal(e["code"], &got)
	for k := range e {
		if k != "error" && k != "code" && k != "details" {
			return false
		}
	}
	return got == code && len(e["error"]) > 2
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}

// checkingTransport sends requests and records each exchange with a
// Contract.
type checkingTransport struct {
	base     http.RoundTripper
	contract *Contract
}

func (t checkingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	var reqBody []byte
	if req.Body != nil {
		b, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		reqBody = b
		req.Body = io.NopCloser(bytes.NewReader(b))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
	}
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	t.contract.Record(req, reqBody, resp.StatusCode, resp.Header, body)
	return resp, nil
}

// HTTPClient is a client whose every exchange with the stack is checked
// against the stack's OpenAPI document (a plain client for a stack made
// by New rather than Start).
func (e *Env) HTTPClient() *http.Client {
	if e.contract == nil {
		return http.DefaultClient
	}
	return &http.Client{Transport: checkingTransport{base: http.DefaultTransport, contract: e.contract}}
}

// Contract is the checker of the stack's exchanges; nil for a stack made
// by New rather than Start.
func (e *Env) Contract() *Contract { return e.contract }

// checkContract makes the test fail at its end if any exchange broke the
// stack's OpenAPI document.
func (e *Env) checkContract(t testing.TB) {
	c, err := FetchContract(e.URL())
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	e.contract = c
	t.Cleanup(func() {
		for _, v := range c.Violations() {
			t.Error(v)
		}
	})
}
