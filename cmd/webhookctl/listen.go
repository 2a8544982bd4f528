package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/onestack/webhooks/client"
	"github.com/onestack/webhooks/signature"
)

// listenOptions are the flags of listen.
type listenOptions struct {
	forwardTo string
	types     []string
	addr      string
	scheme    string // the subscription's signature scheme ("": v1)
}

// maxWebhook bounds a webhook body the listener reads (events carry at
// most 256 KiB of data).
const maxWebhook = 1 << 20

// listen opens a local receiver, subscribes it for the listed types (the
// server must allow plain-http loopback destinations, as a local or
// testenv stack does), verifies the signature of every webhook, prints it,
// forwards it when asked and answers the server with the forward's status,
// and deletes the subscription when ctx ends (Ctrl-C).
func listen(ctx context.Context, e *env, o listenOptions) error {
	c, err := e.tenant()
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", o.addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", o.addr, err)
	}
	defer l.Close()
	hook := "http://" + l.Addr().String() + "/webhook"
	sub, err := c.CreateSubscription(ctx, client.NewSubscription{URL: hook, EventTypes: o.types, SignatureScheme: o.scheme,
		Description: "webhookctl listen (temporary)", Metadata: map[string]string{"createdBy": "webhookctl listen"}})
	if err != nil {
		return fmt.Errorf("register the listener: %w", err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if err := c.DeleteSubscription(dctx, sub.ID); err != nil {
			fmt.Fprintf(e.stderr, "webhookctl: could not remove subscription %s: %v (delete it with: webhookctl subscriptions delete %s)\n", sub.ID, describe(err), sub.ID)
			return
		}
		e.logf("Removed subscription %s.\n", sub.ID)
	}()
	r := &relay{e: e, forwardTo: o.forwardTo,
		keys:   func(ctx context.Context) (string, error) { return c.Secret(ctx, sub.ID) },
		client: &http.Client{Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	if err := r.learn(ctx); err != nil {
		return err
	}
	srv := &http.Server{Handler: r, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	target := "printing only"
	if o.forwardTo != "" {
		target = "forwarding to " + o.forwardTo
	}
	e.logf("Ready: listening on %s for %v, %s.\nSubscription %s (removed when you stop with Ctrl-C).\n", hook, o.types, target, sub.ID)
	select {
	case <-ctx.Done():
	case err := <-done:
		return fmt.Errorf("receiver: %w", err)
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(sctx)
	return nil
}

// logf writes a status line: to stdout for people, to stderr with --json
// so that stdout holds only JSON lines.
func (e *env) logf(format string, a ...any) {
	w := e.stdout
	if e.json {
		w = e.stderr
	}
	fmt.Fprintf(w, format, a...)
}

// relayRelearn bounds how often a webhook that no known key verifies
// makes the relay read the subscription's key again.
const relayRelearn = 5 * time.Second

// relay verifies, prints and forwards webhooks.
type relay struct {
	e         *env
	forwardTo string
	client    *http.Client
	mu        sync.Mutex // one printed line at a time

	// keys reads the subscription's current key: its secret ("whsec_",
	// scheme v1) or public key ("whpk_", scheme v1a), from GET .../secret.
	keys      func(ctx context.Context) (string, error)
	keyMu     sync.Mutex
	verifier  signature.Verifier // every key learnt so far
	learnt    []string           // those keys as read, each once
	learnedAt time.Time
}

// learn reads the subscription's current key and adds it to those the
// relay verifies with: a rotation or a switch of scheme while listening
// is picked up, and the previous key keeps verifying through the overlap.
// A key already known is not added again: each webhook that no key
// verifies (a forged one) reads the key, and every key held is tried on
// every webhook.
func (rl *relay) learn(ctx context.Context) error {
	k, err := rl.keys(ctx)
	if err != nil {
		return fmt.Errorf("read the subscription's signing key: %w", err)
	}
	rl.keyMu.Lock()
	defer rl.keyMu.Unlock()
	rl.learnedAt = time.Now()
	if slices.Contains(rl.learnt, k) {
		return nil
	}
	if strings.HasPrefix(k, signature.PublicKeyPrefix) {
		pk, err := signature.ParsePublicKey(k)
		if err != nil {
			return fmt.Errorf("the subscription's public key: %w", err)
		}
		rl.verifier.PublicKeys = append(rl.verifier.PublicKeys, pk)
	} else {
		s, err := signature.ParseSecret(k)
		if err != nil {
			return fmt.Errorf("the subscription's secret: %w", err)
		}
		rl.verifier.Secrets = append(rl.verifier.Secrets, s)
	}
	rl.learnt = append(rl.learnt, k)
	return nil
}

// verify checks a webhook with the keys learnt, and once more after
// reading the current key when none matches (at most every relayRelearn).
func (rl *relay) verify(ctx context.Context, get func(string) string, body []byte) error {
	rl.keyMu.Lock()
	v, stale := rl.verifier, time.Since(rl.learnedAt) > relayRelearn
	rl.keyMu.Unlock()
	err := v.VerifyHeaders(get, body)
	if !errors.Is(err, signature.ErrNoMatch) || !stale {
		return err
	}
	if lerr := rl.learn(ctx); lerr != nil {
		return fmt.Errorf("%w (and %v)", err, lerr)
	}
	rl.keyMu.Lock()
	v = rl.verifier
	rl.keyMu.Unlock()
	return v.VerifyHeaders(get, body)
}

// received is one webhook as --json prints it.
type received struct {
	ReceivedAt    time.Time       `json:"receivedAt"`
	ID            string          `json:"id"`
	Type          string          `json:"type"`
	Verified      bool            `json:"verified"`
	Problem       string          `json:"problem,omitempty"`
	ForwardStatus int             `json:"forwardStatus,omitempty"`
	Body          json.RawMessage `json:"body"`
}

func (rl *relay) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxWebhook))
	if err != nil {
		http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
		return
	}
	got := received{ReceivedAt: time.Now().UTC(), ID: r.Header.Get(signature.HeaderID), Body: json.RawMessage(body)}
	var env struct {
		Type string `json:"type"`
	}
	json.Unmarshal(body, &env)
	got.Type = env.Type
	if !json.Valid(body) {
		got.Body, _ = json.Marshal(string(body))
	}
	status := http.StatusNoContent
	var answer []byte
	if err := rl.verify(r.Context(), r.Header.Get, body); err != nil {
		got.Problem = "signature invalid: " + err.Error()
		status = http.StatusUnauthorized
	} else {
		got.Verified = true
		if rl.forwardTo != "" {
			status, answer, err = rl.forward(r, body)
			got.ForwardStatus = status
			if err != nil {
				got.Problem = "forward failed: " + err.Error()
			}
		}
	}
	rl.print(got)
	w.WriteHeader(status)
	w.Write(answer)
}

// forward posts a webhook on with its signature headers and returns the
// answer to give the server: the app's own status and body, or 502 when
// it cannot be reached.
func (rl *relay) forward(r *http.Request, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(r.Context(), http.MethodPost, rl.forwardTo, bytes.NewReader(body))
	if err != nil {
		return http.StatusBadGateway, nil, err
	}
	for _, h := range []string{"Content-Type", "User-Agent", signature.HeaderID, signature.HeaderTimestamp, signature.HeaderSignature} {
		if v := r.Header.Get(h); v != "" {
			req.Header.Set(h, v)
		}
	}
	resp, err := rl.client.Do(req)
	if err != nil {
		return http.StatusBadGateway, nil, err
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	return resp.StatusCode, answer, nil
}

func (rl *relay) print(got received) {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	e := rl.e
	if e.json {
		b, _ := json.Marshal(got)
		fmt.Fprintf(e.stdout, "%s\n", b)
		return
	}
	verdict := "signature OK"
	if !got.Verified {
		verdict = "REFUSED"
	}
	line := fmt.Sprintf("%s  %-22s %s  %s", got.ReceivedAt.Format("15:04:05.000"), got.Type, got.ID, verdict)
	if got.ForwardStatus != 0 {
		line += fmt.Sprintf("  → %s [%d]", rl.forwardTo, got.ForwardStatus)
	}
	if got.Problem != "" {
		line += "  (" + got.Problem + ")"
	}
	fmt.Fprintln(e.stdout, line)
}
