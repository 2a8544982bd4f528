package testenv_test

import (
	"bufio"
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/onestack/webhooks/server"
	"github.com/onestack/webhooks/subscriptions"
	"github.com/onestack/webhooks/testenv"
)

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
