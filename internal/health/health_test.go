package health

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestProblems(t *testing.T) {
	h := New()
	h.Set("watch b", "down")
	h.Set("index a", "rebuilding")
	h.Set("watch b", "restarting")
	if diff := cmp.Diff([]string{"index a: rebuilding", "watch b: restarting"}, h.Problems()); diff != "" {
		t.Errorf("Problems() (-want +got):\n%s", diff)
	}
	h.Clear("watch b")
	h.Clear("never set")
	if diff := cmp.Diff([]string{"index a: rebuilding"}, h.Problems()); diff != "" {
		t.Errorf("Problems() after Clear (-want +got):\n%s", diff)
	}
}

func TestRecover(t *testing.T) {
	h := New()
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer h.Recover("loop", nil)
		panic("boom")
	}()
	<-done
	if got := h.Panics(); got != 1 {
		t.Errorf("Panics() = %d, want 1", got)
	}
	if diff := cmp.Diff([]string{"loop: stopped by a panic: boom"}, h.Problems()); diff != "" {
		t.Errorf("Problems() (-want +got):\n%s", diff)
	}
}

func TestNilHealth(t *testing.T) {
	var h *Health
	h.Set("a", "b")
	h.Clear("a")
	if h.Problems() != nil || h.Panics() != 0 {
		t.Errorf("a nil Health recorded something")
	}
}
