package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/onestack/webhooks/client"
)

// commands is the command table; usage lists it in this order.
func commands() []command {
	var (
		list                              listFlags
		name, url, types, description     string
		secret, ordering, status, eventID string
		scheme                            string
		data, file                        string
		replayed                          timeRange
		forwardTo, addr                   string
		rateLimit                         int
		pace                              float64
		active                            optionalBool
		metadata                          keyValues
		set                               settings
	)
	return append([]command{
		// Operator commands.
		{group: "tenants", name: "create", summary: "create a tenant and its first API key (shown once)",
			flags: func(fs *flag.FlagSet) {
				fs.StringVar(&name, "name", "", "tenant name (required)")
				fs.IntVar(&rateLimit, "rate-limit", 0, "requests a minute (default 100)")
			},
			run: func(ctx context.Context, e *env, _ []string) error {
				if name == "" {
					return usagef("tenants create: --name is required")
				}
				a, err := e.admin()
				if err != nil {
					return err
				}
				t, err := a.CreateTenant(ctx, name, rateLimit)
				if err != nil {
					return err
				}
				return e.show(t, func(w *table) {
					w.kv("id", t.ID, "name", t.Name, "rate limit", strconv.Itoa(t.RateLimit)+"/min", "created", stamp(t.CreatedAt),
						"key id", t.APIKey.ID, "API key", t.APIKey.Key+"   (shown once: keep it now)")
				})
			}},
		{group: "tenants", name: "list", summary: "list tenants, newest first",
			flags: list.register,
			run: lister[*client.Admin, client.Tenant]{connect: (*env).admin, paged: &list,
				read: func(ctx context.Context, a *client.Admin, _ []string, limit int, cursor string) ([]client.Tenant, string, error) {
					return a.Tenants(ctx, limit, cursor)
				},
				columns: []string{"ID", "NAME", "RATE LIMIT", "CREATED"},
				row: func(t client.Tenant) []string {
					return []string{t.ID, t.Name, strconv.Itoa(t.RateLimit) + "/min", stamp(t.CreatedAt)}
				}}.run},
		{group: "tenants", name: "get", args: "<tenant>", nargs: 1, summary: "show a tenant",
			run: fetch((*env).admin, (*client.Admin).Tenant, shown(func(w *table, t client.Tenant) {
				w.kv("id", t.ID, "name", t.Name, "rate limit", strconv.Itoa(t.RateLimit)+"/min", "created", stamp(t.CreatedAt))
				showTenantLimits(w, t)
			}))},
		{group: "tenants", name: "update", args: "<tenant>", nargs: 1, summary: "change a tenant's name, rate limit or limits",
			flags: func(fs *flag.FlagSet) {
				fs.StringVar(&name, "name", "", "new name")
				fs.IntVar(&rateLimit, "rate-limit", 0, "new requests a minute (1..1000000)")
				fs.Var(&metadata, "limit", "name=value: override one of the tenant's limits, e.g. subscriptions=500 (repeatable)")
			},
			run: func(ctx context.Context, e *env, args []string) error {
				a, err := e.admin()
				if err != nil {
					return err
				}
				var p client.TenantPatch
				if name != "" {
					p.Name = &name
				}
				if rateLimit != 0 {
					p.RateLimit = &rateLimit
				}
				for n, v := range metadata.m {
					x, err := strconv.ParseInt(v, 10, 64)
					if err != nil {
						return usagef("tenants update: --limit %s=%s: want a whole number", n, v)
					}
					if p.Limits == nil {
						p.Limits = map[string]int64{}
					}
					p.Limits[n] = x
				}
				if p.Name == nil && p.RateLimit == nil && p.Limits == nil {
					return usagef("tenants update: give --name, --rate-limit or --limit")
				}
				t, err := a.UpdateTenant(ctx, args[0], p)
				if err != nil {
					return err
				}
				return e.show(t, func(w *table) {
					w.kv("id", t.ID, "name", t.Name, "rate limit", strconv.Itoa(t.RateLimit)+"/min")
					showTenantLimits(w, t)
				})
			}},
		{group: "tenants", name: "revoke", args: "<tenant>", nargs: 1, summary: "revoke every API key of a tenant and end its portal sessions",
			run: func(ctx context.Context, e *env, args []string) error {
				a, err := e.admin()
				if err != nil {
					return err
				}
				keys, err := a.Keys(ctx, args[0])
				if err != nil {
					return err
				}
				out := struct {
					Tenant        string   `json:"tenant"`
					RevokedKeys   []string `json:"revokedKeys"`
					EndedSessions int      `json:"endedSessions"`
				}{Tenant: args[0], RevokedKeys: []string{}}
				for _, k := range keys {
					if err := a.RevokeKey(ctx, args[0], k.ID); err != nil {
						return fmt.Errorf("revoke %s (after revoking %d of %d keys): %w", k.ID, len(out.RevokedKeys), len(keys), err)
					}
					out.RevokedKeys = append(out.RevokedKeys, k.ID)
				}
				if out.EndedSessions, err = a.EndPortalSessions(ctx, args[0]); err != nil {
					return err
				}
				return e.show(out, func(w *table) {
					w.kv("tenant", out.Tenant, "revoked keys", strconv.Itoa(len(out.RevokedKeys)), "ended portal sessions", strconv.Itoa(out.EndedSessions))
				})
			}},
		{group: "tenants", name: "portal-link", args: "<tenant>", nargs: 1, summary: "mint a one-time portal sign-in link (10 minutes)",
			run: fetch((*env).admin, (*client.Admin).PortalLink, shown(func(w *table, l client.PortalLink) {
				w.kv("link", l.URL, "expires", stamp(l.ExpiresAt)+" (usable once)")
			}))},
		{group: "keys", name: "create", args: "<tenant>", nargs: 1, summary: "issue another API key (shown once)",
			run: fetch((*env).admin, (*client.Admin).CreateKey, shown(func(w *table, k client.APIKey) {
				w.kv("id", k.ID, "API key", k.Key+"   (shown once: keep it now)")
			}))},
		{group: "keys", name: "list", args: "<tenant>", nargs: 1, summary: "list a tenant's live keys (ids only)",
			run: lister[*client.Admin, client.StoredKey]{connect: (*env).admin,
				read: func(ctx context.Context, a *client.Admin, args []string, _ int, _ string) ([]client.StoredKey, string, error) {
					keys, err := a.Keys(ctx, args[0])
					return keys, "", err
				},
				columns: []string{"ID", "CREATED"},
				row:     func(k client.StoredKey) []string { return []string{k.ID, stamp(k.CreatedAt)} }}.run},
		{group: "keys", name: "revoke", args: "<tenant> <key>", nargs: 2, summary: "revoke an API key (401 from then on)",
			run: func(ctx context.Context, e *env, args []string) error {
				a, err := e.admin()
				if err != nil {
					return err
				}
				if err := a.RevokeKey(ctx, args[0], args[1]); err != nil {
					return err
				}
				return e.show(map[string]string{"revoked": args[1]}, func(w *table) { w.kv("revoked", args[1]) })
			}},

		// Tenant commands.
		{group: "subscriptions", name: "list", summary: "list subscriptions, newest first",
			flags: list.register,
			run: lister[*client.Client, client.Subscription]{connect: (*env).tenant, paged: &list,
				read: func(ctx context.Context, c *client.Client, _ []string, limit int, cursor string) ([]client.Subscription, string, error) {
					return c.Subscriptions(ctx, limit, cursor)
				},
				columns: []string{"ID", "URL", "EVENT TYPES", "STATE", "CREATED"},
				row: func(s client.Subscription) []string {
					return []string{s.ID, s.URL, strings.Join(s.EventTypes, ","), state(s), stamp(s.CreatedAt)}
				}}.run},
		{group: "subscriptions", name: "get", args: "<subscription>", nargs: 1, summary: "show a subscription",
			run: fetch((*env).tenant, (*client.Client).Subscription, shown(showSubscription))},
		{group: "subscriptions", name: "create", summary: "subscribe an endpoint (prints its signing secret)",
			flags: func(fs *flag.FlagSet) {
				fs.StringVar(&url, "url", "", "endpoint URL (required)")
				fs.StringVar(&types, "types", "", "comma-separated event types or patterns: ticket.updated,ticket.*,* (required)")
				fs.StringVar(&description, "description", "", "description")
				fs.Var(&metadata, "metadata", "key=value (repeatable)")
				fs.StringVar(&secret, "secret", "", "whsec_... signing secret (default: generated)")
				fs.StringVar(&scheme, "signature-scheme", "", "v1 (HMAC, the default) or v1a (Ed25519: prints the public key)")
				fs.StringVar(&ordering, "ordering", "", "none or fifo")
				fs.Float64Var(&pace, "rate-limit", 0, "deliveries a second at most (0: no pace)")
				fs.Var(&active, "active", "true or false (default true)")
				fs.Float64Var(&pace, "pace", 0, "the same as --rate-limit")
				set.register(fs, false)
			},
			run: func(ctx context.Context, e *env, _ []string) error {
				if url == "" || types == "" {
					return usagef("subscriptions create: --url and --types are required")
				}
				c, err := e.tenant()
				if err != nil {
					return err
				}
				in := client.NewSubscription{URL: url, EventTypes: splitList(types), Description: description,
					Metadata: metadata.m, Secret: secret, Ordering: ordering, Active: active.p, SignatureScheme: scheme}
				if pace > 0 {
					in.RateLimit = &pace
				}
				if err := set.create(&in, e.getenv); err != nil {
					return err
				}
				s, err := c.CreateSubscription(ctx, in)
				if err != nil {
					return err
				}
				return e.show(s, func(w *table) {
					showSubscription(w, s)
					if s.PublicKey != "" {
						w.kv("public key", s.PublicKey)
						return
					}
					w.kv("secret", s.Secret)
				})
			}},
		{group: "subscriptions", name: "update", args: "<subscription>", nargs: 1, summary: "change a subscription (only the flags given)",
			flags: func(fs *flag.FlagSet) {
				fs.StringVar(&url, "url", "", "endpoint URL")
				fs.StringVar(&types, "types", "", "comma-separated event types or patterns")
				fs.StringVar(&description, "description", "", "description")
				fs.Var(&metadata, "metadata", "key=value (repeatable; replaces all metadata)")
				fs.StringVar(&ordering, "ordering", "", "none or fifo")
				fs.StringVar(&scheme, "signature-scheme", "", "v1 or v1a (a fresh key of it signs; the old one 24 h more)")
				fs.Float64Var(&pace, "rate-limit", -1, "deliveries a second at most (0 removes the pace)")
				fs.Var(&active, "active", "true (resume; clears a disabled reason) or false (pause)")
				fs.Float64Var(&pace, "pace", -1, "the same as --rate-limit")
				set.register(fs, true)
			},
			run: func(ctx context.Context, e *env, args []string) error {
				c, err := e.tenant()
				if err != nil {
					return err
				}
				var p client.SubscriptionPatch
				changed := false
				if url != "" {
					p.URL, changed = &url, true
				}
				if types != "" {
					t := splitList(types)
					p.EventTypes, changed = &t, true
				}
				if description != "" {
					p.Description, changed = &description, true
				}
				if metadata.m != nil {
					p.Metadata, changed = &metadata.m, true
				}
				if ordering != "" {
					p.Ordering, changed = &ordering, true
				}
				if scheme != "" {
					p.SignatureScheme, changed = &scheme, true
				}
				if pace >= 0 {
					p.RateLimit, changed = &pace, true
				}
				if active.p != nil {
					p.Active, changed = active.p, true
				}
				more, err := set.patch(&p, e.getenv)
				if err != nil {
					return err
				}
				if !changed && !more {
					return usagef("subscriptions update: give at least one setting flag (see --help)")
				}
				s, err := c.UpdateSubscription(ctx, args[0], p)
				if err != nil {
					return err
				}
				return e.show(s, func(w *table) { showSubscription(w, s) })
			}},
		{group: "subscriptions", name: "delete", args: "<subscription>", nargs: 1, summary: "delete a subscription",
			run: func(ctx context.Context, e *env, args []string) error {
				c, err := e.tenant()
				if err != nil {
					return err
				}
				if err := c.DeleteSubscription(ctx, args[0]); err != nil {
					return err
				}
				return e.show(map[string]string{"deleted": args[0]}, func(w *table) { w.kv("deleted", args[0]) })
			}},
		{group: "subscriptions", name: "secret", args: "<subscription>", nargs: 1, summary: "show the signing secret",
			run: fetch((*env).tenant, (*client.Client).Secret, func(e *env, s string) error {
				return e.show(map[string]string{keyName(s): s}, func(w *table) { w.kv(keyName(s), s) })
			})},
		{group: "subscriptions", name: "rotate-secret", args: "<subscription>", nargs: 1, summary: "rotate the signing secret (the old one signs 24 h more)",
			run: fetch((*env).tenant, (*client.Client).RotateSecret, func(e *env, s string) error {
				return e.show(map[string]string{keyName(s): s}, func(w *table) { w.kv(keyName(s), s, "note", "the previous key keeps signing for 24 h") })
			})},
		{group: "subscriptions", name: "test", args: "<subscription>", nargs: 1, summary: "send a webhook.test event to it",
			run: fetch((*env).tenant, (*client.Client).SendTest, func(e *env, id string) error {
				return e.show(map[string]string{"eventId": id}, func(w *table) { w.kv("event", id) })
			})},
		{group: "events", name: "publish", summary: "publish one event (--type, --data) or a file of them (--file, in batches of 100)",
			flags: func(fs *flag.FlagSet) {
				fs.StringVar(&types, "type", "", "event type")
				fs.StringVar(&data, "data", "{}", "event data, a JSON object")
				fs.StringVar(&eventID, "id", "", "event id (the same id is delivered once)")
				fs.StringVar(&file, "file", "", "a JSON array or JSON Lines of {type, data, id?}; - reads standard input")
			},
			run: func(ctx context.Context, e *env, _ []string) error {
				c, err := e.tenant()
				if err != nil {
					return err
				}
				if file != "" {
					if types != "" || eventID != "" {
						return usagef("events publish: --file excludes --type and --id")
					}
					return publishFile(ctx, e, c, file)
				}
				if types == "" {
					return usagef("events publish: give --type (and --data), or --file")
				}
				if !json.Valid([]byte(data)) {
					return usagef("events publish: --data is not JSON")
				}
				id, err := c.Publish(ctx, client.Event{Type: types, Data: json.RawMessage(data), ID: eventID})
				if err != nil {
					return err
				}
				return e.show(map[string]string{"id": id}, func(w *table) { w.kv("event", id) })
			}},
		{group: "deliveries", name: "list", args: "<subscription>", nargs: 1, summary: "list a subscription's deliveries, newest first",
			flags: func(fs *flag.FlagSet) {
				list.register(fs)
				fs.StringVar(&status, "status", "", "pending, succeeded, failed or skipped")
			},
			run: lister[*client.Client, client.Delivery]{connect: (*env).tenant, paged: &list,
				read: func(ctx context.Context, c *client.Client, args []string, limit int, cursor string) ([]client.Delivery, string, error) {
					return c.Deliveries(ctx, args[0], client.DeliveryQuery{Status: status, Limit: limit, Cursor: cursor})
				},
				columns: []string{"ID", "EVENT TYPE", "STATUS", "ATTEMPTS", "LAST RESULT", "CREATED"},
				row: func(d client.Delivery) []string {
					return []string{d.ID, d.EventType, d.Status, strconv.Itoa(len(d.Attempts)), lastResult(d), stamp(d.CreatedAt)}
				}}.run},
		{group: "deliveries", name: "get", args: "<delivery>", nargs: 1, summary: "show a delivery with every attempt",
			run: fetch((*env).tenant, (*client.Client).Delivery, shown(showDelivery))},
		{group: "deliveries", name: "retry", args: "<delivery>", nargs: 1, summary: "make one more attempt now",
			run: fetch((*env).tenant, (*client.Client).RetryDelivery, shown(showDelivery))},
		{group: "replay", args: "<subscription>", nargs: 1, summary: "deliver again every retained event since a time",
			flags: func(fs *flag.FlagSet) {
				replayed.register(fs, true)
			},
			run: func(ctx context.Context, e *env, args []string) error {
				from, to, err := replayed.parse()
				if err != nil {
					return err
				}
				c, err := e.tenant()
				if err != nil {
					return err
				}
				s, err := c.StartReplay(ctx, args[0], from, to)
				if err != nil {
					return err
				}
				return e.showStarted(ctx, c, s, "replayed", "events")
			}},
		{group: "event-types", name: "list", summary: "list the event-type catalog",
			run: lister[*client.Client, client.EventType]{connect: (*env).tenant,
				read: func(ctx context.Context, c *client.Client, _ []string, _ int, _ string) ([]client.EventType, string, error) {
					types, err := c.EventTypes(ctx)
					return types, "", err
				},
				columns: []string{"TYPE", "DESCRIPTION"},
				row:     func(t client.EventType) []string { return []string{t.Type, t.Description} }}.run},
		{group: "listen", summary: "receive webhooks here: verify, print and forward each (a local or testenv stack)",
			flags: func(fs *flag.FlagSet) {
				fs.StringVar(&forwardTo, "forward-to", "", "forward each verified webhook to this URL, e.g. http://localhost:3000/hook")
				fs.StringVar(&types, "types", "*", "comma-separated event types or patterns to listen to")
				fs.StringVar(&addr, "addr", "127.0.0.1:0", "address of the local receiver")
				fs.StringVar(&scheme, "signature-scheme", "", "v1 (HMAC, the default) or v1a (Ed25519): how the webhooks are signed")
			},
			run: func(ctx context.Context, e *env, _ []string) error {
				return listen(ctx, e, listenOptions{forwardTo: forwardTo, types: splitList(types), addr: addr, scheme: scheme})
			}},
	}, moreCommands()...)
}

