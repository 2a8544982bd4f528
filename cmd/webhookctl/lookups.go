package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/onestack/webhooks/client"
)

// moreCommands are the commands of events, recoveries, jobs, limits and
// the operator's event-type catalog; commands lists them after its own.
func moreCommands() []command {
	var (
		list                         listFlags
		typ, status                  string
		listed, recovered            timeRange
		description, schema, example string
		undeprecate                  bool
	)
	return []command{
		{group: "events", name: "list", summary: "list retained events, newest first (--type, --since, --until)",
			flags: func(fs *flag.FlagSet) {
				list.register(fs)
				fs.StringVar(&typ, "type", "", "only this event type")
				listed.register(fs, false)
			},
			run: func(ctx context.Context, e *env, _ []string) error {
				from, to, err := listed.parse()
				if err != nil {
					return err
				}
				return lister[*client.Client, client.EventSummary]{connect: (*env).tenant, paged: &list,
					read: func(ctx context.Context, c *client.Client, _ []string, limit int, cursor string) ([]client.EventSummary, string, error) {
						return c.Events(ctx, client.EventQuery{Type: typ, Since: from, Until: to, Limit: limit, Cursor: cursor})
					},
					columns: []string{"ID", "TYPE", "OCCURRED"},
					row:     func(ev client.EventSummary) []string { return []string{ev.ID, ev.Type, stamp(ev.OccurredAt)} },
				}.run(ctx, e, nil)
			}},
		{group: "events", name: "get", args: "<event>", nargs: 1, summary: "show an event, its data and every delivery it made",
			run: fetch((*env).tenant, (*client.Client).Event, shown(func(w *table, ev client.EventDetail) {
				w.kv("id", ev.ID, "type", ev.Type, "occurred", stamp(ev.OccurredAt), "data", string(ev.Data))
				if len(ev.Deliveries) == 0 {
					w.kv("deliveries", "none")
					return
				}
				w.row("")
				w.row("DELIVERY", "SUBSCRIPTION", "STATUS", "ATTEMPTS", "LAST RESULT")
				for _, d := range ev.Deliveries {
					w.row(d.ID, d.SubscriptionID, d.Status, strconv.Itoa(len(d.Attempts)), lastResult(d))
				}
			}))},
		{group: "recover", args: "<subscription>", nargs: 1, summary: "resend, once more each, the deliveries that failed (or were skipped) in a time range",
			flags: func(fs *flag.FlagSet) {
				recovered.register(fs, true)
				fs.StringVar(&status, "status", "", "failed (the default) or skipped")
			},
			run: func(ctx context.Context, e *env, args []string) error {
				from, to, err := recovered.parse()
				if err != nil {
					return err
				}
				c, err := e.tenant()
				if err != nil {
					return err
				}
				s, err := c.Recover(ctx, args[0], client.Recovery{Since: from, Until: to, Status: status})
				if err != nil {
					return err
				}
				return e.showStarted(ctx, c, s, "recovered", "deliveries")
			}},
		{group: "jobs", name: "list", summary: "list replay and recovery jobs, newest first",
			flags: list.register,
			run: lister[*client.Client, client.Job]{connect: (*env).tenant, paged: &list,
				read: func(ctx context.Context, c *client.Client, _ []string, limit int, cursor string) ([]client.Job, string, error) {
					return c.Jobs(ctx, limit, cursor)
				},
				columns: []string{"ID", "KIND", "SUBSCRIPTION", "STATUS", "SENT", "CREATED"},
				row: func(j client.Job) []string {
					return []string{j.ID, j.Kind, j.SubscriptionID, j.Status, fmt.Sprintf("%d/%d", j.Sent, j.Total), stamp(j.CreatedAt)}
				}}.run},
		{group: "jobs", name: "get", args: "<job>", nargs: 1, summary: "show a replay or recovery job and its progress",
			run: fetch((*env).tenant, (*client.Client).Job, shown(showJobDetail))},
		{group: "limits", summary: "show the tenant's limits and what it uses of them",
			run: func(ctx context.Context, e *env, _ []string) error {
				c, err := e.tenant()
				if err != nil {
					return err
				}
				l, err := c.Limits(ctx)
				if err != nil {
					return err
				}
				return e.show(l, func(w *table) {
					w.row("LIMIT", "MAX", "USED")
					names := make([]string, 0, len(l.Max))
					for n := range l.Max {
						names = append(names, n)
					}
					sort.Strings(names)
					for _, n := range names {
						used := "-"
						if u, ok := l.Usage[n]; ok {
							used = strconv.FormatInt(u, 10)
						}
						w.row(n, strconv.FormatInt(l.Max[n], 10), used)
					}
				})
			}},
		{group: "event-types", name: "get", args: "<type>", nargs: 1, summary: "show an event type with its schema and example",
			run: fetch((*env).tenant, (*client.Client).EventType, shown(showEventType))},
		{group: "event-types", name: "create", args: "<type>", nargs: 1, summary: "operator: add a type to the catalog",
			flags: func(fs *flag.FlagSet) {
				fs.StringVar(&description, "description", "", "what the event means (required)")
				fs.StringVar(&schema, "schema", "", "a file of the data's JSON Schema (optional)")
				fs.StringVar(&example, "example", "", "a file of an example of the data (optional)")
			},
			run: func(ctx context.Context, e *env, args []string) error {
				if description == "" {
					return usagef("event-types create: --description is required")
				}
				in := client.NewEventType{Type: args[0], Description: description}
				var err error
				if in.Schema, err = jsonFile(schema, "--schema"); err != nil {
					return err
				}
				if in.Example, err = jsonFile(example, "--example"); err != nil {
					return err
				}
				a, err := e.admin()
				if err != nil {
					return err
				}
				t, err := a.RegisterEventType(ctx, in)
				if err != nil {
					return err
				}
				return e.show(t, func(w *table) { showEventType(w, t) })
			}},
		{group: "event-types", name: "update", args: "<type>", nargs: 1, summary: "operator: change a type's description, schema or example",
			flags: func(fs *flag.FlagSet) {
				fs.StringVar(&description, "description", "", "new description")
				fs.StringVar(&schema, "schema", "", "a file of the new JSON Schema ('null' removes it)")
				fs.StringVar(&example, "example", "", "a file of the new example ('null' removes it)")
				fs.BoolVar(&undeprecate, "undeprecate", false, "offer a deprecated type to new subscriptions again")
			},
			run: func(ctx context.Context, e *env, args []string) error {
				var p client.EventTypePatch
				if description != "" {
					p.Description = &description
				}
				var err error
				if p.Schema, err = jsonFile(schema, "--schema"); err != nil {
					return err
				}
				if p.Example, err = jsonFile(example, "--example"); err != nil {
					return err
				}
				if undeprecate {
					f := false
					p.Deprecated = &f
				}
				if p.Description == nil && p.Schema == nil && p.Example == nil && p.Deprecated == nil {
					return usagef("event-types update: give --description, --schema, --example or --undeprecate")
				}
				a, err := e.admin()
				if err != nil {
					return err
				}
				t, err := a.UpdateEventType(ctx, args[0], p)
				if err != nil {
					return err
				}
				return e.show(t, func(w *table) { showEventType(w, t) })
			}},
		{group: "event-types", name: "deprecate", args: "<type>", nargs: 1, summary: "operator: deprecate a type (still delivered; refused to new subscriptions)",
			run: fetch((*env).admin, (*client.Admin).DeprecateEventType, shown(showEventType))},
	}
}

