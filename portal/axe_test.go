package portal_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/onestack/webhooks/testenv"
)

// axe-core (portal/testdata/axe, see its README) checks pages against the
// WCAG 2.1 A and AA rules in the browser tests.

// wcagTags are the axe-core rule tags run: WCAG 2.0 and 2.1, A and AA.
var wcagTags = []string{"wcag2a", "wcag2aa", "wcag21a", "wcag21aa"}

var axeSource = sync.OnceValues(func() (string, error) {
	b, err := os.ReadFile("testdata/axe/axe.min.js")
	return string(b), err
})

// violation is one axe-core rule a page breaks, with the elements.
type violation struct {
	ID     string   `json:"id"`
	Impact string   `json:"impact"`
	Help   string   `json:"help"`
	Nodes  []string `json:"nodes"`
}

// violations runs axe-core on the page loaded in the tab. The script is
// put in through DevTools, which the page's Content-Security-Policy does
// not govern.
func (tb *tab) violations() []violation {
	tb.t.Helper()
	src, err := axeSource()
	if err != nil {
		tb.t.Fatalf("axe-core: %v", err)
	}
	if loaded, _ := chromedp.Run(tb.ctx, chromedp.Evaluate[bool]("typeof window.axe === 'object'")); !loaded {
		if _, err := chromedp.Run(tb.ctx, chromedp.Evaluate[any](src+";0")); err != nil {
			tb.t.Fatalf("load axe-core: %v", err)
		}
	}
	tags, _ := json.Marshal(wcagTags)
	js := `axe.run(document, {runOnly: {type: "tag", values: ` + string(tags) + `}, resultTypes: ["violations"]}).then(r => JSON.stringify(
		r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map(n => n.target.join(" "))}))))`
	out, err := chromedp.Run(tb.ctx, chromedp.Evaluate[string](js, chromedp.EvalAwaitPromise))
	if err != nil {
		tb.t.Fatalf("run axe-core: %v", err)
	}
	var vs []violation
	if err := json.Unmarshal([]byte(out), &vs); err != nil {
		tb.t.Fatalf("axe-core's answer %q: %v", out, err)
	}
	return vs
}

// accessible fails the test for every WCAG 2.1 A or AA problem axe-core
// finds on the page loaded.
func (tb *tab) accessible(page string) {
	tb.t.Helper()
	for _, v := range tb.violations() {
		tb.t.Errorf("%s: axe-core %s (%s): %s, on %s", page, v.ID, v.Impact, v.Help, strings.Join(v.Nodes, "; "))
	}
}

// TestAxeFindsProblems: the check is not blind: a page with the badge
// colours the portal had and an input without a label fails it.
func TestAxeFindsProblems(t *testing.T) {
	t.Parallel()
	tb := newTab(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write([]byte(`<!doctype html><html lang="en"><head><title>bad</title></head><body><main>
<p><span style="background:#dcf2e3;color:#17803d;font-size:12px">succeeded</span></p>
<input type="text" name="nameless"></main></body></html>`))
	}))
	defer srv.Close()
	tb.do("load a bad page", chromedp.Navigate(srv.URL), shown("main"))
	found := map[string]bool{}
	for _, v := range tb.violations() {
		found[v.ID] = true
	}
	for _, want := range []string{"color-contrast", "label"} {
		if !found[want] {
			t.Errorf("axe-core did not report %s on a page that has it; found %v", want, found)
		}
	}
}

