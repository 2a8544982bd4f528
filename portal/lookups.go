package portal

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Events, jobs, and the tenant's usage and limits.

type eventSummary struct {
	ID         string    `json:"id"`
	Type       string    `json:"type"`
	OccurredAt time.Time `json:"occurredAt"`
}

type eventDetail struct {
	eventSummary
	Data       json.RawMessage `json:"data"`
	Deliveries []delivery      `json:"deliveries"`
}

// eventQuery is the events page's search: what the browser asked, and
// the problems to show beside each field.
type eventQuery struct {
	ID, Type, Since, Until string
	Errors                 map[string]string
}

// listEvents shows the events page: a lookup by id, and the tenant's
// retained events by type and time, newest first.
func (p *Portal) listEvents(rq *request) error {
	in := rq.r.URL.Query()
	q := eventQuery{ID: strings.TrimSpace(in.Get("id")), Type: in.Get("type"),
		Since: strings.TrimSpace(in.Get("since")), Until: strings.TrimSpace(in.Get("until")), Errors: map[string]string{}}
	if q.ID != "" {
		if !idPattern.MatchString(q.ID) {
			q.Errors["id"] = "an event id is letters, digits, _ and -"
		} else {
			return p.redirect(rq, "/portal/events/"+q.ID, "")
		}
	}
	api := url.Values{"limit": {strconv.Itoa(pageSize)}}
	if q.Type != "" {
		api.Set("type", q.Type)
	}
	for name, v := range map[string]string{"since": q.Since, "until": q.Until} {
		if v == "" {
			continue
		}
		if t, ok := parseFormTime(v); ok {
			api.Set(name, t)
		} else {
			q.Errors[name] = "want a date and time, such as 2026-01-31T09:30 (UTC) or RFC 3339"
		}
	}
	if c := in.Get("cursor"); c != "" {
		api.Set("cursor", c)
	}
	types, err := p.catalog(rq)
	if err != nil {
		return err
	}
	var out page[eventSummary]
	status := http.StatusOK
	if len(q.Errors) == 0 {
		_, err = p.call(rq, "GET", "/api/events?"+api.Encode(), nil, &out)
		var ae *apiError
		switch {
		case errors.As(err, &ae) && ae.Status == http.StatusBadRequest:
			for _, fe := range ae.fieldErrors() {
				q.Errors[formField(fe.Field)] = fe.Reason
			}
			if len(ae.fieldErrors()) == 0 {
				q.Errors["type"] = ae.Message
			}
		case err != nil:
			return err
		}
	}
	if len(q.Errors) > 0 {
		status = http.StatusUnprocessableEntity
	}
	next := ""
	if out.NextCursor != "" {
		nq := url.Values{"cursor": {out.NextCursor}}
		for k, v := range map[string]string{"type": q.Type, "since": q.Since, "until": q.Until} {
			if v != "" {
				nq.Set(k, v)
			}
		}
		next = "/portal/events?" + nq.Encode()
	}
	return p.render(rq, status, "events", "Events", "events", map[string]any{
		"Query": q, "Events": out.Data, "Catalog": types, "Next": next, "Paged": in.Get("cursor") != ""})
}

// showEvent shows one event, its data and every delivery it made.
func (p *Portal) showEvent(rq *request) error {
	id, err := pathID(rq)
	if err != nil {
		return err
	}
	var ev eventDetail
	if _, err := p.call(rq, "GET", "/api/events/"+id, nil, &ev); err != nil {
		return err
	}
	data := string(ev.Data)
	var v any
	if json.Unmarshal(ev.Data, &v) == nil {
		if b, err := json.MarshalIndent(v, "", "  "); err == nil {
			data = string(b)
		}
	}
	return p.render(rq, http.StatusOK, "event", ev.ID, "events", map[string]any{
		"Event": ev, "Pretty": data, "Back": rq.r.URL.RequestURI()})
}

// job is a background replay or recovery as the API shows it.
type job struct {
	ID             string    `json:"id"`
	Kind           string    `json:"kind"`
	SubscriptionID string    `json:"subscriptionId"`
	Status         string    `json:"status"`
	Total          int64     `json:"total"`
	Sent           int64     `json:"sent"`
	Filtered       int64     `json:"filtered"`
	Since          time.Time `json:"since"`
	Until          time.Time `json:"until"`
	Error          *string   `json:"error"`
	CreatedAt      time.Time `json:"createdAt"`
	UpdatedAt      time.Time `json:"updatedAt"`
}

// Percent is how far the job is, 0..100.
func (j job) Percent() int {
	if j.Status == "done" {
		return 100
	}
	if j.Total <= 0 {
		return 0
	}
	return int(min(100, (j.Sent+j.Filtered)*100/j.Total))
}

// jobs shows the jobs page: a lookup by id, and the tenant's jobs,
// newest first.
func (p *Portal) jobs(rq *request) error {
	in := rq.r.URL.Query()
	id := strings.TrimSpace(in.Get("id"))
	errs := map[string]string{}
	if id != "" {
		if idPattern.MatchString(id) {
			return p.redirect(rq, "/portal/jobs/"+id, "")
		}
		errs["id"] = "a job id is letters, digits, _ and -"
	}
	status := http.StatusOK
	if len(errs) > 0 {
		status = http.StatusUnprocessableEntity
	}
	q := url.Values{"limit": {strconv.Itoa(pageSize)}}
	if c := in.Get("cursor"); c != "" {
		q.Set("cursor", c)
	}
	var out page[job]
	if _, err := p.call(rq, "GET", "/api/jobs?"+q.Encode(), nil, &out); err != nil {
		return err
	}
	return p.render(rq, status, "jobs", "Jobs", "jobs", map[string]any{"ID": id, "Errors": errs,
		"Jobs": out.Data, "Next": out.NextCursor, "Paged": in.Get("cursor") != ""})
}

