package testenv_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/onestack/webhooks/idempotency"
	"github.com/onestack/webhooks/testenv"
)

// TestReadinessNamesWhatIsMissing: /readyz is 503 while a bucket the
// process uses is gone, and names it; it is ready again once the bucket is
// back.
func TestReadinessNamesWhatIsMissing(t *testing.T) {
	t.Parallel()
	env := testenv.Start(t, testenv.Options{})
	ready := func() (int, []string) {
		t.Helper()
		r, err := env.Do("GET", "/readyz", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		var body struct {
			Code    string
			Details struct{ Missing []string }
		}
		r.JSON(&body)
		return r.Status, body.Details.Missing
	}
	if status, missing := ready(); status != http.StatusOK {
		t.Fatalf("readyz of a fresh stack = %d %v, want 200", status, missing)
	}
	_, js := env.JetStream()
	ctx := context.Background()
	if err := js.DeleteKeyValue(ctx, idempotency.Bucket); err != nil {
		t.Fatal(err)
	}
	status, missing := ready()
	if status != http.StatusServiceUnavailable || len(missing) != 1 || missing[0] != "bucket "+idempotency.Bucket {
		t.Errorf("readyz without the idempotency bucket = %d %v, want 503 naming it", status, missing)
	}
	if _, err := idempotency.Open(ctx, js, idempotency.Config{}); err != nil {
		t.Fatal(err)
	}
	if status, missing := ready(); status != http.StatusOK {
		t.Errorf("readyz with the bucket back = %d %v, want 200", status, missing)
	}
}