// jsonFile reads a file of JSON for a flag: nil when the flag is empty,
// JSON null for the word null.
func jsonFile(name, flagName string) (json.RawMessage, error) {
	switch name {
	case "":
		return nil, nil
	case "null":
		return json.RawMessage("null"), nil
	}
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flagName, err)
	}
	if !json.Valid(b) {
		return nil, usagef("%s %s: not JSON", flagName, name)
	}
	return json.RawMessage(b), nil
}

func showEventType(w *table, t client.EventTypeDetail) {
	var flags []string
	if t.Internal {
		flags = append(flags, "internal")
	}
	if t.Deprecated {
		flags = append(flags, "deprecated")
	}
	w.kv("type", t.Type, "description", t.Description, "flags", strings.Join(flags, ", "))
	if len(t.Schema) > 0 && string(t.Schema) != "null" {
		w.kv("schema", string(t.Schema))
	}
	if len(t.Example) > 0 && string(t.Example) != "null" {
		w.kv("example", string(t.Example))
	}
}

func showJobDetail(w *table, j client.Job) {
	w.kv("id", j.ID, "kind", j.Kind, "subscription", j.SubscriptionID, "status", j.Status,
		"progress", fmt.Sprintf("%d of %d sent, %d filtered out", j.Sent, j.Total, j.Filtered),
		"range", stamp(j.Since)+" .. "+stamp(j.Until), "created", stamp(j.CreatedAt), "updated", stamp(j.UpdatedAt))
	if j.Error != nil {
		w.kv("error", *j.Error)
	}
}

// showTenantLimits writes a tenant's limits, by name, on one line.
func showTenantLimits(w *table, t client.Tenant) {
	if len(t.Limits) == 0 {
		return
	}
	names := make([]string, 0, len(t.Limits))
	for n := range t.Limits {
		names = append(names, n)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = n + "=" + strconv.FormatInt(t.Limits[n], 10)
	}
	w.kv("limits", strings.Join(parts, " "))
}
