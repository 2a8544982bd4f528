package portal_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/onestack/webhooks/internal/poll"
	"github.com/onestack/webhooks/server"
	"github.com/onestack/webhooks/testenv"
)

// visitor is a browser without JavaScript: a cookie jar and forms.
type visitor struct {
	t    *testing.T
	base string
	c    *http.Client
}

func newVisitor(t *testing.T, base string) *visitor {
	jar, _ := cookiejar.New(nil)
	return &visitor{t: t, base: base, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// do sends a request and returns the answer with its body read.
func (v *visitor) do(method, path string, form url.Values, header ...string) (*http.Response, string) {
	v.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	u := path
	if !strings.HasPrefix(path, "http") {
		u = v.base + path
	}
	req, _ := http.NewRequest(method, u, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := v.c.Do(req)
	if err != nil {
		v.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrf reads the CSRF token from a page.
func (v *visitor) csrf(page string) string {
	v.t.Helper()
	m := csrfField.FindStringSubmatch(page)
	if m == nil {
		v.t.Fatalf("no CSRF token in the page: %.300s", page)
	}
	return m[1]
}

// link mints a portal link for a tenant through the operator API.
func link(t *testing.T, env *testenv.Env, tenant string) string {
	t.Helper()
	r, err := env.Do("POST", "/admin/tenants/"+tenant+"/portal-sessions", env.AdminToken, nil)
	if err != nil || r.Status != 201 {
		t.Fatalf("mint link: %v %d %s", err, r.Status, r.Body)
	}
	var l struct {
		URL       string
		ExpiresAt time.Time
	}
	r.JSON(&l)
	if d := time.Until(l.ExpiresAt); d < 9*time.Minute || d > 10*time.Minute+time.Second {
		t.Errorf("link expires in %v, want 10 minutes", d)
	}
	return l.URL
}

// signIn opens a link and returns the signed-in visitor.
func signIn(t *testing.T, env *testenv.Env, tenant string) *visitor {
	t.Helper()
	v := newVisitor(t, env.URL())
	if resp, page := v.do("GET", link(t, env, tenant), nil); resp.StatusCode != 200 || !strings.Contains(page, "Signed in") {
		t.Fatalf("open link = %d %.300s", resp.StatusCode, page)
	}
	return v
}

func TestLinkOpensOneSessionUnderConcurrency(t *testing.T) {
	t.Parallel()
	env := testenv.Start(t, testenv.Options{})
	ten, _ := env.CreateTenant("acme", 0)
	u := link(t, env, ten.ID)
	var mu sync.Mutex
	codes := map[int]int{}
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			v := newVisitor(t, env.URL())
			resp, _ := v.do("GET", u, nil)
			mu.Lock()
			codes[resp.StatusCode]++
			mu.Unlock()
		})
	}
	wg.Wait()
	if codes[200] != 1 || codes[403] != 9 {
		t.Errorf("10 concurrent opens of one link = %v, want one 200 and nine 403", codes)
	}
	if r, _ := env.Do("POST", "/admin/tenants/ten_nope/portal-sessions", env.AdminToken, nil); r.Status != 404 {
		t.Errorf("a link for an unknown tenant = %d, want 404", r.Status)
	}
}

func TestSessionCookieCSRFAndSignOut(t *testing.T) {
	t.Parallel()
	env := testenv.Start(t, testenv.Options{})
	ten, _ := env.CreateTenant("acme", 0)
	v := newVisitor(t, env.URL())
	resp, _ := v.do("GET", link(t, env, ten.ID), nil)
	var session *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "portal_session" {
			session = c
		}
	}
	if session == nil || !session.HttpOnly || session.SameSite != http.SameSiteStrictMode || session.Path != "/portal/" || session.MaxAge != 3600 || session.Secure {
		t.Fatalf("session cookie = %+v, want HttpOnly, SameSite=Strict, Path=/portal/, Max-Age 3600, not Secure over http", session)
	}
	for name, want := range map[string]string{
		"Content-Security-Policy": "script-src 'self'", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer", "Cache-Control": "no-store",
	} {
		if got := resp.Header.Get(name); !strings.Contains(got, want) {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	resp, page := v.do("GET", "/portal/subscriptions/new", nil)
	if resp.StatusCode != 200 || strings.Contains(page, "style=") || strings.Contains(page, "<script>") {
		t.Fatalf("new subscription page = %d (inline style or script?)", resp.StatusCode)
	}
	token := v.csrf(page)
	form := url.Values{"url": {"http://127.0.0.1:9/h"}, "eventTypes": {"ticket.updated"}, "idem": {"k1"}, "active": {"true"}}
	// Without the token, with a wrong one, or from another site: refused.
	for name, tc := range map[string]struct {
		token  string
		header []string
	}{"no token": {"", nil}, "wrong token": {"x" + token, nil}, "cross-site": {token, []string{"Sec-Fetch-Site", "cross-site"}}, "foreign origin": {token, []string{"Origin", "https://evil.example"}}} {
		f := url.Values{}
		for k, vs := range form {
			f[k] = vs
		}
		if tc.token != "" {
			f.Set("csrf", tc.token)
		}
		if resp, _ := v.do("POST", "/portal/subscriptions", f, tc.header...); resp.StatusCode != 403 {
			t.Errorf("%s: create = %d, want 403", name, resp.StatusCode)
		}
	}
	if r, _ := env.Do("GET", "/api/subscriptions", ten.APIKey, nil); strings.Contains(string(r.Body), "sub_") {
		t.Fatalf("a refused form created a subscription: %s", r.Body)
	}
	// The htmx header carries the token too.
	form.Set("idem", "k2")
	if resp, page := v.do("POST", "/portal/subscriptions", form, "X-CSRF-Token", token); resp.StatusCode != 201 || !strings.Contains(page, "whsec_") {
		t.Fatalf("create with the token = %d %.300s", resp.StatusCode, page)
	}
	// Sign out ends the session on the server, not only in the browser.
	if resp, _ := v.do("POST", "/portal/logout", url.Values{"csrf": {token}}); resp.StatusCode != 303 || !strings.HasPrefix(resp.Header.Get("Location"), "/portal/login") {
		t.Fatalf("sign out = %d → %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	replay := newVisitor(t, env.URL())
	u, _ := url.Parse(env.URL() + "/portal/")
	replay.c.Jar.SetCookies(u, []*http.Cookie{{Name: "portal_session", Value: session.Value}})
	if resp, _ := replay.do("GET", "/portal/subscriptions", nil); resp.StatusCode != 303 || !strings.HasPrefix(resp.Header.Get("Location"), "/portal/login") {
		t.Errorf("the signed-out cookie replayed = %d → %q, want a redirect to sign in", resp.StatusCode, resp.Header.Get("Location"))
	}
}

func TestSecureCookieAndLinkBaseFromPublicURL(t *testing.T) {
	t.Parallel()
	env := testenv.Start(t, testenv.Options{Server: func(c *server.Config) { c.PublicURL = "https://hooks.example.com" }})
	ten, _ := env.CreateTenant("acme", 0)
	l := link(t, env, ten.ID)
	if !strings.HasPrefix(l, "https://hooks.example.com/portal/login?token=") {
		t.Fatalf("link = %q, want it on the public URL", l)
	}
	v := newVisitor(t, env.URL())
	resp, _ := v.do("GET", strings.Replace(l, "https://hooks.example.com", env.URL(), 1), nil)
	var session *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "__Host-portal_session" {
			session = c
		}
	}
	if resp.StatusCode != 200 || session == nil || !session.Secure || session.Path != "/" || !session.HttpOnly {
		t.Errorf("over https: %d, cookie %+v; want __Host-portal_session, Secure, Path=/", resp.StatusCode, session)
	}
}

func TestRevocationEndsPortalSessions(t *testing.T) {
	t.Parallel()
	env := testenv.Start(t, testenv.Options{})
	ten, _ := env.CreateTenant("acme", 0)
	r, _ := env.Do("POST", "/admin/tenants/"+ten.ID+"/keys", env.AdminToken, nil)
	var second struct{ ID, Key string }
	r.JSON(&second)

	// Sign in with the second key, through the form.
	byKey := newVisitor(t, env.URL())
	_, page := byKey.do("GET", "/portal/login", nil)
	if resp, _ := byKey.do("POST", "/portal/login", url.Values{"csrf": {byKey.csrf(page)}, "apiKey": {"sk_wrong"}}); resp.StatusCode != 401 {
		t.Errorf("sign in with a wrong key = %d, want 401", resp.StatusCode)
	}
	_, page = byKey.do("GET", "/portal/login", nil)
	if resp, _ := byKey.do("POST", "/portal/login", url.Values{"csrf": {byKey.csrf(page)}, "apiKey": {second.Key}}); resp.StatusCode != 303 {
		t.Fatalf("sign in with the key = %d", resp.StatusCode)
	}
	byLink := signIn(t, env, ten.ID)
	for _, v := range []*visitor{byKey, byLink} {
		if resp, _ := v.do("GET", "/portal/subscriptions", nil); resp.StatusCode != 200 {
			t.Fatalf("signed in: %d", resp.StatusCode)
		}
	}
	// Revoking the key ends the session it signed in; the link's lives on.
	env.Do("DELETE", "/admin/tenants/"+ten.ID+"/keys/"+second.ID, env.AdminToken, nil)
	if resp, _ := byKey.do("GET", "/portal/subscriptions", nil); resp.StatusCode != 303 {
		t.Errorf("after revoking its key: %d, want a redirect to sign in", resp.StatusCode)
	}
	if resp, _ := byLink.do("GET", "/portal/subscriptions", nil); resp.StatusCode != 200 {
		t.Errorf("the link's session after revoking a key: %d, want 200", resp.StatusCode)
	}
	// Ending the tenant's portal sessions signs the link's out too.
	r, _ = env.Do("DELETE", "/admin/tenants/"+ten.ID+"/portal-sessions", env.AdminToken, nil)
	if r.Status != 200 || !strings.Contains(string(r.Body), `"ended":1`) {
		t.Errorf("end sessions = %d %s, want 1 ended", r.Status, r.Body)
	}
	if resp, _ := byLink.do("GET", "/portal/subscriptions", nil); resp.StatusCode != 303 {
		t.Errorf("after ending the tenant's sessions: %d, want a redirect to sign in", resp.StatusCode)
	}
}

// TestPortalSpendsTheAPIBudget: pages spend the tenant's budget like API
// requests and show what is left; the usage page (GET /api/limits) is one
// request like any other; past the budget the page says when to try
// again, with the API's Retry-After.
func TestPortalSpendsTheAPIBudget(t *testing.T) {
	t.Parallel()
	at := time.Now()
	env := testenv.Start(t, testenv.Options{Server: func(c *server.Config) { c.Clock = func() time.Time { return at } }})
	ten, _ := env.CreateTenant("small", 4)
	v := signIn(t, env, ten.ID)
	_, page := v.do("GET", "/portal/subscriptions", nil)
	if !strings.Contains(page, "3/4 requests left") {
		t.Errorf("the first page does not show 3 of 4 left: %.2000s", page)
	}
	_, page = v.do("GET", "/portal/usage", nil) // counted: 2 left
	if !strings.Contains(page, `id="budget-remaining">2<`) {
		t.Errorf("budget page after two counted pages: %.3000s", page)
	}
	if r, _ := env.Do("GET", "/api/subscriptions", ten.APIKey, nil); r.Header.Get("X-RateLimit-Remaining") != "1" {
		t.Errorf("the API sees %q left, want the portal's requests counted (1)", r.Header.Get("X-RateLimit-Remaining"))
	}
	v.do("GET", "/portal/subscriptions", nil) // the last unit
	resp, page := v.do("GET", "/portal/subscriptions", nil)
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" || !strings.Contains(page, "Try again in") || !strings.Contains(page, "of 4 requests a minute") {
		t.Errorf("past the budget: %d, Retry-After %q, page %.2000s", resp.StatusCode, resp.Header.Get("Retry-After"), page)
	}
	token := v.csrf(page)
	resp, page = v.do("POST", "/portal/subscriptions", url.Values{"csrf": {token}, "url": {"http://127.0.0.1:9/h"}, "eventTypes": {"ticket.updated"}, "idem": {"z"}})
	if resp.StatusCode != 429 || !strings.Contains(page, "nothing was changed") {
		t.Errorf("a form past the budget = %d", resp.StatusCode)
	}
}

// TestFormErrorsAndIsolationAreTheAPIs: a bad form comes back with the
// API's own field errors beside the fields, and another tenant's id is a
// not-found page, as in the API.
func TestFormErrorsAndIsolationAreTheAPIs(t *testing.T) {
	t.Parallel()
	env := testenv.Start(t, testenv.Options{Strict: true})
	ten, _ := env.CreateTenant("acme", 0)
	other, _ := env.CreateTenant("other", 0)
	theirs, err := env.Subscribe(other, "https://example.com/theirs", "ticket.*")
	if err != nil {
		t.Fatal(err)
	}
	bad := map[string]any{"url": "http://127.0.0.1/x", "eventTypes": []string{"ticket.nope"}}
	r, _ := env.Do("POST", "/api/subscriptions", ten.APIKey, bad)
	var apiErr struct {
		Details struct {
			Fields []struct{ Field, Reason string }
		}
	}
	json.Unmarshal(r.Body, &apiErr)
	if len(apiErr.Details.Fields) != 2 {
		t.Fatalf("API field errors = %s", r.Body)
	}
	v := signIn(t, env, ten.ID)
	_, page := v.do("GET", "/portal/subscriptions/new", nil)
	resp, page := v.do("POST", "/portal/subscriptions", url.Values{"csrf": {v.csrf(page)}, "url": {"http://127.0.0.1/x"}, "patterns": {"ticket.nope"}, "idem": {"a"}})
	if resp.StatusCode != 422 {
		t.Errorf("bad form = %d, want 422", resp.StatusCode)
	}
	for _, fe := range apiErr.Details.Fields {
		id := strings.SplitN(fe.Field, "[", 2)[0] + "-error"
		m := regexp.MustCompile(`id="` + id + `">([^<]*)<`).FindStringSubmatch(page)
		if m == nil || !strings.Contains(m[1], htmlEscape(fe.Reason)) {
			t.Errorf("field %s: the page shows %q beside it, want the API's %q", fe.Field, m, fe.Reason)
		}
	}
	for _, path := range []string{"/portal/subscriptions/" + theirs.ID, "/portal/subscriptions/" + theirs.ID + "/deliveries", "/portal/subscriptions/" + theirs.ID + "/secret"} {
		resp, page := v.do("GET", path, nil)
		if resp.StatusCode != 404 || strings.Contains(page, "example.com/theirs") || strings.Contains(page, "whsec_") {
			t.Errorf("%s as another tenant = %d, want a 404 page showing nothing of theirs", path, resp.StatusCode)
		}
	}
	resp, _ = v.do("POST", "/portal/subscriptions/"+theirs.ID+"/delete", url.Values{"csrf": {v.csrf(page)}})
	if resp.StatusCode != 404 {
		t.Errorf("deleting another tenant's subscription = %d, want 404", resp.StatusCode)
	}
	if r, _ := env.Do("GET", "/api/subscriptions/"+theirs.ID, other.APIKey, nil); r.Status != 200 {
		t.Errorf("their subscription after the attempt = %d", r.Status)
	}
}

func htmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&#34;", "'", "&#39;").Replace(s)
}

// TestSubscriptionPageShowsBacklog: the deliveries waiting behind a
// subscription's pace are counted on its page, linked to their list.
func TestSubscriptionPageShowsBacklog(t *testing.T) {
	t.Parallel()
	env := testenv.Start(t, testenv.Options{})
	ten, _ := env.CreateTenant("acme", 0)
	rc := testenv.NewReceiver()
	t.Cleanup(rc.Close)
	r, err := env.Do("POST", "/api/subscriptions", ten.APIKey, map[string]any{"url": rc.URL(), "eventTypes": []string{"ticket.*"}, "rateLimit": 0.01})
	if err != nil || r.Status != 201 {
		t.Fatalf("create a paced subscription: %v %v", r, err)
	}
	var sub struct{ ID string }
	json.Unmarshal(r.Body, &sub)
	evts := []map[string]any{}
	for i := range 4 {
		evts = append(evts, map[string]any{"type": "ticket.updated", "data": map[string]any{"n": i}})
	}
	if r, err := env.Do("POST", "/api/events/batch", ten.APIKey, map[string]any{"events": evts}); err != nil || r.Status != 202 {
		t.Fatalf("publish: %v %v", r, err)
	}
	v := signIn(t, env, ten.ID)
	backlog := regexp.MustCompile(`id="backlog">(\d+) waiting`)
	var page string
	if !poll.Within(30*time.Second, func() bool {
		_, page = v.do("GET", "/portal/subscriptions/"+sub.ID, nil)
		m := backlog.FindStringSubmatch(page)
		return m != nil && m[1] == "3"
	}) {
		r1, _ := env.Do("GET", "/api/subscriptions/"+sub.ID+"/deliveries", ten.APIKey, nil)
		r2, _ := env.Do("GET", "/api/subscriptions/"+sub.ID, ten.APIKey, nil)
		t.Fatalf("the page does not count the 3 deliveries waiting behind the pace:\n%s\n%s\n%s", page, r1.Body, r2.Body)
	}
	if !strings.Contains(page, "/portal/subscriptions/"+sub.ID+"/deliveries?status=pending") {
		t.Error("the backlog does not link to the pending deliveries")
	}
}
