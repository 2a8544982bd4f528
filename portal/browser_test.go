package portal_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/onestack/webhooks/internal/poll"
	"github.com/onestack/webhooks/testenv"
)

// The browser tests drive the portal in headless Chromium. They need
// Debian's chromium-headless-shell (or any Chromium named by CHROME_BIN).
// Locally they skip when none is found; in CI (CI=true) a missing browser
// fails them, and .ci/run installs it first.

// installHint is the command that brings the browser.
const installHint = "apt-get install -y chromium-headless-shell"

func chromePath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("CHROME_BIN"); p != "" {
		return p
	}
	for _, name := range []string{"chromium-headless-shell", "chromium", "chromium-browser", "headless_shell", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("no headless Chromium found in CI: .ci/run must install it (%s)", installHint)
	}
	t.Skipf("no headless Chromium found: install it with `%s` (or set CHROME_BIN) to run the browser tests", installHint)
	return ""
}

// tab is one browser tab for one test: its own Chromium with a fresh
// profile, and a record of every script error and Content-Security-Policy
// violation the pages caused.
type tab struct {
	t   *testing.T
	ctx context.Context

	mu       sync.Mutex
	problems []string
}

func newTab(t *testing.T) *tab {
	t.Helper()
	path := chromePath(t)
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox, // the tests run as root in CI
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 5*time.Minute) // a hang, not a slow machine
	t.Cleanup(func() { cancelTimeout(); cancelTab(); cancelAlloc() })
	tb := &tab{t: t, ctx: ctx}
	messages := chromedp.Console(ctx)
	dialogs := chromedp.Events(ctx, page.JavascriptDialogOpening)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.IsException() || m.Source == "security" || strings.Contains(m.Text, "Content Security Policy") {
				tb.mu.Lock()
				tb.problems = append(tb.problems, m.String())
				tb.mu.Unlock()
			}
		}
	}()
	// hx-confirm asks before a rotation or a deletion: accept.
	go func() {
		for _, err := range dialogs {
			if err != nil {
				return
			}
			chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true})
		}
	}()
	t.Cleanup(func() {
		tb.mu.Lock()
		defer tb.mu.Unlock()
		for _, p := range tb.problems {
			t.Errorf("browser console: %s", p)
		}
	})
	return tb
}

