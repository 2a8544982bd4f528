package main

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// A histogram records non-negative values (nanoseconds here) without locks,
// in log-linear buckets: values below 256 each have their own bucket, and
// every power of two above is split into 128 buckets, so a quantile read
// from it is within 1/128 (0.8 %) of the true value. The zero value is
// ready to use; it is safe for concurrent use.
type histogram struct {
	counts [histBuckets]atomic.Int64
	n      atomic.Int64
	max    atomic.Int64
}

const (
	histSubBits = 7
	histSub     = 1 << histSubBits // buckets per power of two
	// The largest index comes from MaxInt64, 63 bits: shift 55, top 255.
	histBuckets = (63-histSubBits-1)*histSub + 2*histSub
)

// bucketOf returns the bucket of v (v >= 0).
func bucketOf(v int64) int {
	if v < 2*histSub {
		return int(v)
	}
	shift := bits.Len64(uint64(v)) - histSubBits - 1
	return shift*histSub + int(v>>shift)
}

// bucketRange returns the smallest and largest value of bucket i.
func bucketRange(i int) (lo, hi int64) {
	if i < 2*histSub {
		return int64(i), int64(i)
	}
	shift := i/histSub - 1
	top := int64(i - shift*histSub)
	return top << shift, (top+1)<<shift - 1
}

// Record adds one value; negative values count as zero.
func (h *histogram) Record(v int64) {
	if v < 0 {
		v = 0
	}
	h.counts[bucketOf(v)].Add(1)
	h.n.Add(1)
	for {
		m := h.max.Load()
		if v <= m || h.max.CompareAndSwap(m, v) {
			return
		}
	}
}

// RecordDuration adds one duration.
func (h *histogram) RecordDuration(d time.Duration) { h.Record(int64(d)) }

// Count is the number of values recorded.
func (h *histogram) Count() int64 { return h.n.Load() }

// Max is the largest value recorded (0 when empty).
func (h *histogram) Max() int64 { return h.max.Load() }

// Quantile returns the nearest-rank q-quantile (0 < q <= 1): the smallest
// recorded value v such that at least ceil(q*n) values are <= v, as the
// middle of its bucket (exact below 256), never above the maximum. It
// returns 0 when the histogram is empty.
func (h *histogram) Quantile(q float64) int64 {
	var snap [histBuckets]int64
	var n int64
	for i := range snap {
		snap[i] = h.counts[i].Load()
		n += snap[i]
	}
	if n == 0 {
		return 0
	}
	rank := int64(math.Ceil(q * float64(n)))
	rank = max(1, min(rank, n))
	var seen int64
	for i, c := range snap {
		seen += c
		if seen >= rank {
			lo, hi := bucketRange(i)
			return min(lo+(hi-lo)/2, h.max.Load())
		}
	}
	return h.max.Load()
}

// Merge adds every value of o to h.
func (h *histogram) Merge(o *histogram) {
	for i := range o.counts {
		if c := o.counts[i].Load(); c > 0 {
			h.counts[i].Add(c)
		}
	}
	h.n.Add(o.n.Load())
	for {
		m, om := h.max.Load(), o.max.Load()
		if om <= m || h.max.CompareAndSwap(m, om) {
			return
		}
	}
}

// quantiles is a summary of a histogram of durations, in milliseconds.
type quantiles struct {
	N     int64   `json:"n"`
	P50ms float64 `json:"p50Ms"`
	P99ms float64 `json:"p99Ms"`
	Maxms float64 `json:"maxMs"`
}

func summarize(h *histogram) quantiles {
	return quantiles{N: h.Count(), P50ms: ms(h.Quantile(0.50)), P99ms: ms(h.Quantile(0.99)), Maxms: ms(h.Max())}
}

func ms(ns int64) float64 { return float64(ns) / 1e6 }
