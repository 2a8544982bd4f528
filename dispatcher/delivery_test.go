package dispatcher

import (
	"encoding/binary"
	"strings"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
)

// TestDeliveryID: the id is "dlv_", the ULID of the event's time and
// sequence, and the subscription's ULID, as ulid's own String writes
// them; its subscription is read back from it.
func TestDeliveryID(t *testing.T) {
	at := time.Date(2026, 12, 3, 10, 0, 0, 123e6, time.UTC)
	sub := "sub_01KBE0SM4D7ZV9Q1Y8W3N6T2RX"
	for _, seq := range []uint64{1, 42, 1 << 40} {
		var u ulid.ULID
		_ = u.SetTime(ulid.Timestamp(at))
		var entropy [10]byte
		binary.BigEndian.PutUint64(entropy[:8], seq)
		_ = u.SetEntropy(entropy[:])
		want := "dlv_" + u.String() + strings.TrimPrefix(sub, "sub_")
		got := DeliveryID(at, seq, sub)
		if got != want {
			t.Errorf("DeliveryID(%v, %d, %s) = %q, want %q", at, seq, sub, got, want)
		}
		if s, ok := SubscriptionOf(got); !ok || s != sub {
			t.Errorf("SubscriptionOf(%q) = %q, %v; want %q, true", got, s, ok, sub)
		}
	}
	fresh := NewDeliveryID(sub)
	if s, ok := SubscriptionOf(fresh); !ok || s != sub {
		t.Errorf("SubscriptionOf(NewDeliveryID(%s) = %q) = %q, %v; want the subscription", sub, fresh, s, ok)
	}
}
