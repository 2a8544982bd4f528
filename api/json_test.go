package api

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// TestReadAll: whatever length a body declares, readAll reads what the
// reader holds, as io.ReadAll does, and passes on a read's error.
func TestReadAll(t *testing.T) {
	long := strings.Repeat(`{"a":"0123456789"},`, 100)
	huge := strings.Repeat(`{"a":"0123456789"},`, 10_000) // past readAhead
	for _, tc := range []struct {
		body   string
		length int64
	}{
		{"", 0}, {"", -1}, {`{"a":1}`, 7}, {`{"a":1}`, -1}, {`{"a":1}`, 3}, {`{"a":1}`, 100},
		{long, int64(len(long))}, {long, -1}, {long, 10}, {long, 1 << 30},
		{huge, int64(len(huge))}, {huge, -1}, {huge, readAhead},
	} {
		for name, r := range map[string]io.Reader{
			"whole":    strings.NewReader(tc.body),
			"one byte": iotest.OneByteReader(strings.NewReader(tc.body)),
			"data+EOF": iotest.DataErrReader(strings.NewReader(tc.body)),
		} {
			got, err := readAll(r, tc.length, 1<<20)
			if err != nil || !bytes.Equal(got, []byte(tc.body)) {
				t.Errorf("readAll(%s, %d bytes declared %d) = %q, %v, want the body", name, len(tc.body), tc.length, got, err)
			}
		}
	}
	// A body declared a megabyte long that brings a few bytes holds a
	// buffer of at most readAhead, not of what it declared.
	if got, _ := readAll(strings.NewReader(`{"a":1}`), 1<<20-1, 1<<20); cap(got) > readAhead+1 {
		t.Errorf("readAll reserved %d bytes for 7 declared as 1 MiB, want at most %d", cap(got), readAhead+1)
	}
	boom := errors.New("boom")
	if _, err := readAll(iotest.ErrReader(boom), 5, 1<<20); !errors.Is(err, boom) {
		t.Errorf("readAll(a failing reader) = %v, want its error", err)
	}
}
