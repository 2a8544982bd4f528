// Command webhookctl manages One Stack Webhooks from a terminal, for
// tenants (subscriptions and every setting of them, events and their
// lookup, deliveries, replays, recoveries and their jobs, limits, a local
// listener that verifies signed webhooks and forwards them to an app on
// this machine) and operators (tenants and their limits, API keys, portal
// links, the event-type catalog). It speaks HTTP through the client
// package, so it waits Retry-After on 429 and backs off on transient
// failures like any well-behaved integration.
//
// Configuration: --server, --api-key and --admin-token, or the environment
// variables WEBHOOKS_URL, WEBHOOKS_API_KEY and WEBHOOKS_ADMIN_TOKEN.
// Output is tables for people and, with --json, JSON for scripts.
//
// Exit codes:
//
//	0  success
//	1  the API refused the request (400, 409, 412, ...) or the command failed
//	2  usage: unknown command, bad flag or argument
//	3  authentication: no credentials given, or the API answered 401
//	4  not found: the API answered 404
//	5  rate limited: still 429 after waiting Retry-After between tries
//	6  unavailable: the server could not be reached, or answered 5xx after retries
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/onestack/webhooks/client"
)

// Exit codes; see the package documentation.
const (
	exitOK          = 0
	exitFailed      = 1
	exitUsage       = 2
	exitAuth        = 3
	exitNotFound    = 4
	exitRateLimited = 5
	exitUnavailable = 6
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

// env is what every command gets: the global settings and where to write.
type env struct {
	url, apiKey, adminToken string
	json                    bool
	stdout, stderr          io.Writer
	// httpClient, when set, sends every request (tests check each
	// exchange against the API's OpenAPI document).
	httpClient *http.Client
	// getenv reads the environment (nil in tests: nothing set).
	getenv func(string) string
	// sleep, when set, replaces the client's waits (tests).
	sleep func(context.Context, time.Duration) error
}

func (e *env) register(fs *flag.FlagSet) {
	fs.StringVar(&e.url, "server", e.url, "webhookd base URL (WEBHOOKS_URL)")
	fs.StringVar(&e.apiKey, "api-key", e.apiKey, "tenant API key, sk_... (WEBHOOKS_API_KEY)")
	fs.StringVar(&e.adminToken, "admin-token", e.adminToken, "operator token (WEBHOOKS_ADMIN_TOKEN)")
	fs.BoolVar(&e.json, "json", e.json, "print JSON instead of tables")
}

func (e *env) config() client.Config {
	return client.Config{BaseURL: e.url, HTTPClient: e.httpClient, Sleep: e.sleep, MaxWait: time.Minute}
}

// errNoCredentials is a usage problem that maps to the auth exit code.
var errNoCredentials = errors.New("no credentials")

// tenant returns a tenant API client.
func (e *env) tenant() (*client.Client, error) {
	if e.apiKey == "" {
		return nil, fmt.Errorf("%w: give --api-key or set WEBHOOKS_API_KEY", errNoCredentials)
	}
	cfg := e.config()
	cfg.APIKey = e.apiKey
	return client.New(cfg)
}

// admin returns an operator API client.
func (e *env) admin() (*client.Admin, error) {
	if e.adminToken == "" {
		return nil, fmt.Errorf("%w: give --admin-token or set WEBHOOKS_ADMIN_TOKEN", errNoCredentials)
	}
	return client.NewAdmin(e.config(), e.adminToken)
}

// command is one "group name" of the CLI.
type command struct {
	group, name string
	args        string // positional arguments, for the usage line
	summary     string
	flags       func(fs *flag.FlagSet) // the command's own flags
	run         func(ctx context.Context, e *env, args []string) error
	nargs       int // positional arguments required
}

// usageError is a mistake in the command line.
type usageError struct{ msg string }

func (u *usageError) Error() string { return u.msg }

func usagef(format string, a ...any) error { return &usageError{fmt.Sprintf(format, a...)} }

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	e := &env{url: getenv("WEBHOOKS_URL"), apiKey: getenv("WEBHOOKS_API_KEY"), adminToken: getenv("WEBHOOKS_ADMIN_TOKEN"), stdout: stdout, stderr: stderr, getenv: getenv}
	return runWith(ctx, e, args)
}

