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

	"github.com/onestack/webhooks/client"
)

// Events, jobs, and the tenant's usage and limits.

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
	query := client.EventQuery{Type: q.Type, Since: formTime(q.Since, "since", q.Errors), Until: formTime(q.Until, "until", q.Errors),
		Limit: pageSize, Cursor: in.Get("cursor")}
	types, err := rq.api.EventTypes(rq.ctx())
	if err != nil {
		return err
	}
	var events []client.EventSummary
	var cursor string
	status := http.StatusOK
	if len(q.Errors) == 0 {
		events, cursor, err = rq.api.Events(rq.ctx(), query)
		var ae *client.Error
		switch {
		case errors.As(err, &ae) && ae.Status == http.StatusBadRequest:
			for _, fe := range ae.Fields() {
				q.Errors[formField(fe.Field)] = fe.Reason
			}
			if len(ae.Fields()) == 0 {
				q.Errors["type"] = apiMessage(ae)
			}
		case err != nil:
			return err
		}
	}
	if len(q.Errors) > 0 {
		status = http.StatusUnprocessableEntity
	}
	next := ""
	if cursor != "" {
		nq := url.Values{"cursor": {cursor}}
		for k, v := range map[string]string{"type": q.Type, "since": q.Since, "until": q.Until} {
			if v != "" {
				nq.Set(k, v)
			}
		}
		next = "/portal/events?" + nq.Encode()
	}
	return p.render(rq, status, "events", "Events", "events", eventsPage{
		Query: q, Events: events, Catalog: types, Next: next, Paged: query.Cursor != ""})
}

// showEvent shows one event, its data and every delivery it made.
func (p *Portal) showEvent(rq *request, id string) error {
	ev, err := rq.api.Event(rq.ctx(), id)
	if err != nil {
		return err
	}
	data := string(ev.Data)
	var v any
	if json.Unmarshal(ev.Data, &v) == nil {
		if b, err := json.MarshalIndent(v, "", "  "); err == nil {
			data = string(b)
		}
	}
	return p.render(rq, http.StatusOK, "event", ev.ID, "events", eventPage{Event: ev, Pretty: data, Back: rq.r.URL.RequestURI()})
}

// job is a background replay or recovery as its pages show it.
type job struct{ client.Job }

// jobsOf wraps the API's jobs for the pages.
func jobsOf(list []client.Job) []job {
	out := make([]job, len(list))
	for i, j := range list {
		out[i] = job{j}
	}
	return out
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
	cursor := in.Get("cursor")
	list, next, err := rq.api.Jobs(rq.ctx(), pageSize, cursor)
	if err != nil {
		return err
	}
	return p.render(rq, status, "jobs", "Jobs", "jobs", jobsPage{ID: id, Errors: errs,
		Jobs: jobsOf(list), Next: next, Paged: cursor != ""})
}

// showJob shows a job's progress; while it runs the page reloads itself
// every few seconds (each reload is one API request).
func (p *Portal) showJob(rq *request, id string) error {
	j, err := rq.api.Job(rq.ctx(), id)
	if err != nil {
		return err
	}
	return p.render(rq, http.StatusOK, "job", j.ID, "jobs", jobPage{Job: job{j}})
}

// recover resends a subscription's failed (or skipped) deliveries of a
// time range once more each.
func (p *Portal) recover(rq *request, id string) error {
	rf := readReplayForm(rq.r)
	since, until := rf.times()
	if len(rf.Errors) == 0 {
		out, err := rq.api.Recover(rq.ctx(), id, client.Recovery{Since: since, Until: until, Status: rf.Status})
		if err == nil && out.JobID != "" {
			return p.redirect(rq, "/portal/jobs/"+out.JobID, "Recovery running in the background as job "+out.JobID+".")
		}
		if err == nil {
			return p.redirect(rq, "/portal/subscriptions/"+id+"/deliveries", fmt.Sprintf("Recovery queued: %d deliveries will be sent once more.", out.Count))
		}
		if err := rf.refused(err); err != nil {
			return err
		}
	}
	return p.renderDeliveries(rq, id, http.StatusUnprocessableEntity, replayForm{}, rf)
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
	out, err := rq.api.Limits(rq.ctx())
	if err != nil {
		return err
	}
	budget := rq.budget()
	var rows []limitRow
	seen := map[string]bool{}
	add := func(name, label, note string) {
		max, ok := out.Max[name]
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
		if name == "requestsPerMinute" && budget.Known() {
			used := int64(budget.Limit - budget.Remaining)
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
	for name := range out.Max {
		if !seen[name] {
			others = append(others, name)
		}
	}
	sort.Strings(others)
	for _, name := range others {
		add(name, name, "")
	}
	return p.render(rq, http.StatusOK, "budget", "Usage and limits", "budget", usagePage{
		Limits: rows, Used: budget.Limit - budget.Remaining, ResetIn: max(0, int(budget.Reset.Sub(p.cfg.Now()).Seconds()))})
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
