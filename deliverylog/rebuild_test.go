package deliverylog_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/onestack/webhooks/deliverylog"
	"github.com/onestack/webhooks/internal/natstest"
)

// TestIndexRebuildsWhenCorrupt: an index whose files are garbage is moved
// aside at open and rebuilt from the stream, answering as before.
func TestIndexRebuildsWhenCorrupt(t *testing.T) {
	t.Parallel()
	s := startStack(t, natstest.Options{})
	w := s.writer(t, deliverylog.WriterConfig{MaxBatchRecords: 10})
	dir := filepath.Join(t.TempDir(), "deliverylog")
	tenant, sub := newTenant(), newSub()
	var recs []deliverylog.Record
	var wants []deliverylog.Delivery
	for i, o := range []outcome{succeeded, retrying, failed, skipped, succeeded} {
		h := makeDelivery(tenant, sub, fmt.Sprint("evt_", i), uint64(i+1), time.Now(), o)
		recs = append(recs, h.recs...)
		wants = append(wants, h.want)
	}
	appendAll(t, w, recs)

	ix, err := deliverylog.OpenIndex(t.Context(), s.js, deliverylog.IndexConfig{Dir: dir}, nil)
	if err != nil {
		t.Fatal(err)
	}
	syncIndex(t, ix)
	closeIndex(t, ix)
	files, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(dir, f.Name()), []byte("garbage"), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	ix = s.index(t, deliverylog.IndexConfig{Dir: dir})
	syncIndex(t, ix)
	for _, want := range wants {
		got, err := ix.Delivery(t.Context(), tenant, want.ID)
		if err != nil {
			t.Fatalf("Delivery(%s) after the rebuild: %v", want.ID, err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("Delivery(%s) after the rebuild (-want +got):\n%s", want.ID, diff)
		}
	}
	if aside, _ := filepath.Glob(dir + ".corrupt-*"); len(aside) != 1 {
		t.Errorf("directories moved aside: %q, want one", aside)
	}
}

func closeIndex(t *testing.T, ix *deliverylog.Index) {
	t.Helper()
	if err := ix.Close(t.Context()); err != nil {
		t.Fatalf("Close: %v", err)
	}
}
