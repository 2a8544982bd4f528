package portal_test

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/onestack/webhooks/testenv"
)

// TestPortalSettingsInABrowser sets a subscription's filter (seeing the
// API's compile error at the field first), custom headers, FIFO, pace and
// v1a signatures in the form; finds its events by type and by id; follows
// a replay's job to its end; recovers; and reads usage and limits.
func TestPortalSettingsInABrowser(t *testing.T) {
	t.Parallel()
	tb := newTab(t)
	env := testenv.Start(t, testenv.Options{})
	ten, _ := env.CreateTenant("acme", 100000)
	rc := testenv.NewReceiver()
	defer rc.Close()
	base := env.URL() + "/portal"
	tb.do("sign in", chromedp.Navigate(link(t, env, ten.ID)), shown("#new-subscription"))

	// A filter that does not compile: the API's reason beside the field.
	tb.do("a bad filter",
		chromedp.Navigate(base+"/subscriptions/new"),
		shown("#subscription-form"),
		chromedp.SetValue(chromedp.CSS("#url"), rc.URL()+"/hook"),
		chromedp.Click(chromedp.CSS(`input[name="eventTypes"][value="ticket.updated"]`)),
		chromedp.SetValue(chromedp.CSS("#filter"), `data.priority ==`),
		chromedp.SetValue(chromedp.CSS("#headers"), "X-Team: ops-value-1234"),
		chromedp.Click(chromedp.CSS("#create")),
		shown("#filter-error"))
	if msg := tb.text("#filter-error"); msg == "" {
		t.Errorf("no reason beside the filter")
	}
	if got := tb.eval(`document.getElementById("filter").getAttribute("aria-invalid")`); got != "true" {
		t.Errorf("the filter field's aria-invalid = %q", got)
	}
	if got := tb.eval(`document.getElementById("headers").value`); got != "X-Team: ops-value-1234" {
		t.Errorf("the headers field after the error = %q, want what was typed", got)
	}

	// Fixed: created with every setting, signed with Ed25519.
	tb.do("create",
		chromedp.SetValue(chromedp.CSS("#filter"), `data.priority == "high"`),
		chromedp.SetValue(chromedp.CSS("#ordering"), "fifo"),
		chromedp.SetValue(chromedp.CSS("#rateLimit"), "50"),
		chromedp.SetValue(chromedp.CSS("#signatureScheme"), "v1a"),
		chromedp.Click(chromedp.CSS("#create")),
		shown("#secret"))
	if key := tb.text("#secret"); !strings.HasPrefix(key, "whpk_") {
		t.Fatalf("key shown after creating a v1a subscription = %q, want its public key", key)
	}
	r, _ := env.Do("GET", "/api/subscriptions", ten.APIKey, nil)
	var list struct {
		Data []struct {
			ID, Ordering, SignatureScheme string
			Filter                        *string
			HeaderNames                   []string
			RateLimit                     *float64
		}
	}
	r.JSON(&list)
	if len(list.Data) != 1 {
		t.Fatalf("the API lists %s", r.Body)
	}
	s := list.Data[0]
	if s.Filter == nil || *s.Filter != `data.priority == "high"` || s.Ordering != "fifo" || s.SignatureScheme != "v1a" ||
		s.RateLimit == nil || *s.RateLimit != 50 || len(s.HeaderNames) != 1 || s.HeaderNames[0] != "X-Team" {
		t.Errorf("the API shows %s", r.Body)
	}

	// The subscription's page shows the header's name, never its value.
	tb.do("the subscription", chromedp.Navigate(base+"/subscriptions/"+s.ID), shown("#edit-form"))
	if got := tb.text("#headers-shown"); !strings.Contains(got, "X-Team") {
		t.Errorf("headers shown = %q", got)
	}
	if strings.Contains(tb.eval(`document.documentElement.outerHTML`), "ops-value-1234") {
		t.Errorf("the page holds a header's value")
	}
	if got := tb.text("#scheme-shown"); !strings.Contains(got, "v1a") {
		t.Errorf("signature shown = %q", got)
	}

	// Deliveries carry the header; only high priority passes the filter.
	ids := map[string]string{}
	for _, p := range []string{"low", "high"} {
		ids[p], _ = env.Publish(ten, "ticket.updated", map[string]string{"priority": p})
	}
	got := rc.WaitFor(1, 30*time.Second)
	if len(got) != 1 || got[0].ID != ids["high"] || got[0].Header.Get("X-Team") != "ops-value-1234" {
		t.Fatalf("receiver got %d webhooks (%+v), want the high one with its header", len(got), got)
	}

	// Remove the headers in the form.
	tb.submit("remove the headers", chromedp.Click(chromedp.CSS("#removeHeaders")), chromedp.Click(chromedp.CSS("#save")), shown("#flash"))
	r, _ = env.Do("GET", "/api/subscriptions/"+s.ID, ten.APIKey, nil)
	if strings.Contains(string(r.Body), "X-Team") || !strings.Contains(string(r.Body), `"ordering":"fifo"`) {
		t.Errorf("after removing the headers the API shows %s", r.Body)
	}

	// Events by type, and one by id with the delivery it made.
	tb.do("list ticket.updated", chromedp.Navigate(base+"/events"), shown("#event-search"),
		chromedp.SetValue(chromedp.CSS("#type"), "ticket.updated"), chromedp.Click(chromedp.CSS("#search")),
		chromedp.WaitReady(chromedp.CSS(`#type option[value="ticket.updated"][selected]`)))
	if n := tb.eval(`String(document.querySelectorAll("#events tbody tr").length)`); n != "2" {
		t.Errorf("events of ticket.updated listed: %s, want 2", n)
	}
	tb.do("list account.created", chromedp.SetValue(chromedp.CSS("#type"), "account.created"), chromedp.Click(chromedp.CSS("#search")),
		chromedp.WaitReady(chromedp.CSS(`#type option[value="account.created"][selected]`)), shown("#no-events"))
	tb.do("look up the high one", chromedp.SetValue(chromedp.CSS("#event-id"), ids["high"]), chromedp.Click(chromedp.CSS("#lookup")), shown("#event-data"))
	if got := tb.text("#event-id-shown"); got != ids["high"] {
		t.Errorf("event page shows %q, want %s", got, ids["high"])
	}
	tb.until("its delivery succeeded", base+"/events/"+ids["high"], `document.querySelector('article.delivery[data-status="succeeded"]')`)
	if strings.Contains(tb.text("#event-data"), "high") == false {
		t.Errorf("event data shown = %q", tb.text("#event-data"))
	}

	// 150 more high events: a replay of the hour is a job, followed to
	// its end on the job's page.
	evts := make([]map[string]any, 100)
	for i := range evts {
		evts[i] = map[string]any{"type": "ticket.updated", "data": map[string]string{"priority": "high"}}
	}
	for range 2 {
		if r, err := env.Do("POST", "/api/events/batch", ten.APIKey, map[string]any{"events": evts}); err != nil || r.Status != 202 {
			t.Fatalf("publish: %v %s", err, r.Body)
		}
	}
	// A datetime-local input drops ":00" seconds from the value it is
	// given, and chromedp's SetValue then fails, reading back another
	// string: a second of 01 keeps the value as written.
	since := time.Now().UTC().Add(-time.Hour).Truncate(time.Minute).Add(time.Second).Format("2006-01-02T15:04:05")
	tb.do("replay", chromedp.Navigate(base+"/subscriptions/"+s.ID+"/deliveries"), shown("#replay-form"),
		chromedp.SetValue(chromedp.CSS("#since"), since), chromedp.Click(chromedp.CSS("#replay")), shown("#job"))
	loc, _ := chromedp.Run(tb.ctx, chromedp.Location())
	job := regexp.MustCompile(`/portal/jobs/([A-Za-z0-9_-]+)$`).FindStringSubmatch(loc)
	if job == nil {
		t.Fatalf("after a replay of 202 events the page is %s, want the job's", loc)
	}
	tb.until("the job finished", loc, `document.getElementById("job").dataset.status === "done"`)
	if got := tb.text("#job-sent"); !strings.HasPrefix(got, "201 of 202 (1 left out by the filter)") {
		t.Errorf("job's progress = %q, want 201 of 202 (the low one is left out by the filter)", got)
	}
	tb.do("the jobs", chromedp.Navigate(base+"/jobs"), shown("#jobs"))
	if got := tb.eval(`Array.from(document.querySelectorAll("#jobs tbody tr")).map(r => r.dataset.id).join(" ")`); got != job[1] {
		t.Errorf("jobs listed: %q, want %s", got, job[1])
	}
	tb.do("the job by id", chromedp.Navigate(base+"/jobs"), shown("#job-lookup"),
		chromedp.SetValue(chromedp.CSS("#job-id"), job[1]), chromedp.Click(chromedp.CSS("#lookup")), shown("#job-progress"))
	if v := tb.eval(`String(document.getElementById("job-progress").value)`); v != "100" {
		t.Errorf("progress of the finished job = %s", v)
	}

	// Recover: nothing failed in the hour.
	tb.do("recover", chromedp.Navigate(base+"/subscriptions/"+s.ID+"/deliveries"), shown("#recover-form"),
		chromedp.SetValue(chromedp.CSS("#recover-since"), since), chromedp.Click(chromedp.CSS("#recover")), shown("#flash"))
	if got := tb.text("#flash"); !strings.Contains(got, "0 deliveries") {
		t.Errorf("after recovering the page says %q", got)
	}

	// Usage and limits.
	tb.do("usage", chromedp.Navigate(base+"/usage"), shown("#limits"))
	if got := tb.text(`#limit-subscriptions [data-role="used"]`); got != "1" {
		t.Errorf("subscriptions used = %q, want 1", got)
	}
	if got := tb.text(`#limit-requestsPerMinute [data-role="max"]`); got != "100000" {
		t.Errorf("requests a minute = %q, want 100000", got)
	}
}