// showJob shows a job's progress; while it runs the page reloads itself
// every few seconds (each reload is one API request).
func (p *Portal) showJob(rq *request) error {
	id, err := pathID(rq)
	if err != nil {
		return err
	}
	var j job
	if _, err := p.call(rq, "GET", "/api/jobs/"+id, nil, &j); err != nil {
		return err
	}
	return p.render(rq, http.StatusOK, "job", j.ID, "jobs", map[string]any{"Job": j})
}

// recover resends a subscription's failed (or skipped) deliveries of a
// time range once more each.
func (p *Portal) recover(rq *request) error {
	id, err := pathID(rq)
	if err != nil {
		return err
	}
	rf := readReplayForm(rq.r)
	body := rf.body()
	if rf.Status != "" {
		body["status"] = rf.Status
	}
	if len(rf.Errors) == 0 {
		var out struct {
			Recovered int    `json:"recovered"`
			JobID     string `json:"jobId"`
		}
		_, err = p.call(rq, "POST", "/api/subscriptions/"+id+"/recover", body, &out)
		if err == nil && out.JobID != "" {
			return p.redirect(rq, "/portal/jobs/"+out.JobID, "Recovery running in the background as job "+out.JobID+".")
		}
		if err == nil {
			return p.redirect(rq, "/portal/subscriptions/"+id+"/deliveries", fmt.Sprintf("Recovery queued: %d deliveries will be sent once more.", out.Recovered))
		}
		if err := rf.refused(err); err != nil {
			return err
		}
	}
	return p.deliveriesPageWith(rq, id, http.StatusUnprocessableEntity, replayForm{}, rf)
}

// limitRow is one limit on the usage page.
type limitRow struct {
	Name, Label, Max, Used string
	// Percent of the limit used (-1: not counted).
	Percent int
	Note    string
}

// limitLabels name the spec's limits for people, in the page's order;
// a limit the server adds later is shown by its own name after them.
var limitLabels = []struct{ name, label, note string }{
	{"requestsPerMinute", "API requests a minute", "the budget below; every portal page is one request"},
	{"subscriptions", "Subscriptions", ""},
	{"eventTypes", "Event types", ""},
	{"eventBytes", "Size of one event's data", ""},
	{"storedBytes", "Stored events", "events kept for replay, in bytes"},
	{"attemptsInFlight", "Attempts in flight", "your share of delivery while others have work; never refuses a request"},
	{"jobs", "Replay and recovery jobs at once", ""},
}

// usage shows the tenant's limits, what it uses of them, and its API
// budget (the rate-limit headers of the limits request itself).
func (p *Portal) usage(rq *request) error {
	var out struct {
		Limits map[string]int64 `json:"limits"`
		Usage  map[string]int64 `json:"usage"`
	}
	if _, err := p.call(rq, "GET", "/api/limits", nil, &out); err != nil {
		return err
	}
	var rows []limitRow
	seen := map[string]bool{}
	add := func(name, label, note string) {
		max, ok := out.Limits[name]
		if !ok {
			return
		}
		seen[name] = true
		r := limitRow{Name: name, Label: label, Max: amount(name, max), Used: "not counted here", Percent: -1, Note: note}
		if u, ok := out.Usage[name]; ok {
			r.Used = amount(name, u)
			if max > 0 {
				r.Percent = int(min(100, u*100/max))
			}
		}
		if name == "requestsPerMinute" && rq.budget.Known() {
			used := int64(rq.budget.Limit - rq.budget.Remaining)
			r.Used = strconv.FormatInt(used, 10) + " in this window"
			if max > 0 {
				r.Percent = int(min(100, used*100/max))
			}
		}
		rows = append(rows, r)
	}
	for _, l := range limitLabels {
		add(l.name, l.label, l.note)
	}
	var others []string
	for name := range out.Limits {
		if !seen[name] {
			others = append(others, name)
		}
	}
	sort.Strings(others)
	for _, name := range others {
		add(name, name, "")
	}
	return p.render(rq, http.StatusOK, "budget", "Usage and limits", "budget", map[string]any{
		"Limits": rows, "Used": rq.budget.Limit - rq.budget.Remaining, "ResetIn": max(0, int(rq.budget.Reset.Sub(p.cfg.Now()).Seconds()))})
}

// amount writes a limit or usage: bytes in KiB, MiB or GiB.
func amount(name string, n int64) string {
	if !strings.HasSuffix(name, "Bytes") {
		return strconv.FormatInt(n, 10)
	}
	for _, u := range []struct {
		size int64
		unit string
	}{{1 << 30, "GiB"}, {1 << 20, "MiB"}, {1 << 10, "KiB"}} {
		if n >= u.size {
			return strings.TrimSuffix(strconv.FormatFloat(float64(n)/float64(u.size), 'f', 1, 64), ".0") + " " + u.unit
		}
	}
	return strconv.FormatInt(n, 10) + " bytes"
}
