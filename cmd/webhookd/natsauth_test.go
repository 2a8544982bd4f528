package main

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/onestack/webhooks/internal/poll"
	"github.com/onestack/webhooks/internal/syncbuf"
)

// runInProcess runs webhookd with args until the test ends, and returns
// its HTTP address and its log (at debug level).
func runInProcess(t *testing.T, args ...string) (string, *syncbuf.Buffer) {
	t.Helper()
	addr := freeAddr(t)
	logs := &syncbuf.Buffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	args = append([]string{"--addr", addr, "--data-dir", t.TempDir(), "--log-level", "debug", "--shutdown-grace", "5s"}, args...)
	go func() { done <- run(ctx, args, func(string) string { return "" }, nil, logs) }()
	t.Cleanup(func() {
		cancel()
		if err, ok := poll.ReceiveWithin(time.Minute, done); !ok {
			t.Errorf("webhookd %v still running a minute after its shutdown", args)
		} else if err != nil {
			t.Errorf("webhookd %v: %v", args, err)
		}
	})
	poll.Until(t, 60*time.Second, "webhookd ready", func() bool {
		select {
		case err := <-done:
			t.Fatalf("webhookd %v: %v\n%s", args, err, logs)
		default:
		}
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	return addr, logs
}

func TestNATSListenNeedsCredentials(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"--nats-listen", "127.0.0.1:0"}, nil, "--nats-listen needs credentials: set --nats-token"},
		{nil, map[string]string{"WEBHOOKD_NATS_LISTEN": "127.0.0.1:0"}, "--nats-listen needs credentials"},
		{[]string{"--nats-listen", "127.0.0.1:0", "--nats-user", "u"}, nil, "--nats-user and --nats-password"},
		{[]string{"--nats-listen", "127.0.0.1:0", "--nats-token", "t", "--nats-tls-cert", "c.pem"}, nil, "--nats-tls-cert and --nats-tls-key"},
	}
	for _, tt := range tests {
		var stderr bytes.Buffer
		getenv := func(k string) string { return tt.env[k] }
		err := run(t.Context(), append(tt.args, "--data-dir", t.TempDir()), getenv, nil, &stderr)
		if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("run(%v, %v) = %v, want one line with %q", tt.args, tt.env, err, tt.want)
		}
	}
}

// TestExposedNATSRequiresItsToken starts webhookd with its NATS server
// exposed behind a token: a client without it is refused, one with it
// connects, and a second webhookd reaches it with the token in its URL,
// which no log line shows.
func TestExposedNATSRequiresItsToken(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two webhookd")
	}
	t.Parallel()
	const token = "s3cret-nats-token"
	natsAddr := freeAddr(t)
	_, logsA := runInProcess(t, "--nats-listen", natsAddr, "--nats-token", token)

	if nc, err := nats.Connect("nats://"+natsAddr, nats.MaxReconnects(0)); err == nil {
		nc.Close()
		t.Fatal("a NATS client without the token connected")
	} else if !strings.Contains(strings.ToLower(err.Error()), "authorization") {
		t.Errorf("connect without the token: %v, want an authorization error", err)
	}
	if nc, err := nats.Connect("nats://"+natsAddr, nats.MaxReconnects(0), nats.Token("wrong")); err == nil {
		nc.Close()
		t.Fatal("a NATS client with a wrong token connected")
	}
	nc, err := nats.Connect("nats://"+natsAddr, nats.Token(token))
	if err != nil {
		t.Fatalf("connect with the token: %v", err)
	}
	nc.Close()

	// The second webhookd, with the token in its URL, shares the first's
	// JetStream; its log shows the URL without it.
	_, logsB := runInProcess(t, "--nats-url", "nats://"+token+"@"+natsAddr)
	poll.Until(t, 10*time.Second, "the second webhookd's start logged", func() bool {
		return strings.Contains(logsB.String(), "webhookd started")
	})
	for name, logs := range map[string]*syncbuf.Buffer{"first": logsA, "second": logsB} {
		if strings.Contains(logs.String(), token) {
			t.Errorf("the %s webhookd's log holds the NATS token:\n%s", name, logs)
		}
	}
	if !strings.Contains(logsB.String(), "nats://REDACTED@"+natsAddr) {
		t.Errorf("the second webhookd's log does not name its NATS server redacted:\n%s", logsB)
	}
}

// TestExternalNATSPasswordRedacted connects webhookd to an exposed
// embedded NATS server with a user and password, once in the URL and once
// by flags: both connect, and neither log holds the password.
func TestExternalNATSPasswordRedacted(t *testing.T) {
	if testing.Short() {
		t.Skip("runs three webhookd")
	}
	t.Parallel()
	const user, password = "hooks", "pa55-w0rd-in-url"
	natsAddr := freeAddr(t)
	_, logsA := runInProcess(t, "--nats-listen", natsAddr, "--nats-user", user, "--nats-password", password)
	_, logsB := runInProcess(t, "--nats-url", "nats://"+user+":"+password+"@"+natsAddr+"?token="+password)
	_, logsC := runInProcess(t, "--nats-url", "nats://"+natsAddr, "--nats-user", user, "--nats-password", password)
	for name, logs := range map[string]*syncbuf.Buffer{"embedded": logsA, "URL": logsB, "flags": logsC} {
		if strings.Contains(logs.String(), password) {
			t.Errorf("the %s webhookd's log holds the password:\n%s", name, logs)
		}
	}
	if !strings.Contains(logsB.String(), "nats://hooks:REDACTED@"+natsAddr) {
		t.Errorf("the log does not name the NATS server redacted:\n%s", logsB)
	}
}
