package streamindex

import "encoding/binary"

// AppendString appends s to dst length first (a uvarint), so that no
// string's keys are a prefix range of a longer one's.
func AppendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// ReadString reads a string written by AppendString from the start of b,
// and returns it with the rest of b; ok is false if b does not hold one.
func ReadString(b []byte) (s string, rest []byte, ok bool) {
	n, w := binary.Uvarint(b)
	if w <= 0 || uint64(len(b)-w) < n {
		return "", nil, false
	}
	return string(b[w : w+int(n)]), b[w+int(n):], true
}

// PrefixEnd returns the smallest key greater than every key that starts
// with p: the upper bound of p's range (nil if there is none).
func PrefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		end[i]++
		if end[i] != 0 {
			return end[:i+1]
		}
	}
	return nil
}
