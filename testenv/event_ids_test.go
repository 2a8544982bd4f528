package testenv_test

import (
	"net/http"
	"testing"

	"github.com/onestack/webhooks/testenv"
)

// TestBatchIsNotAnEventID: GET /api/events/batch is the batch route (405),
// so an event named "batch" could never be read; both publish routes
// refuse the id with a field error.
func TestBatchIsNotAnEventID(t *testing.T) {
	t.Parallel()
	env, ten := setup(t, testenv.Options{})
	one := map[string]any{"id": "batch", "type": "ticket.updated", "data": map[string]any{}}
	batch := map[string]any{"events": []map[string]any{
		{"id": "batch-1", "type": "ticket.updated", "data": map[string]any{}},
		one,
	}}
	for _, tt := range []struct {
		path, field string
		body        any
	}{
		{"/api/events", "id", one},
		{"/api/events/batch", "events[1].id", batch},
	} {
		r, err := env.Do("POST", tt.path, ten.APIKey, tt.body)
		if err != nil {
			t.Fatal(err)
		}
		var out struct {
			Code    string
			Details struct {
				Fields []struct{ Field, Reason string }
			}
		}
		r.JSON(&out)
		if r.Status != http.StatusBadRequest || out.Code != "VALIDATION_FAILED" || len(out.Details.Fields) != 1 || out.Details.Fields[0].Field != tt.field {
			t.Errorf("POST %s with id batch = %d %s, want 400 VALIDATION_FAILED naming %s alone", tt.path, r.Status, r.Body, tt.field)
		}
	}
	if r, _ := env.Do("GET", "/api/events/batch", ten.APIKey, nil); r.Status != http.StatusMethodNotAllowed {
		t.Errorf("GET /api/events/batch = %d, want 405", r.Status)
	}
}
