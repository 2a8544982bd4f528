package syncbuf

import (
	"strings"
	"sync"
	"testing"
)

// TestBuffer: writes from several goroutines, read while they run (the
// race detector's part), all end up in String, none torn.
func TestBuffer(t *testing.T) {
	var b Buffer
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				b.Write([]byte("line\n"))
				_ = b.String()
			}
		})
	}
	wg.Wait()
	if got, want := b.String(), strings.Repeat("line\n", 800); got != want {
		t.Errorf("String() has %d bytes, want %d lines of %q", len(got), 800, "line\n")
	}
}
