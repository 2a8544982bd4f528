package testenv_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/onestack/webhooks/deploy"
	"github.com/onestack/webhooks/testenv"
)

// metricName is a metric of webhookd in a PromQL expression.
var metricName = regexp.MustCompile(`\bwebhooks_[a-z_]+\b`)

// served lists the metric families a running stack serves on /metrics,
// with the series names of its histograms (_bucket, _sum, _count).
func served(t *testing.T, env *testenv.Env) map[string]bool {
	t.Helper()
	r, err := env.Do("GET", "/metrics", "", nil)
	if err != nil || r.Status != 200 {
		t.Fatalf("GET /metrics = %v %v", r, err)
	}
	names := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(r.Body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			names[f[2]] = true
			if f[3] == "histogram" || f[3] == "summary" {
				for _, s := range []string{"_bucket", "_sum", "_count"} {
					names[f[2]+s] = true
				}
			}
		}
	}
	return names
}

// TestOpsFilesUseServedMetrics: the Grafana dashboard is JSON whose panels
// query only metrics a running webhookd serves, and so do the Prometheus
// rules; a metric renamed in the code fails here.
func TestOpsFilesUseServedMetrics(t *testing.T) {
	t.Parallel()
	env := testenv.Start(t, testenv.Options{})
	ten, err := env.CreateTenant("acme", 0)
	if err != nil {
		t.Fatal(err)
	}
	rc := receiver(t)
	subscribe(t, env, ten, rc, "ticket.*")
	publish(t, env, ten, "ticket.updated")
	rc.WaitFor(1, 30*time.Second)
	have := served(t, env)

	var dash struct {
		Title  string
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(deploy.Dashboard, &dash); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	queried := 0
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			for _, m := range metricName.FindAllString(tg.Expr, -1) {
				queried++
				if !have[m] {
					t.Errorf("dashboard panel %q queries %s, which webhookd does not serve", p.Title, m)
				}
			}
		}
	}
	if queried < 20 {
		t.Errorf("the dashboard queries %d webhookd metrics, want its panels' queries", queried)
	}
	ruled := metricName.FindAllString(string(deploy.Rules), -1)
	for _, m := range ruled {
		if !have[m] {
			t.Errorf("the Prometheus rules use %s, which webhookd does not serve", m)
		}
	}
	if len(ruled) < 10 {
		t.Errorf("the rules use %d webhookd metrics", len(ruled))
	}
}
