package eventindex

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestRebuildWhenCorrupt: an index whose files are garbage is moved aside
// at open and rebuilt from the stream, answering as before.
func TestRebuildWhenCorrupt(t *testing.T) {
	t.Parallel()
	s := start(t)
	dir := filepath.Join(t.TempDir(), "eventindex")
	ix := s.open(t, Config{Dir: dir})
	base := time.Now().UTC().Truncate(time.Minute)
	want := s.publish(t, "ten_a", base, "ticket.created", "ticket.updated", "ticket.created")
	if err := ix.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
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

	ix = s.open(t, Config{Dir: dir})
	if err := ix.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	got, _ := listAll(t, ix, "ten_a", Query{Limit: 10})
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("List after the rebuild (-want +got):\n%s", diff)
	}
	if _, err := ix.Lookup(t.Context(), "ten_a", want[0].ID); err != nil {
		t.Errorf("Lookup(%s) after the rebuild: %v", want[0].ID, err)
	}
	if aside, _ := filepath.Glob(dir + ".corrupt-*"); len(aside) != 1 {
		t.Errorf("directories moved aside: %q, want one", aside)
	}
}

func closeIndex(t *testing.T, ix *Index) {
	t.Helper()
	if err := ix.Close(t.Context()); err != nil {
		t.Fatalf("Close: %v", err)
	}
}
