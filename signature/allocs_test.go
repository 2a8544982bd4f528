//go:build !race

package signature

import "testing"

// TestSignAllocations: a v1 signature appended to a buffer with room
// allocates nothing once the secret's pool holds a state (the race
// detector drops pooled items at random, hence the build tag).
func TestSignAllocations(t *testing.T) {
	s := NewSecret()
	secrets := []Secret{s}
	body := []byte(vectorBody)
	buf := make([]byte, 0, 128)
	if n := testing.AllocsPerRun(100, func() {
		buf = AppendAll(buf[:0], secrets, vectorID, vectorTS, body)
	}); n != 0 {
		t.Errorf("AppendAll allocates %v times a signature, want 0", n)
	}
}
