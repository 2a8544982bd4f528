package api

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
)

// TestRouteMetrics: each request is counted under its route and status,
// whichever status came before, and its duration observed.
func TestRouteMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	reqs := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "reqs", Help: "h"}, []string{"route", "code"})
	dur := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "dur", Help: "h"}, []string{"route"})
	reg.MustRegister(reqs, dur)
	pub := &routeMetrics{label: "POST /api/events", reqs: reqs, dur: dur}
	for _, status := range []int{202, 202, 400, 202, 503, 503} {
		pub.observe(status, time.Millisecond)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			key := f.GetName()
			for _, l := range m.GetLabel() {
				key += " " + l.GetName() + "=" + l.GetValue()
			}
			if c := m.GetCounter(); c != nil {
				got[key] = c.GetValue()
			} else if h := m.GetHistogram(); h != nil {
				got[key] = float64(h.GetSampleCount())
			}
		}
	}
	want := map[string]float64{
		"reqs code=202 route=POST /api/events": 3,
		"reqs code=400 route=POST /api/events": 1,
		"reqs code=503 route=POST /api/events": 2,
		"dur route=POST /api/events":           6,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("series (-want +got):\n%s", diff)
	}
}
