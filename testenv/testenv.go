// Package testenv runs the whole product in one process for tests and
// demos: embedded JetStream in a temporary directory, webhookd's stack on a
// loopback port, receivers that record and verify webhooks, and a
// simulator of ticket changes.
package testenv

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/onestack/webhooks/dispatcher"
	"github.com/onestack/webhooks/egress"
	"github.com/onestack/webhooks/jobs"
	"github.com/onestack/webhooks/server"
)

// Options tune the stack; the zero value gives a stack with short retries
// (100 ms, 200 ms: three attempts), plain http and private destinations
// allowed, and a random admin token.
type Options struct {
	// DataDir keeps JetStream; empty means a temporary directory.
	DataDir string
	// Schedule replaces the short test retry schedule.
	Schedule []time.Duration
	// Timeout of one attempt (default 5 s).
	Timeout time.Duration
	// Strict refuses private destinations and plain http, as production does.
	Strict bool
	// NATSURL uses an external NATS instead of the embedded one.
	NATSURL string
	// Dispatcher overrides delivery tuning; Schedule and Timeout above win.
	Dispatcher dispatcher.Config
	// Jobs paces replay and recovery jobs; its zero fields get test values
	// (see testJobs): fast, with a 2 s lease.
	Jobs jobs.Config
	// Server, when set, edits the server configuration last.
	Server func(*server.Config)
	Logger *slog.Logger
}

// Env is a running stack.
type Env struct {
	*server.Server
	AdminToken string
	tmp        string
	contract   *Contract
	closeOnce  sync.Once
	closeErr   error
}

// New starts a stack. Close it when done.
func New(ctx context.Context, o Options) (*Env, error) {
	env := &Env{AdminToken: randomHex(16)}
	dir := o.DataDir
	if dir == "" {
		tmp, err := os.MkdirTemp("", "webhooks-testenv-")
		if err != nil {
			return nil, fmt.Errorf("temp dir: %w", err)
		}
		env.tmp, dir = tmp, tmp
	}
	dc := o.Dispatcher
	dc.Schedule = o.Schedule
	if dc.Schedule == nil {
		dc.Schedule = []time.Duration{100 * time.Millisecond, 200 * time.Millisecond}
	}
	dc.Timeout = o.Timeout
	if dc.Timeout == 0 {
		dc.Timeout = 5 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	cfg := server.Config{
		Addr:       "127.0.0.1:0",
		DataDir:    dir,
		NATSURL:    o.NATSURL,
		AdminToken: env.AdminToken,
		Egress:     egress.Policy{AllowHTTP: !o.Strict, AllowPrivate: !o.Strict},
		Dispatcher: dc,
		Jobs:       testJobs(o.Jobs),
		Logger:     o.Logger,
	}
	if o.Server != nil {
		o.Server(&cfg)
	}
	srv, err := server.Start(ctx, cfg)
	if err != nil {
		env.removeTemp()
		return nil, err
	}
	env.Server = srv
	return env, nil
}

// Start starts a stack for one test and stops it at the test's end.
func Start(t testing.TB, o Options) *Env {
	t.Helper()
	if o.DataDir == "" {
		o.DataDir = t.TempDir()
	}
	env, err := New(context.Background(), o)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(func() { env.Close() })
	env.checkContract(t)
	return env
}

// Close shuts the stack down and removes its temporary storage. A test
// may close a stack itself (to restart another on its DataDir); closing
// again does nothing.
func (e *Env) Close() error {
	e.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // a hang, not a slow machine
		defer cancel()
		e.closeErr = e.Shutdown(ctx)
		e.removeTemp()
	})
	return e.closeErr
}

func (e *Env) removeTemp() {
	if e.tmp != "" {
		os.RemoveAll(e.tmp)
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Response is an API answer, read whole.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body into v.
func (r *Response) JSON(v any) error { return json.Unmarshal(r.Body, v) }

// Do sends one API request with a bearer token (none if empty); a non-nil
// body that is not []byte is encoded as JSON.
func (e *Env) Do(method, path, token string, body any, header ...string) (*Response, error) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		enc, err := json.Marshal(b)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(enc)
	}
	req, err := http.NewRequest(method, e.URL()+path, rd)
	if err != nil {
		return nil, err
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := e.HTTPClient().Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return &Response{Status: resp.StatusCode, Header: resp.Header, Body: b}, err
}

// Tenant is a tenant created through the operator API.
type Tenant struct {
	ID     string
	APIKey string
	KeyID  string
}

// CreateTenant creates a tenant with the given rate limit (0: default).
func (e *Env) CreateTenant(name string, rateLimit int) (Tenant, error) {
	body := map[string]any{"name": name}
	if rateLimit > 0 {
		body["rateLimit"] = rateLimit
	}
	r, err := e.Do("POST", "/admin/tenants", e.AdminToken, body)
	if err != nil {
		return Tenant{}, err
	}
	if r.Status != http.StatusCreated {
		return Tenant{}, fmt.Errorf("create tenant: %d %s", r.Status, r.Body)
	}
	var out struct {
		ID     string `json:"id"`
		APIKey struct {
			ID  string `json:"id"`
			Key string `json:"key"`
		} `json:"apiKey"`
	}
	if err := r.JSON(&out); err != nil {
		return Tenant{}, err
	}
	return Tenant{ID: out.ID, APIKey: out.APIKey.Key, KeyID: out.APIKey.ID}, nil
}

// Subscription is a created subscription and its secret.
type Subscription struct {
	ID     string `json:"id"`
	Secret string `json:"secret"`
}

// Subscribe registers url for eventTypes and returns the subscription.
func (e *Env) Subscribe(t Tenant, url string, eventTypes ...string) (Subscription, error) {
	r, err := e.Do("POST", "/api/subscriptions", t.APIKey, map[string]any{"url": url, "eventTypes": eventTypes})
	if err != nil {
		return Subscription{}, err
	}
	if r.Status != http.StatusCreated {
		return Subscription{}, fmt.Errorf("create subscription: %d %s", r.Status, r.Body)
	}
	var s Subscription
	return s, r.JSON(&s)
}

// Publish posts one event over the API and returns its id.
func (e *Env) Publish(t Tenant, typ string, data any) (string, error) {
	r, err := e.Do("POST", "/api/events", t.APIKey, map[string]any{"type": typ, "data": data})
	if err != nil {
		return "", err
	}
	if r.Status != http.StatusAccepted {
		return "", fmt.Errorf("publish: %d %s", r.Status, r.Body)
	}
	var out struct {
		ID string `json:"id"`
	}
	return out.ID, r.JSON(&out)
}