func runWith(ctx context.Context, e *env, args []string) int {
	if e.url == "" {
		e.url = "http://127.0.0.1:8080"
	}
	// Global flags may come first; each command accepts them too.
	global := flag.NewFlagSet("webhookctl", flag.ContinueOnError)
	global.SetOutput(io.Discard)
	e.register(global)
	if err := global.Parse(args); err != nil {
		fmt.Fprintln(e.stderr, "webhookctl:", err)
		usage(e.stderr)
		return exitUsage
	}
	args = global.Args()
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(e.stdout)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	cmd, rest, err := find(args)
	if err != nil {
		fmt.Fprintln(e.stderr, "webhookctl:", err)
		usage(e.stderr)
		return exitUsage
	}
	fs := flag.NewFlagSet("webhookctl "+cmd.group+" "+cmd.name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	e.register(fs)
	if cmd.flags != nil {
		cmd.flags(fs)
	}
	fs.Usage = func() {
		fmt.Fprintf(e.stderr, "usage: webhookctl %s %s [flags] %s\n  %s\n\nflags:\n", cmd.group, cmd.name, cmd.args, cmd.summary)
		fs.PrintDefaults()
	}
	pos, err := parseInterleaved(fs, rest)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		return exitUsage
	}
	if len(pos) != cmd.nargs {
		fmt.Fprintf(e.stderr, "webhookctl %s %s: want %d argument(s) %s, got %d\n", cmd.group, cmd.name, cmd.nargs, cmd.args, len(pos))
		return exitUsage
	}
	if err := cmd.run(ctx, e, pos); err != nil {
		fmt.Fprintln(e.stderr, "webhookctl:", describe(err))
		return exitCode(err)
	}
	return exitOK
}

// parseInterleaved parses flags anywhere among the positional arguments.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// aliases are the short names of groups.
var aliases = map[string]string{"subs": "subscriptions", "sub": "subscriptions", "subscription": "subscriptions",
	"tenant": "tenants", "key": "keys", "event": "events", "delivery": "deliveries", "types": "event-types"}

// find picks the command named by the first arguments.
func find(args []string) (command, []string, error) {
	group := args[0]
	if g, ok := aliases[group]; ok {
		group = g
	}
	for _, c := range commands() {
		if c.group == group && c.name == "" {
			return c, args[1:], nil
		}
	}
	if len(args) < 2 {
		return command{}, nil, fmt.Errorf("%q needs a command", group)
	}
	for _, c := range commands() {
		if c.group == group && c.name == args[1] {
			return c, args[2:], nil
		}
	}
	return command{}, nil, fmt.Errorf("unknown command %q", strings.Join(args[:2], " "))
}

func usage(w io.Writer) {
	fmt.Fprint(w, `webhookctl: manage One Stack Webhooks from a terminal

usage: webhookctl [--server URL] [--api-key KEY] [--admin-token TOKEN] [--json] <command> [flags] [args]

`)
	byGroup := map[string][]command{}
	var groups []string
	for _, c := range commands() {
		if _, ok := byGroup[c.group]; !ok {
			groups = append(groups, c.group)
		}
		byGroup[c.group] = append(byGroup[c.group], c)
	}
	for _, g := range groups {
		for _, c := range byGroup[g] {
			name := strings.Join(strings.Fields(c.group+" "+c.name+" "+c.args), " ")
			fmt.Fprintf(w, "  %-46s %s\n", name, c.summary)
		}
	}
	fmt.Fprint(w, `
Settings: WEBHOOKS_URL (default http://127.0.0.1:8080), WEBHOOKS_API_KEY (tenant commands),
WEBHOOKS_ADMIN_TOKEN (tenants, keys, portal-link, event-types create/update/deprecate),
WEBHOOKS_OAUTH2_CLIENT_SECRET (--oauth2-client-secret, kept out of the process list).
Flags go before or after the arguments; "webhookctl <command> --help" lists a command's.
On 429 it waits Retry-After and tries again (4 tries in all).

Exit codes: 0 ok, 1 refused by the API or failed, 2 usage, 3 authentication,
4 not found, 5 rate limited, 6 unavailable.
`)
}

// exitCode maps an error to the documented exit codes.
func exitCode(err error) int {
	var ue *usageError
	var ae *client.Error
	switch {
	case errors.As(err, &ue):
		return exitUsage
	case errors.Is(err, errNoCredentials):
		return exitAuth
	case errors.As(err, &ae):
		switch {
		case ae.Status == http.StatusUnauthorized:
			return exitAuth
		case ae.Status == http.StatusNotFound:
			return exitNotFound
		case ae.Status == http.StatusTooManyRequests:
			return exitRateLimited
		case ae.Status >= 500:
			return exitUnavailable
		}
		return exitFailed
	case isNetwork(err):
		return exitUnavailable
	}
	return exitFailed
}

// isNetwork reports whether err is a failure to reach the server.
func isNetwork(err error) bool {
	var ne interface{ Timeout() bool }
	return errors.As(err, &ne) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, context.DeadlineExceeded)
}

// describe says what went wrong, with the API's field errors one a line.
func describe(err error) string {
	var ae *client.Error
	if !errors.As(err, &ae) {
		return err.Error()
	}
	msg := fmt.Sprintf("%s (%d %s)", ae.Message, ae.Status, ae.Code)
	if fields, ok := ae.Details["fields"].([]any); ok {
		for _, f := range fields {
			m, _ := f.(map[string]any)
			msg += fmt.Sprintf("\n  %v: %v", m["field"], m["reason"])
		}
	}
	if ra, ok := ae.Details["retryAfter"].(float64); ok && ae.Status == http.StatusTooManyRequests {
		msg += fmt.Sprintf("\n  the budget is spent; it comes back in %d s", int(ra))
	}
	return msg
}