// TestPortalPagesAreAccessible visits every kind of portal page, with
// deliveries of every status and subscriptions active, paused and
// disabled, and runs axe-core's WCAG 2.1 A and AA rules on each.
func TestPortalPagesAreAccessible(t *testing.T) {
	t.Parallel()
	tb := newTab(t)
	env := testenv.Start(t, testenv.Options{})
	ten, _ := env.CreateTenant("acme", 100000)
	ok, failing, gone := testenv.NewReceiver(), testenv.NewReceiver(), testenv.NewReceiver()
	defer ok.Close()
	defer failing.Close()
	defer gone.Close()
	failing.Respond(func(int, *http.Request) int { return http.StatusInternalServerError })
	gone.Respond(func(int, *http.Request) int { return http.StatusGone })
	good, err := env.SubscribeWith(ten, map[string]any{"url": ok.URL() + "/h", "eventTypes": []string{"ticket.*"},
		"filter": `data.n >= 0`, "headers": map[string]string{"X-Team": "ops"}})
	if err != nil {
		t.Fatal(err)
	}
	bad, _ := env.Subscribe(ten, failing.URL()+"/h", "ticket.*")
	disabled, _ := env.Subscribe(ten, gone.URL()+"/h", "ticket.*")
	paused, _ := env.SubscribeWith(ten, map[string]any{"url": ok.URL() + "/paused", "eventTypes": []string{"ticket.*"}, "active": false})

	// 150 events: more than a page, so a replay runs as a job.
	for _, n := range []int{100, 50} {
		evts := make([]map[string]any, n)
		for i := range evts {
			evts[i] = map[string]any{"type": "ticket.created", "data": map[string]int{"n": i}}
		}
		if r, err := env.Do("POST", "/api/events/batch", ten.APIKey, map[string]any{"events": evts}); err != nil || r.Status != 202 {
			t.Fatalf("publish: %v %d %s", err, r.Status, r.Body)
		}
	}
	evt, _ := env.Publish(ten, "ticket.updated", map[string]int{"n": 1})
	base := env.URL() + "/portal"
	tb.do("the sign-in page", chromedp.Navigate(base+"/login"), shown("#apiKey"))
	tb.accessible("sign-in")
	tb.do("sign in", chromedp.Navigate(link(t, env, ten.ID)), shown("#new-subscription"))
	tb.until("a failed delivery", base+"/subscriptions/"+bad.ID+"/deliveries?status=failed", `document.querySelector('article.delivery[data-status="failed"]')`)
	tb.until("the 410 disabled it", base+"/subscriptions/"+disabled.ID, `document.getElementById("disabled-banner")`)
	tb.until("five failed attempts in a row mark it failing", base+"/subscriptions/"+bad.ID, `document.getElementById("failing-banner")`)
	r, _ := env.Do("POST", "/api/subscriptions/"+good.ID+"/replay", ten.APIKey, map[string]any{"since": time.Now().Add(-time.Hour).UTC()})
	var started struct{ JobID string }
	r.JSON(&started)
	if started.JobID == "" {
		t.Fatalf("a replay of 151 events started no job: %d %s", r.Status, r.Body)
	}

	pages := []struct{ name, path, ready string }{
		{"subscriptions", "/subscriptions", "#new-subscription"},
		{"new subscription", "/subscriptions/new", "#subscription-form"},
		{"subscription", "/subscriptions/" + good.ID, "#edit-form"},
		{"disabled subscription", "/subscriptions/" + disabled.ID, "#disabled-banner"},
		{"failing subscription", "/subscriptions/" + bad.ID, "#failing-banner"},
		{"paused subscription", "/subscriptions/" + paused.ID, "#resume"},
		{"signing secret", "/subscriptions/" + good.ID + "/secret", "#secret"},
		{"deliveries", "/subscriptions/" + good.ID + "/deliveries", "#deliveries"},
		{"failed deliveries", "/subscriptions/" + bad.ID + "/deliveries", "#deliveries"},
		{"skipped deliveries", "/subscriptions/" + paused.ID + "/deliveries", "#deliveries"},
		{"event types", "/event-types", "#event-types"},
		{"events", "/events", "#events"},
		{"event", "/events/" + evt, "#event-data"},
		{"jobs", "/jobs", "#jobs"},
		{"job", "/jobs/" + started.JobID, "#job"},
		{"usage and limits", "/usage", "#limits"},
		{"not found", "/subscriptions/sub_nope", "#problem"},
	}
	for _, p := range pages {
		tb.do(p.name, chromedp.Navigate(base+p.path), shown(p.ready))
		tb.accessible(p.name)
	}
	// A delivery's own page, and the form with the API's errors beside
	// its fields.
	tb.do("a failed delivery", chromedp.Navigate(base+"/subscriptions/"+bad.ID+"/deliveries?status=failed"), shown("article.delivery"))
	dlv := tb.eval(`document.querySelector("article.delivery").id`)
	tb.do("the delivery", chromedp.Navigate(base+"/deliveries/"+dlv), shown("#"+dlv))
	tb.accessible("delivery")
	tb.do("a form with errors",
		chromedp.Navigate(base+"/subscriptions/new"),
		shown("#subscription-form"),
		chromedp.SetValue(chromedp.CSS("#url"), "ftp://example.com/hook"),
		chromedp.SetValue(chromedp.CSS("#filter"), "data.n >"),
		chromedp.Click(chromedp.CSS("#create")),
		shown("#url-error"))
	tb.accessible("form with errors")

	// The page past the budget, as a tenant of 2 requests a minute.
	small, _ := env.CreateTenant("small", 2)
	tb.do("sign in as small", chromedp.Navigate(link(t, env, small.ID)), shown("#new-subscription"))
	tb.until("the budget spent", base+"/event-types", `document.getElementById("limited")`)
	tb.accessible("rate limited")
}
