package streamindex

import (
	"bytes"
	"testing"
)

func TestString(t *testing.T) {
	for _, s := range []string{"", "a", "ten_01JZ", string(make([]byte, 300))} {
		b := AppendString([]byte{'k'}, s)
		got, rest, ok := ReadString(append(b[1:], 'z'))
		if !ok || got != s || string(rest) != "z" {
			t.Errorf("ReadString(AppendString(%q)) = %q, %q, %v; want %q, \"z\", true", s, got, rest, ok, s)
		}
	}
	for _, b := range [][]byte{nil, {5, 'a'}, {0x80}} {
		if _, _, ok := ReadString(b); ok {
			t.Errorf("ReadString(%v) ok, want not", b)
		}
	}
	// Length first: no string's key is a prefix range of a longer one's.
	if a, ab := AppendString(nil, "a"), AppendString(nil, "ab"); bytes.HasPrefix(ab, a) {
		t.Errorf("AppendString(\"ab\") = %v starts with AppendString(\"a\") = %v", ab, a)
	}
}

func TestPrefixEnd(t *testing.T) {
	tests := []struct{ p, want []byte }{
		{[]byte("ab"), []byte("ac")},
		{[]byte{'a', 0xff}, []byte("b")},
		{[]byte{0xff, 0xff}, nil},
		{nil, nil},
	}
	for _, tt := range tests {
		if got := PrefixEnd(tt.p); !bytes.Equal(got, tt.want) {
			t.Errorf("PrefixEnd(%v) = %v, want %v", tt.p, got, tt.want)
		}
	}
}