// fetch returns the run of a command that makes one request with its one
// argument and shows the answer: connect makes the client ((*env).tenant
// or (*env).admin), call is the request, show prints what it returned.
func fetch[C, T any](connect func(*env) (C, error), call func(C, context.Context, string) (T, error), show func(*env, T) error) func(context.Context, *env, []string) error {
	return func(ctx context.Context, e *env, args []string) error {
		c, err := connect(e)
		if err != nil {
			return err
		}
		v, err := call(c, ctx, args[0])
		if err != nil {
			return err
		}
		return show(e, v)
	}
}

// shown shows v as itself with --json, else as human writes it.
func shown[T any](human func(*table, T)) func(*env, T) error {
	return func(e *env, v T) error { return e.show(v, func(w *table) { human(w, v) }) }
}

// batchSize is the API's most events in one batch.
const batchSize = 100

// batchField finds an item index in a batch field error.
var batchField = regexp.MustCompile(`^events\[(\d+)\]`)

// publishFile publishes a file of events in batches of 100. A batch the
// API refuses names its items by their place in the file.
func publishFile(ctx context.Context, e *env, c *client.Client, name string) error {
	var r io.Reader = os.Stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return err
		}
		defer f.Close()
		r = f
	}
	evts, err := readEvents(r)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	ids := []string{}
	for start := 0; start < len(evts); start += batchSize {
		batch := evts[start:min(start+batchSize, len(evts))]
		got, err := c.PublishBatch(ctx, batch)
		if err != nil {
			var ae *client.Error
			if errors.As(err, &ae) {
				renumber(ae, start)
			}
			fmt.Fprintf(e.stderr, "webhookctl: published %d of %d events before this batch failed\n", len(ids), len(evts))
			return err
		}
		ids = append(ids, got...)
	}
	return e.show(map[string][]string{"ids": ids}, func(w *table) {
		for _, id := range ids {
			w.row(id)
		}
		requests := (len(ids) + batchSize - 1) / batchSize
		w.row(fmt.Sprintf("%d events published in %d request%s", len(ids), requests, map[bool]string{true: "s"}[requests > 1]))
	})
}

