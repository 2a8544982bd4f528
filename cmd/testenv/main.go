// Command testenv runs the whole stack on one machine for a demo: webhookd
// with embedded NATS, a demo tenant whose API key it prints, a demo
// receiver that verifies every signature and logs what it got, and a
// simulator of ticket changes published through the Go events publisher.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/onestack/webhooks/client"
	"github.com/onestack/webhooks/events"
	"github.com/onestack/webhooks/server"
	"github.com/onestack/webhooks/testenv"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "testenv:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("testenv", flag.ContinueOnError)
	fs.SetOutput(stderr)
	every := fs.Duration("every", 2*time.Second, "how often the simulator changes a ticket (0: never)")
	dataDir := fs.String("data-dir", "", "keep JetStream here (default: a temporary directory)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	env, err := testenv.New(ctx, testenv.Options{DataDir: *dataDir, Schedule: []time.Duration{time.Second, 5 * time.Second, 30 * time.Second}, Logger: logger,
		// Traces as webhookd's: OTEL_EXPORTER_OTLP_ENDPOINT turns them on.
		Server: func(c *server.Config) { c.Tracing.Getenv = os.Getenv }})
	if err != nil {
		return err
	}
	defer env.Close()

	rc := testenv.NewReceiver()
	defer rc.Close()
	ten, err := env.CreateTenant("demo", 0)
	if err != nil {
		return err
	}
	// The demo registers its endpoint through the Go client, as an
	// integrator would.
	api, err := client.New(client.Config{BaseURL: env.URL(), APIKey: ten.APIKey})
	if err != nil {
		return err
	}
	sub, err := api.CreateSubscription(ctx, client.NewSubscription{URL: rc.URL() + "/demo", EventTypes: []string{"ticket.*"}, Description: "demo receiver"})
	if err != nil {
		return err
	}
	admin, err := client.NewAdmin(client.Config{BaseURL: env.URL()}, env.AdminToken)
	if err != nil {
		return err
	}
	// The registry: a type with a schema, and a subscription that only
	// wants urgent tickets (a payload filter).
	if _, err := admin.RegisterEventType(ctx, client.NewEventType{Type: escalatedType, Description: "A ticket was escalated to a higher support level.",
		Schema: json.RawMessage(escalatedSchema), Example: json.RawMessage(`{"ticketId": "T-1042", "level": 2, "reason": "customer waiting"}`)}); err != nil {
		return err
	}
	urgent, err := api.CreateSubscription(ctx, client.NewSubscription{URL: rc.URL() + "/urgent", EventTypes: []string{"ticket.*"},
		Filter: urgentFilter, Headers: map[string]string{"X-Demo-Token": "urgent-only"}, Description: "urgent tickets only"})
	if err != nil {
		return err
	}
	types, err := api.EventTypes(ctx)
	if err != nil {
		return err
	}
	budget := api.Budget()
	link, err := admin.PortalLink(ctx, ten.ID)
	if err != nil {
		return err
	}
	if err := rc.SetSecrets(sub.Secret, urgent.Secret); err != nil {
		return err
	}
	fmt.Fprintf(stdout, `One Stack Webhooks test environment

  API          %s
  admin token  %s
  tenant       %s
  API key      %s
  receiver     %s/demo  (subscription %s, ticket.*)
               %s/urgent  (subscription %s, ticket.* with the filter %s)
  catalog      %d event types, %s registered with a JSON Schema; API budget %d of %d left until %s
  portal       %s
               (a one-time sign-in link for the demo tenant, valid until %s)

Try:
  curl -s %s/api/event-types -H 'Authorization: Bearer %s'
  curl -s %s/api/events -H 'Authorization: Bearer %s' -H 'Content-Type: application/json' \
       -d '{"type":"ticket.updated","data":{"ticketId":"T-1","status":"open"}}'
  curl -s %s/api/events -H 'Authorization: Bearer %s' -H 'Content-Type: application/json' \
       -d '{"type":"%s","data":{"ticketId":"T-1","level":7}}'      (refused: data/level)
  curl -s '%s/api/events?limit=5' -H 'Authorization: Bearer %s'

webhookctl (go run ./cmd/webhookctl help):
  export WEBHOOKS_URL=%s WEBHOOKS_API_KEY=%s WEBHOOKS_ADMIN_TOKEN=%s
  go run ./cmd/webhookctl deliveries list %s --status failed

Signed webhooks the demo receiver gets are printed below. Ctrl-C stops.

`, env.URL(), env.AdminToken, ten.ID, ten.APIKey, rc.URL(), sub.ID, rc.URL(), urgent.ID, urgentFilter,
		len(types), escalatedType, budget.Remaining, budget.Limit, budget.Reset.Format("15:04:05"),
		link.URL, link.ExpiresAt.Local().Format("15:04:05"),
		env.URL(), ten.APIKey, env.URL(), ten.APIKey, env.URL(), ten.APIKey, escalatedType, env.URL(), ten.APIKey,
		env.URL(), ten.APIKey, env.AdminToken, sub.ID)

	var tick <-chan time.Time
	if *every > 0 {
		t := time.NewTicker(*every)
		defer t.Stop()
		tick = t.C
	}
	seen := 0
	poll := time.NewTicker(100 * time.Millisecond)
	defer poll.Stop()
	for {
		select {
		case <-ctx.Done():
			fmt.Fprintln(stdout, "stopping")
			return nil
		case <-tick:
			if err := simulate(ctx, env.Publisher(), ten.ID); err != nil {
				fmt.Fprintln(stderr, "simulator:", err)
			}
		case <-poll.C:
			fresh := rc.Since(seen)
			for _, r := range fresh {
				verdict := "signature OK"
				if r.Verified != nil {
					verdict = "signature INVALID: " + r.Verified.Error()
				}
				fmt.Fprintf(stdout, "%s  %-7s  webhook-id=%s  %s  %s\n", r.At.Format("15:04:05.000"), r.Path, r.ID, verdict, r.Body)
			}
			seen += len(fresh)
		}
	}
}