// shown waits until the current page shows an element matching the CSS
// selector sel. Each look is a fresh query of whatever document the tab
// holds, so a click that navigates cannot leave it watching the page it
// left (chromedp's WaitVisible can hold on to the old document's node
// and wait out its bound under load).
func shown(sel string) chromedp.Action[chromedp.Void] {
	js := fmt.Sprintf(`(() => { const e = document.querySelector(%q); return !!e && e.getClientRects().length > 0 && getComputedStyle(e).visibility !== "hidden"; })()`, sel)
	look := chromedp.Evaluate[bool](js)
	return func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		for {
			// A look made while the page navigates can fail or wait for
			// the new document: bound it, and look again.
			lookCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
			ok, err := look(lookCtx, t)
			cancel()
			if err == nil && ok {
				return chromedp.Void{}, nil
			}
			select {
			case <-ctx.Done():
				return chromedp.Void{}, fmt.Errorf("waiting for %s to be shown: %w", sel, ctx.Err())
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
}

// do runs actions, failing the test with what the page shows.
func (tb *tab) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	// A step's own bound, well inside the tab's, leaves the tab alive to
	// say what the page shows when a step hangs.
	ctx, cancel := context.WithTimeout(tb.ctx, 90*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		body, _ := chromedp.Run(tb.ctx, chromedp.Evaluate[string]("document.body ? document.body.innerText : ''"))
		loc, _ := chromedp.Run(tb.ctx, chromedp.Location())
		tb.t.Fatalf("%s: %v\n  at %s:\n%.1500s", what, err, loc, body)
	}
}

// submit is do for actions that post a form from a page that may already
// show a flash: the old flash is removed first, so that waiting for
// #flash waits for the answer's page, not the page the form was on.
func (tb *tab) submit(what string, actions ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	tb.eval(`(document.getElementById("flash")?.remove(), "")`)
	tb.do(what, actions...)
}

func (tb *tab) text(sel string) string {
	tb.t.Helper()
	s, err := chromedp.Run(tb.ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		tb.t.Fatalf("text of %s: %v", sel, err)
	}
	return s
}

func (tb *tab) eval(js string) string {
	tb.t.Helper()
	s, err := chromedp.Run(tb.ctx, chromedp.Evaluate[string](js))
	if err != nil {
		tb.t.Fatalf("evaluate %s: %v", js, err)
	}
	return s
}

// until reloads url until the page's JS expression is true.
func (tb *tab) until(what, url, js string) {
	tb.t.Helper()
	if !poll.Within(60*time.Second, func() bool {
		tb.do("load "+url, chromedp.Navigate(url), shown("main"))
		return tb.eval("String(!!("+js+"))") == "true"
	}) {
		tb.t.Fatalf("%s: not seen within 60 s on %s:\n%.2000s", what, url, tb.eval("document.body.innerText"))
	}
}

// TestPortalInABrowser walks a tenant through the portal: sign in with a
// minted link, see a field error, create a subscription, watch a delivery
// arrive, make the endpoint fail and retry from the page, rotate the
// secret, try another tenant's subscription, and sign out.
func TestPortalInABrowser(t *testing.T) {
	t.Parallel()
	tb := newTab(t)
	env := testenv.Start(t, testenv.Options{})
	ten, _ := env.CreateTenant("acme", 0)
	other, _ := env.CreateTenant("other", 0)
	theirs, err := env.Subscribe(other, "http://127.0.0.1:9/theirs", "ticket.*")
	if err != nil {
		t.Fatal(err)
	}
	rc := testenv.NewReceiver()
	defer rc.Close()

	// Sign in through the link: the page moves on to the subscriptions.
	tb.do("open the link", chromedp.Navigate(link(t, env, ten.ID)), shown("#new-subscription"))
	if got := tb.text(".tenant"); got != "acme" {
		t.Errorf("signed in as %q, want acme", got)
	}

	// A bad URL comes back as the API's field error beside the field.
	tb.do("open the form", chromedp.Click(chromedp.CSS("#new-subscription")), shown("#subscription-form"))
	tb.do("submit a bad URL",
		chromedp.SetValue(chromedp.CSS("#url"), "ftp://example.com/hook"),
		chromedp.Click(chromedp.CSS(`input[name="eventTypes"][value="ticket.updated"]`)),
		chromedp.Click(chromedp.CSS("#create")),
		shown("#url-error"))
	if msg := tb.text("#url-error"); !strings.Contains(msg, "http") {
		t.Errorf("field error beside url = %q", msg)
	}
	if tb.eval(`String(document.querySelector('input[value="ticket.updated"]').checked)`) != "true" {
		t.Errorf("the form lost the checked event type after the error")
	}

	// A good one creates the subscription and shows its secret.
	tb.do("create",
		chromedp.SetValue(chromedp.CSS("#url"), rc.URL()+"/hook"),
		chromedp.SetValue(chromedp.CSS("#description"), "from the browser"),
		chromedp.Click(chromedp.CSS("#create")),
		shown("#secret"))
	secret := tb.text("#secret")
	if !strings.HasPrefix(secret, "whsec_") {
		t.Fatalf("secret shown = %q", secret)
	}
	rc.SetSecrets(secret)
	r, _ := env.Do("GET", "/api/subscriptions", ten.APIKey, nil)
	var list struct {
		Data []struct{ ID, Description string }
	}
	r.JSON(&list)
	if len(list.Data) != 1 || list.Data[0].Description != "from the browser" {
		t.Fatalf("the API lists %s", r.Body)
	}
	sub := list.Data[0].ID
	deliveries := env.URL() + "/portal/subscriptions/" + sub + "/deliveries"

	// A published event's delivery shows up, succeeded, with its attempt.
	if _, err := env.Publish(ten, "ticket.updated", map[string]any{"ticketId": "T-1"}); err != nil {
		t.Fatal(err)
	}
	tb.until("a succeeded delivery", deliveries, `document.querySelector('article.delivery[data-status="succeeded"]')`)
	if got := tb.text(`article.delivery[data-status="succeeded"] table.attempts td:nth-child(3)`); !strings.Contains(got, "HTTP 204") {
		t.Errorf("attempt result = %q, want HTTP 204", got)
	}

	// The endpoint fails: the delivery ends failed, with the answer kept.
	rc.Respond(func(int, *http.Request) int { return http.StatusInternalServerError })
	rc.Body([]byte("database is down"))
	if _, err := env.Publish(ten, "ticket.updated", map[string]any{"ticketId": "T-2"}); err != nil {
		t.Fatal(err)
	}
	tb.until("a failed delivery", deliveries+"?status=failed", `document.querySelector('article.delivery[data-status="failed"]')`)
	failed := tb.eval(`document.querySelector('article.delivery[data-status="failed"]').id`)
	if n := tb.eval(`String(document.getElementById("` + failed + `").querySelectorAll("table.attempts tbody tr").length)`); n != "3" {
		t.Errorf("failed delivery shows %s attempts, want 3", n)
	}
	if body := tb.eval(`document.getElementById("` + failed + `").querySelector("pre").textContent`); body != "database is down" {
		t.Errorf("kept answer = %q", body)
	}

	// The endpoint is back: retry from the page.
	rc.Respond(nil)
	rc.Body(nil)
	tb.submit("retry", chromedp.Click(chromedp.CSS("#"+failed+` button[data-role="retry"]`)), shown("#flash"))
	if msg := tb.text("#flash"); !strings.Contains(msg, "Retry of "+failed) {
		t.Errorf("after retry the page says %q", msg)
	}
	tb.until("the retried delivery succeeded", env.URL()+"/portal/deliveries/"+failed, `document.getElementById("`+failed+`").dataset.status === "succeeded"`)

	// Rotate the secret: the page shows a new one.
	tb.do("show the secret", chromedp.Navigate(env.URL()+"/portal/subscriptions/"+sub), chromedp.Click(chromedp.CSS("#show-secret")), shown("#rotate"))
	if got := tb.text("#secret"); got != secret {
		t.Errorf("shown secret = %q, want %q", got, secret)
	}
	tb.do("rotate", chromedp.Click(chromedp.CSS("#rotate")), shown("#rotated"))
	rotated := tb.text("#secret")
	if !strings.HasPrefix(rotated, "whsec_") || rotated == secret {
		t.Errorf("rotated secret = %q (was %q)", rotated, secret)
	}
	r, _ = env.Do("GET", "/api/subscriptions/"+sub+"/secret", ten.APIKey, nil)
	if !strings.Contains(string(r.Body), rotated) {
		t.Errorf("the API's secret after rotating in the page: %s", r.Body)
	}

	// Another tenant's subscription answers not found.
	tb.do("open theirs", chromedp.Navigate(env.URL()+"/portal/subscriptions/"+theirs.ID), shown("#problem"))
	if got := tb.text("h1"); got != "Not Found" || strings.Contains(tb.eval("document.body.innerText"), "theirs") {
		t.Errorf("another tenant's subscription shows %q", tb.eval("document.body.innerText"))
	}

	// Sign out: back to the sign-in page, and the pages ask to sign in.
	tb.do("sign out", chromedp.Navigate(env.URL()+"/portal/subscriptions"), chromedp.Click(chromedp.CSS("#sign-out")), shown("#apiKey"))
	if got := tb.text("#flash"); got != "Signed out." {
		t.Errorf("after sign out: %q", got)
	}
	tb.do("a page after sign out", chromedp.Navigate(env.URL()+"/portal/subscriptions/"+sub), shown("#apiKey"))
}

// TestPortalAPIKeySignInInABrowser signs in with the API key form, pauses
// and resumes a subscription, and sees the budget in the header.
func TestPortalAPIKeySignInInABrowser(t *testing.T) {
	t.Parallel()
	tb := newTab(t)
	env := testenv.Start(t, testenv.Options{})
	ten, _ := env.CreateTenant("keyed", 0)
	sub, err := env.Subscribe(ten, "http://127.0.0.1:9/h", "ticket.*")
	if err != nil {
		t.Fatal(err)
	}
	tb.do("sign in with a key",
		chromedp.Navigate(env.URL()+"/portal/subscriptions/"+sub.ID),
		shown("#apiKey"),
		chromedp.SetValue(chromedp.CSS("#apiKey"), ten.APIKey),
		chromedp.Click(chromedp.CSS("#sign-in")),
		shown("#pause"))
	if got := tb.text("#subscription-id"); got != sub.ID {
		t.Errorf("after sign-in the page shows %q, want the page asked for (%s)", got, sub.ID)
	}
	tb.do("pause", chromedp.Click(chromedp.CSS("#pause")), shown("#resume"))
	r, _ := env.Do("GET", "/api/subscriptions/"+sub.ID, ten.APIKey, nil)
	if !strings.Contains(string(r.Body), `"active":false`) {
		t.Errorf("after pause the API shows %s", r.Body)
	}
	tb.do("resume", chromedp.Click(chromedp.CSS("#resume")), shown("#pause"))
	budget := tb.text("#budget")
	var left, limit int
	if _, err := fmt.Sscanf(budget, "%d/%d", &left, &limit); err != nil || limit != 100 || left >= 100 || left < 90 {
		t.Errorf("budget shown = %q", budget)
	}
}