// TestPortalAuthAndTraceparentInABrowser sets OAuth2 endpoint
// authentication and turns traceparent off in the form; the client
// secret is never written back into a page, and attempts show their
// trace id.
func TestPortalAuthAndTraceparentInABrowser(t *testing.T) {
	t.Parallel()
	env := testenv.Start(t, testenv.Options{})
	tb := newTab(t)
	ten, _ := env.CreateTenant("acme", 100000)
	rc := testenv.NewReceiver()
	defer rc.Close()
	sub, err := env.Subscribe(ten, rc.URL()+"/h", "ticket.*")
	if err != nil {
		t.Fatal(err)
	}
	base := env.URL() + "/portal"
	tb.do("sign in", chromedp.Navigate(link(t, env, ten.ID)), shown("#new-subscription"))

	// Attempts show their trace id, which the receiver got in traceparent.
	id, _ := env.Publish(ten, "ticket.updated", map[string]string{"n": "1"})
	got := rc.WaitFor(1, 30*time.Second)
	if len(got) != 1 || got[0].ID != id {
		t.Fatalf("receiver got %+v", got)
	}
	parts := strings.Split(got[0].Header.Get("traceparent"), "-")
	if len(parts) != 4 {
		t.Fatalf("traceparent = %q", got[0].Header.Get("traceparent"))
	}
	tb.until("the attempt's trace id", base+"/subscriptions/"+sub.ID+"/deliveries", `document.querySelector('[data-role="trace-id"]')`)
	if shown := tb.text(`[data-role="trace-id"]`); shown != parts[1] {
		t.Errorf("trace id shown = %q, want the traceparent's %q", shown, parts[1])
	}

	// OAuth2, and traceparent off.
	tb.do("set OAuth2",
		chromedp.Navigate(base+"/subscriptions/"+sub.ID),
		shown("#edit-form"),
		chromedp.Click(chromedp.CSS("#auth-oauth2")),
		shown("#oauth2TokenUrl"),
		chromedp.SetValue(chromedp.CSS("#oauth2TokenUrl"), "https://idp.example.com/token"),
		chromedp.SetValue(chromedp.CSS("#oauth2ClientId"), "portal-client"),
		chromedp.SetValue(chromedp.CSS("#oauth2ClientSecret"), "client-secret-5678"),
		chromedp.SetValue(chromedp.CSS("#oauth2Scopes"), "hooks:write"),
		chromedp.Click(chromedp.CSS("#sendTraceparent")),
		chromedp.Click(chromedp.CSS("#save")),
		shown("#flash"))
	r, _ := env.Do("GET", "/api/subscriptions/"+sub.ID, ten.APIKey, nil)
	var s struct {
		SendTraceparent *bool
		Auth            *struct{ Type, TokenURL, ClientID string }
	}
	json.Unmarshal(r.Body, &s)
	if s.SendTraceparent == nil || *s.SendTraceparent || s.Auth == nil || s.Auth.Type != "oauth2" || s.Auth.ClientID != "portal-client" {
		t.Errorf("after the form the API shows %s", r.Body)
	}
	if got := tb.text("#auth-shown"); !strings.Contains(got, "portal-client") {
		t.Errorf("authentication shown = %q", got)
	}
	if strings.Contains(tb.eval(`document.documentElement.outerHTML`), "client-secret-5678") {
		t.Errorf("the page holds the client secret")
	}
	if got := tb.text("#traceparent-shown"); got != "off" {
		t.Errorf("traceparent shown = %q", got)
	}
	// Keep it as it is on the next save; then remove it.
	tb.submit("save keeping auth", chromedp.SetValue(chromedp.CSS("#description"), "kept"), chromedp.Click(chromedp.CSS("#save")), shown("#flash"))
	if r, _ := env.Do("GET", "/api/subscriptions/"+sub.ID, ten.APIKey, nil); !strings.Contains(string(r.Body), "portal-client") {
		t.Errorf("a save that keeps auth lost it: %s", r.Body)
	}
	tb.submit("remove auth", chromedp.Click(chromedp.CSS("#auth-none")), chromedp.Click(chromedp.CSS("#save")), shown("#flash"))
	if r, _ := env.Do("GET", "/api/subscriptions/"+sub.ID, ten.APIKey, nil); strings.Contains(string(r.Body), "portal-client") {
		t.Errorf("auth none left it: %s", r.Body)
	}
}