// The demo's registered type and filtered subscription.
const (
	escalatedType   = "ticket.escalated"
	escalatedSchema = `{"type": "object", "required": ["ticketId", "level"], "properties": {
		"ticketId": {"type": "string", "pattern": "^T-[0-9]+$"},
		"level": {"type": "integer", "minimum": 1, "maximum": 3},
		"reason": {"type": "string", "maxLength": 200}}}`
	urgentFilter = `type == "ticket.escalated" || (data.status in ["open", "pending"] && data.priority == "high")`
)

// simulate publishes one random ticket change, as a platform service does:
// mostly updates, some creations and escalations (the registered type,
// its data checked against its schema by the publisher).
func simulate(ctx context.Context, pub *events.Publisher, tenant string) error {
	statuses := []string{"open", "pending", "resolved", "closed"}
	typ := "ticket.updated"
	switch rand.IntN(6) {
	case 0:
		typ = "ticket.created"
	case 1:
		data := fmt.Sprintf(`{"ticketId":"T-%d","level":%d,"reason":"customer waiting"}`, 1000+rand.IntN(100), 1+rand.IntN(3))
		e := events.Event{ID: events.NewID(), Type: escalatedType, TenantID: tenant, OccurredAt: time.Now().UTC(), Data: []byte(data)}
		return pub.PublishEvents(ctx, false, e)
	}
	data := fmt.Sprintf(`{"ticketId":"T-%d","status":%q,"priority":%q}`, 1000+rand.IntN(100), statuses[rand.IntN(len(statuses))], []string{"low", "normal", "high"}[rand.IntN(3)])
	e := events.Event{ID: events.NewID(), Type: typ, TenantID: tenant, OccurredAt: time.Now().UTC(), Data: []byte(data)}
	return pub.PublishEvents(ctx, false, e)
}
