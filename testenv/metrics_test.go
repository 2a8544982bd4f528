package testenv_test

import (
	"bufio"
	"bytes"
	"context"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/onestack/webhooks/internal/poll"
	"github.com/onestack/webhooks/server"
	"github.com/onestack/webhooks/subscriptions"
	"github.com/onestack/webhooks/testenv"
)

// lint runs promlint over a metrics page.
func lint(page string) ([]promlint.Problem, error) {
	return promlint.New(strings.NewReader(page)).Lint()
}

// fqName reads a metric's name from its description; prometheus.Desc has
// no getter, and its String form is stable: Desc{fqName: "...", ...}.
var fqName = regexp.MustCompile(`fqName: "([^"]+)"`)

// unexposed returns the metrics registered on reg that have no series on
// the page: a vector nobody has given a label value yet, which a lint of
// the page would not see.
func unexposed(reg *prometheus.Registry, page string) []string {
	descs := make(chan *prometheus.Desc, 256)
	go func() { reg.Describe(descs); close(descs) }()
	var missing []string
	for d := range descs {
		m := fqName.FindStringSubmatch(d.String())
		if m == nil {
			missing = append(missing, "unreadable description "+d.String())
			continue
		}
		if !strings.Contains(page, "\n# TYPE "+m[1]+" ") && !strings.HasPrefix(page, "# TYPE "+m[1]+" ") {
			missing = append(missing, m[1])
		}
	}
	slices.Sort(missing)
	return missing
}

// TestMetricsPageIsLinted exercises the stack until every registered
// metric, every vector included, has a series, then lints the page.
func TestMetricsPageIsLinted(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	env, ten := setup(t, testenv.Options{Server: func(c *server.Config) { c.Registry = reg }})
	rc := receiver(t)
	subscribe(t, env, ten, rc, "ticket.*")
	publish(t, env, ten, "ticket.updated")
	rc.WaitFor(1, 30*time.Second)
	// A refused request moves the 429 counter.
	small, err := env.CreateTenant("small", 1)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		env.Do("GET", "/api/subscriptions", small.APIKey, nil)
	}
	var page string
	poll.Within(30*time.Second, func() bool {
		r, err := env.Do("GET", "/metrics", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		page = string(r.Body)
		return len(unexposed(reg, page)) == 0
	})
	if missing := unexposed(reg, page); len(missing) > 0 {
		t.Errorf("metrics with no series after the workout, so the lint cannot see them (give each a label value here): %v", missing)
	}
	problems, err := lint(page)
	if err != nil {
		t.Fatalf("lint: %v", err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	t.Logf("linted %d metric families", strings.Count(page, "\n# TYPE ")+1)
}

// TestMetricsLintCatchesBreakage shows the two checks above failing: a
// badly named or undocumented metric is a lint problem, and a vector with
// no series is reported as escaping the lint.
func TestMetricsLintCatchesBreakage(t *testing.T) {
	t.Parallel()
	bad := "# HELP webhooks_things Things.\n# TYPE webhooks_things counter\nwebhooks_things 1\n" +
		"# TYPE webhooks_latency_milliseconds gauge\nwebhooks_latency_milliseconds 3\n"
	problems, err := lint(bad)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, p := range problems {
		got[p.Metric] = true
	}
	if !got["webhooks_things"] || !got["webhooks_latency_milliseconds"] {
		t.Errorf("problems = %v, want the counter without _total and the undocumented gauge in milliseconds", problems)
	}

	reg := prometheus.NewRegistry()
	quiet := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "webhooks_quiet_total", Help: "Never touched."}, []string{"kind"})
	busy := prometheus.NewCounter(prometheus.CounterOpts{Name: "webhooks_busy_total", Help: "Touched."})
	reg.MustRegister(quiet, busy)
	page := "# HELP webhooks_busy_total Touched.\n# TYPE webhooks_busy_total counter\nwebhooks_busy_total 0\n"
	if missing := unexposed(reg, page); !slices.Equal(missing, []string{"webhooks_quiet_total"}) {
		t.Errorf("unexposed = %v, want the vector with no label value", missing)
	}
}

// TestMetricSeriesDoNotFollowTenants: 10,000 tenants each making requests,
// counted and refused, leave the metrics page with as many series as 10
// tenants did.
func TestMetricSeriesDoNotFollowTenants(t *testing.T) {
	t.Parallel()
	// A clock held still: no tenant's window ends between its two requests.
	at := time.Now()
	env := testenv.Start(t, testenv.Options{Server: func(c *server.Config) {
		c.RateLimiter = "local"
		c.Clock = func() time.Time { return at }
	}})
	one := 1
	act := func(n int) {
		t.Helper()
		var wg sync.WaitGroup
		work := make(chan struct{})
		for range 16 {
			wg.Go(func() {
				for range work {
					_, key, _, err := env.Store().CreateTenant(context.Background(), subscriptions.TenantInput{Name: "t", RateLimit: &one})
					if err != nil {
						t.Error(err)
						return
					}
					for _, want := range []int{200, 429} {
						if r, err := env.Do("GET", "/api/event-types", string(key), nil); err != nil || r.Status != want {
							t.Errorf("GET /api/event-types = %v %v, want %d", r, err, want)
						}
					}
				}
			})
		}
		for range n {
			work <- struct{}{}
		}
		close(work)
		wg.Wait()
	}
	series := func() int {
		t.Helper()
		r, err := env.Do("GET", "/metrics", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		sc := bufio.NewScanner(bytes.NewReader(r.Body))
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "webhooks_") {
				n++
			}
		}
		return n
	}
	act(10)
	few := series()
	act(9_990)
	if many := series(); many != few {
		t.Errorf("metrics page has %d webhooks_ series after 10,000 tenants, %d after 10: a series per tenant", many, few)
	}
}