// renumber makes a batch's field errors name items by their place in the
// whole file.
func renumber(ae *client.Error, offset int) {
	fields, _ := ae.Details["fields"].([]any)
	for _, f := range fields {
		m, _ := f.(map[string]any)
		field, _ := m["field"].(string)
		if sm := batchField.FindStringSubmatch(field); sm != nil {
			n, _ := strconv.Atoi(sm[1])
			m["field"] = fmt.Sprintf("events[%d]", n+offset) + field[len(sm[0]):]
		}
	}
}

// readEvents reads a JSON array of events or JSON Lines.
func readEvents(r io.Reader) ([]client.Event, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	b = bytes.TrimSpace(b)
	var evts []client.Event
	if bytes.HasPrefix(b, []byte("[")) {
		if err := json.Unmarshal(b, &evts); err != nil {
			return nil, fmt.Errorf("not a JSON array of events: %w", err)
		}
	} else {
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Buffer(make([]byte, 1<<20), 2<<20)
		for line := 1; sc.Scan(); line++ {
			text := bytes.TrimSpace(sc.Bytes())
			if len(text) == 0 {
				continue
			}
			var ev client.Event
			if err := json.Unmarshal(text, &ev); err != nil {
				return nil, fmt.Errorf("line %d: %w", line, err)
			}
			evts = append(evts, ev)
		}
		if err := sc.Err(); err != nil {
			return nil, err
		}
	}
	if len(evts) == 0 {
		return nil, errors.New("no events")
	}
	return evts, nil
}

