package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/onestack/webhooks/client"
	"github.com/onestack/webhooks/events"
)

// buildWebhookd compiles ./cmd/webhookd of the module at root into dir.
func buildWebhookd(ctx context.Context, root, dir string) (string, error) {
	bin := filepath.Join(dir, "webhookd")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/webhookd")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/webhookd: %w\n%s", err, out)
	}
	return bin, nil
}

// moduleRoot finds the directory of the main module's go.mod.
func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err == nil {
		if mod := strings.TrimSpace(string(out)); mod != "" && mod != os.DevNull {
			return filepath.Dir(mod), nil
		}
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod here or above: run from inside the module")
		}
		dir = parent
	}
}

// freePort returns a loopback host:port nobody listened on a moment ago.
func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// A stack is one webhookd child process on fresh storage, the bench's NATS
// connection to it, one tenant, and the receivers of its subscriptions.
type stack struct {
	dir, dataDir, logPath string
	cmd                   *exec.Cmd
	exited                chan struct{}
	url, natsURL, admin   string
	args                  []string

	nc  *nats.Conn
	js  jetstream.JetStream
	pub *events.Publisher
	hc  *http.Client

	tenantID, apiKey string
	api              *client.Client
	tr               *tracker
	recv             []*receiver
	subIDs           []string
	verifySample     float64
}

// startStack starts bin with a data directory under dir and waits until it
// is ready, then creates the bench tenant.
func startStack(ctx context.Context, bin, dir string, extra []string, verifySample float64) (*stack, error) {
	httpAddr, err := freePort()
	if err != nil {
		return nil, err
	}
	natsAddr, err := freePort()
	if err != nil {
		return nil, err
	}
	tok := make([]byte, 16)
	rand.Read(tok)
	natsTok := make([]byte, 16)
	rand.Read(natsTok)
	s := &stack{
		dir: dir, dataDir: filepath.Join(dir, "data"), logPath: filepath.Join(dir, "webhookd.log"),
		url: "http://" + httpAddr, natsURL: "nats://" + hex.EncodeToString(natsTok) + "@" + natsAddr, admin: hex.EncodeToString(tok),
		exited: make(chan struct{}), tr: newTracker(), verifySample: verifySample,
		hc: &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 256, MaxIdleConns: 256}},
	}
	if err := os.MkdirAll(s.dataDir, 0o755); err != nil {
		return nil, err
	}
	logf, err := os.Create(s.logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	s.args = append([]string{
		"--addr", httpAddr, "--data-dir", s.dataDir, "--nats-listen", natsAddr, "--nats-token", hex.EncodeToString(natsTok),
		"--admin-token", s.admin, "--allow-private-destinations", "--allow-http", "--log-level", "warn",
	}, extra...)
	// Env is left nil: webhookd inherits this process's environment, so
	// OTEL_* set for the benchmark (tracing on, a sampler) reach it.
	s.cmd = exec.Command(bin, s.args...)
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start webhookd: %w", err)
	}
	go func() { s.cmd.Wait(); close(s.exited) }()
	if err := s.waitReady(ctx, time.Minute); err != nil {
		s.stop(5 * time.Second)
		return nil, err
	}
	if err := s.connect(ctx); err != nil {
		s.stop(5 * time.Second)
		return nil, err
	}
	return s, nil
}

func (s *stack) pid() int { return s.cmd.Process.Pid }

func (s *stack) waitReady(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		resp, err := s.hc.Get(s.url + "/readyz")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-s.exited:
			return fmt.Errorf("webhookd exited before it was ready (%v)", s.cmd.ProcessState)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("webhookd not ready within %s", timeout)
		}
	}
}

// connect opens the NATS connection, the publisher and the bench tenant.
func (s *stack) connect(ctx context.Context) error {
	var err error
	s.nc, err = nats.Connect(s.natsURL, nats.Name("webhookbench"))
	if err != nil {
		return fmt.Errorf("connect to webhookd's nats at %s: %w", s.natsURL, err)
	}
	s.js, err = jetstream.New(s.nc, jetstream.WithPublishAsyncMaxPending(16384))
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	s.pub = events.NewPublisher(s.js, events.PublisherConfig{})
	t, err := s.createTenant(ctx, "bench", 1_000_000)
	if err != nil {
		return err
	}
	s.tenantID, s.apiKey, s.api = t.id, t.key, t.api
	return nil
}

// A tenant is one tenant of the stack as the bench holds it: its id, its
// API key and a client calling the tenant API with that key.
type tenant struct {
	id, key string
	api     *client.Client
}

// createTenant makes a tenant over the operator API with requests a
// minute rateLimit (the limiter stays on).
func (s *stack) createTenant(ctx context.Context, name string, rateLimit int) (*tenant, error) {
	var ten struct {
		ID     string `json:"id"`
		APIKey struct {
			Key string `json:"key"`
		} `json:"apiKey"`
	}
	if err := s.adminCall(ctx, http.MethodPost, "/admin/tenants", map[string]any{"name": name, "rateLimit": rateLimit}, http.StatusCreated, &ten); err != nil {
		return nil, fmt.Errorf("create tenant %s: %w", name, err)
	}
	api, err := client.New(client.Config{BaseURL: s.url, APIKey: ten.APIKey.Key, HTTPClient: s.hc})
	if err != nil {
		return nil, err
	}
	return &tenant{id: ten.ID, key: ten.APIKey.Key, api: api}, nil
}

// setRateLimit changes a tenant's requests a minute over the operator API.
func (s *stack) setRateLimit(ctx context.Context, tenantID string, rateLimit int) error {
	var out json.RawMessage
	if err := s.adminCall(ctx, http.MethodPatch, "/admin/tenants/"+tenantID, map[string]any{"rateLimit": rateLimit}, http.StatusOK, &out); err != nil {
		return fmt.Errorf("set the rate limit of tenant %s: %w", tenantID, err)
	}
	return nil
}

