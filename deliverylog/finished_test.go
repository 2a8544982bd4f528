package deliverylog_test

import (
	"testing"
	"time"

	"github.com/onestack/webhooks/deliverylog"
	"github.com/onestack/webhooks/internal/natstest"
)

// TestFinished: only a delivery that succeeded, or failed with nothing
// more to come, is finished. One pending (a retry scheduled, or not yet
// attempted), skipped, unknown, malformed or another tenant's is not: the
// fan-out makes a delivery again unless the log shows it finished, and
// a retry whose schedule may not have been stored must not be left out.
func TestFinished(t *testing.T) {
	t.Parallel()
	s := startStack(t, natstest.Options{})
	w := s.writer(t, deliverylog.WriterConfig{})
	ix := s.index(t, deliverylog.IndexConfig{})

	if _, ok, err := ix.NewestCreated(); ok || err != nil {
		t.Fatalf("NewestCreated of an empty index = %v, %v; want none", ok, err)
	}
	tenant, other, sub := newTenant(), newTenant(), newSub()
	created := time.Now().Add(-time.Hour).UTC()
	histories := map[string]history{}
	var recs []deliverylog.Record
	for i, o := range map[string]outcome{"succeeded": succeeded, "retrying": retrying, "failed": failed, "skipped": skipped} {
		h := makeDelivery(tenant, sub, "evt_"+i, 1, created, o)
		histories[i] = h
		recs = append(recs, h.recs...)
	}
	newest := created.Add(time.Minute)
	pending := makeDelivery(tenant, sub, "evt_pending", 2, newest, skipped)
	pending.recs[0].Status = deliverylog.StatusPending // parked before its first attempt
	recs = append(recs, pending.recs...)
	appendAll(t, w, recs)
	syncIndex(t, ix)

	tests := []struct {
		name, tenant, id string
		want             bool
	}{
		{"succeeded", tenant, histories["succeeded"].want.ID, true},
		{"failed for good", tenant, histories["failed"].want.ID, true},
		{"pending with a retry scheduled", tenant, histories["retrying"].want.ID, false},
		{"pending before its first attempt", tenant, pending.want.ID, false},
		{"skipped", tenant, histories["skipped"].want.ID, false},
		{"another tenant's", other, histories["succeeded"].want.ID, false},
		{"unknown", tenant, newDeliveryID(sub), false},
		{"malformed", tenant, "dlv_nope", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ix.Finished(tt.tenant, tt.id)
			if err != nil || got != tt.want {
				t.Errorf("Finished = %v, %v; want %v", got, err, tt.want)
			}
		})
	}
	if got, ok, err := ix.NewestCreated(); !ok || err != nil || !got.Equal(newest) {
		t.Errorf("NewestCreated = %v, %v, %v; want %v", got, ok, err, newest)
	}
}
