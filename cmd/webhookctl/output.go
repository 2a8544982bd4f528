package main

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/onestack/webhooks/client"
	"github.com/onestack/webhooks/signature"
)

// table writes aligned columns for people.
type table struct{ tw *tabwriter.Writer }

func (t *table) row(cols ...string) {
	for i, c := range cols {
		cols[i] = strings.ReplaceAll(c, "\t", " ")
	}
	fmt.Fprintln(t.tw, strings.Join(cols, "\t"))
}

// kv writes label: value pairs, one a line.
func (t *table) kv(pairs ...string) {
	for i := 0; i+1 < len(pairs); i += 2 {
		t.row(pairs[i]+":", pairs[i+1])
	}
}

// show prints v as JSON with --json, else the table human writes.
func (e *env) show(v any, human func(*table)) error {
	if e.json {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	t := &table{tw: tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)}
	human(t)
	return t.tw.Flush()
}

// showPage prints a list: {"data": [...], "nextCursor"?} with --json.
func (e *env) showPage(data any, next string, human func(*table)) error {
	if e.json {
		out := map[string]any{"data": data}
		if next != "" {
			out["nextCursor"] = next
		}
		return e.show(out, nil)
	}
	if err := e.show(nil, human); err != nil {
		return err
	}
	if next != "" {
		fmt.Fprintf(e.stdout, "\nmore: --cursor %s (or --all)\n", next)
	}
	return nil
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

func state(s client.Subscription) string {
	switch {
	case s.Active:
		return "active"
	case s.DisabledReason != nil:
		return "disabled: " + *s.DisabledReason
	}
	return "paused"
}

func showSubscription(w *table, s client.Subscription) {
	pace := "none"
	if s.RateLimit != nil {
		pace = strconv.FormatFloat(*s.RateLimit, 'f', -1, 64) + "/s"
	}
	meta := make([]string, 0, len(s.Metadata))
	for k, v := range s.Metadata {
		meta = append(meta, k+"="+v)
	}
	w.kv("id", s.ID, "url", s.URL, "event types", strings.Join(s.EventTypes, ", "), "state", state(s),
		"description", s.Description, "metadata", strings.Join(meta, " "), "ordering", s.Ordering, "pace", pace,
		"signature", s.SignatureScheme, "created", stamp(s.CreatedAt), "updated", stamp(s.UpdatedAt))
	showSettings(w, s)
}

// keyName names what a subscription's secret read or rotation gave: a
// secret, or the public key of a v1a subscription.
func keyName(s string) string {
	if strings.HasPrefix(s, signature.PublicKeyPrefix) {
		return "publicKey"
	}
	return "secret"
}

// result is an attempt's outcome in a few words.
func result(a client.Attempt) string {
	var parts []string
	if a.StatusCode != nil {
		parts = append(parts, "HTTP "+strconv.Itoa(*a.StatusCode))
	}
	if a.Error != nil {
		parts = append(parts, *a.Error)
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, " ")
}

func lastResult(d client.Delivery) string {
	if len(d.Attempts) == 0 {
		return "-"
	}
	return result(d.Attempts[len(d.Attempts)-1])
}

func showDelivery(w *table, d client.Delivery) {
	next := "-"
	if d.NextAttemptAt != nil {
		next = stamp(*d.NextAttemptAt)
	}
	w.kv("id", d.ID, "subscription", d.SubscriptionID, "event", d.EventID+" ("+d.EventType+")", "status", d.Status,
		"created", stamp(d.CreatedAt), "next attempt", next)
	if len(d.Attempts) == 0 {
		return
	}
	w.row("")
	w.row("#", "AT", "RESULT", "DURATION", "TRACE", "ANSWER (first 1 KiB)")
	for i, a := range d.Attempts {
		body := strings.Join(strings.Fields(a.ResponseBody), " ")
		if len(body) > 60 {
			body = body[:60] + "…"
		}
		trace := a.TraceID
		if trace == "" {
			trace = "-"
		}
		w.row(strconv.Itoa(i+1), stamp(a.At), result(a), strconv.FormatInt(a.DurationMs, 10)+" ms", trace, body)
	}
}