// timeRange is the --since and --until flags of events list, replay and
// recover: since required or not, until open (now) when empty.
type timeRange struct {
	since, until string
	required     bool
}

func (r *timeRange) register(fs *flag.FlagSet, required bool) {
	r.required = required
	since, until := "RFC 3339 time, or a duration ago such as 2h", "RFC 3339 time, or a duration ago"
	if required {
		since, until = since+" (required)", until+" (default: now)"
	}
	fs.StringVar(&r.since, "since", "", since)
	fs.StringVar(&r.until, "until", "", until)
}

// parse reads the flags given.
func (r *timeRange) parse() (from, to time.Time, err error) {
	if from, err = parseWhen(r.since, "--since", r.required); err != nil {
		return time.Time{}, time.Time{}, err
	}
	if to, err = parseWhen(r.until, "--until", false); err != nil {
		return time.Time{}, time.Time{}, err
	}
	return from, to, nil
}

// parseWhen reads an RFC 3339 time or a duration ago.
func parseWhen(s, flagName string, required bool) (time.Time, error) {
	if s == "" {
		if required {
			return time.Time{}, usagef("%s is required", flagName)
		}
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return time.Now().Add(-d), nil
	}
	return time.Time{}, usagef("%s %q: want an RFC 3339 time or a duration such as 2h", flagName, s)
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// optionalBool is a boolean flag that knows whether it was given.
type optionalBool struct{ p *bool }

func (o *optionalBool) String() string {
	if o == nil || o.p == nil {
		return ""
	}
	return strconv.FormatBool(*o.p)
}

func (o *optionalBool) Set(s string) error {
	v, err := strconv.ParseBool(s)
	if err != nil {
		return err
	}
	o.p = &v
	return nil
}

// keyValues collects repeated key=value flags.
type keyValues struct{ m map[string]string }

func (k *keyValues) String() string { return "" }

func (k *keyValues) Set(s string) error {
	key, v, ok := strings.Cut(s, "=")
	if !ok || key == "" {
		return errors.New("want key=value")
	}
	if k.m == nil {
		k.m = map[string]string{}
	}
	k.m[key] = v
	return nil
}