func (s *stack) adminCall(ctx context.Context, method, path string, in any, want int, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, method, s.url+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+s.admin)
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, bytes.TrimSpace(b))
	}
	return json.Unmarshal(b, out)
}

// addSubscription starts a receiver and subscribes it to ticket.updated;
// it returns the subscription's index.
func (s *stack) addSubscription(ctx context.Context) (*receiver, error) {
	if len(s.recv) == maxSubs {
		return nil, fmt.Errorf("at most %d subscriptions", maxSubs)
	}
	r, err := newReceiver(s.tr, len(s.recv), s.verifySample)
	if err != nil {
		return nil, err
	}
	sub, err := s.api.CreateSubscription(ctx, client.NewSubscription{
		URL: r.URL(), EventTypes: []string{"ticket.updated"}, Description: "webhookbench " + strconv.Itoa(r.sub),
	})
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("create subscription: %w", err)
	}
	if err := r.setSecret(sub.Secret); err != nil {
		r.Close()
		return nil, err
	}
	s.recv = append(s.recv, r)
	s.subIDs = append(s.subIDs, sub.ID)
	return r, nil
}

// subs lists the subscription indices.
func (s *stack) subs() []int {
	out := make([]int, len(s.recv))
	for i := range out {
		out[i] = i
	}
	return out
}

// stop ends webhookd with SIGTERM, then SIGKILL after grace, and then
// closes the receivers (open until then, so webhookd's graceful shutdown
// finishes its attempts in flight) and the NATS connection.
func (s *stack) stop(grace time.Duration) error {
	if s.nc != nil {
		s.nc.Close()
	}
	defer func() {
		for _, r := range s.recv {
			r.Close()
		}
	}()
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(grace):
		s.cmd.Process.Kill()
		<-s.exited
		return fmt.Errorf("webhookd did not stop within %s of SIGTERM: killed", grace)
	}
	return nil
}

// logTail returns the last n lines of webhookd's log.
func (s *stack) logTail(n int) string {
	f, err := os.Open(s.logPath)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > 4*n {
			lines = lines[len(lines)-n:]
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// sample reads webhookd's CPU and RSS.
func (s *stack) sample() procSample {
	p, _ := readProc(s.pid())
	return p
}

// counters scrapes GET /metrics and returns every webhooks_*_total series.
func (s *stack) counters(ctx context.Context) (map[string]float64, error) {
	page, err := s.metrics(ctx)
	if err != nil {
		return nil, err
	}
	return parseSeries(page, isCounter), nil
}

// gauges scrapes GET /metrics and returns the Go runtime's and process's
// series.
func (s *stack) gauges(ctx context.Context) (map[string]float64, error) {
	page, err := s.metrics(ctx)
	if err != nil {
		return nil, err
	}
	return parseSeries(page, func(name string) bool {
		return strings.HasPrefix(name, "go_") || strings.HasPrefix(name, "process_")
	}), nil
}

// isCounter keeps webhookd's own counters.
func isCounter(name string) bool {
	return strings.HasPrefix(name, "webhooks_") && strings.HasSuffix(name, "_total")
}

func (s *stack) metrics(ctx context.Context) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := s.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics: %d", resp.StatusCode)
	}
	return io.ReadAll(resp.Body)
}

// parseSeries picks the series whose metric name keep accepts out of a
// Prometheus text page: series (name and labels, as written) → value.
func parseSeries(page []byte, keep func(name string) bool) map[string]float64 {
	out := map[string]float64{}
	for line := range bytes.Lines(page) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		name := line
		if i := bytes.IndexAny(line, "{ "); i >= 0 {
			name = line[:i]
		}
		if !keep(string(name)) {
			continue
		}
		// The value follows the series; labels may hold spaces, so look
		// after the closing brace when there is one.
		rest := line[len(name):]
		series := string(name)
		if len(rest) > 0 && rest[0] == '{' {
			end := bytes.LastIndexByte(rest, '}')
			if end < 0 {
				continue
			}
			series += string(rest[:end+1])
			rest = rest[end+1:]
		}
		f := strings.Fields(string(rest))
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			continue
		}
		out[series] = v
	}
	return out
}

// streamSeqs returns each JetStream stream's last sequence (how many
// messages it has ever stored, so deltas count durable writes whatever the
// engine calls its streams) and the bytes it holds now.
func (s *stack) streamSeqs(ctx context.Context) (seqs, bytes map[string]uint64, err error) {
	seqs, bytes = map[string]uint64{}, map[string]uint64{}
	l := s.js.ListStreams(ctx)
	for info := range l.Info() {
		seqs[info.Config.Name] = info.State.LastSeq
		bytes[info.Config.Name] = info.State.Bytes
	}
	if err := l.Err(); err != nil && !errors.Is(err, jetstream.ErrEndOfData) {
		return seqs, bytes, err
	}
	return seqs, bytes, nil
}

// delta is one counter's change over a phase.
type delta struct {
	Name  string  `json:"name"`
	Delta float64 `json:"delta"`
	// PerDelivery divides Delta by the deliveries of the phase.
	PerDelivery float64 `json:"perDelivery"`
}

// deltas returns the non-zero changes from before to after, by name.
func deltas[V int64 | uint64 | float64](before, after map[string]V, deliveries int64) []delta {
	var out []delta
	for k, v := range after {
		d := float64(v) - float64(before[k])
		if d == 0 {
			continue
		}
		per := 0.0
		if deliveries > 0 {
			per = d / float64(deliveries)
		}
		out = append(out, delta{Name: k, Delta: d, PerDelivery: per})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
