package store_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cairn-dev/cairn/pkg/store"
	"github.com/cairn-dev/cairn/pkg/store/storetest"
)

func TestCollector(t *testing.T) {
	db := storetest.Open(t)
	reg := prometheus.NewRegistry()
	reg.MustRegister(db.Collector("test"))
	put := func(k string) func(*store.Tx) error {
		return func(tx *store.Tx) error {
			b, err := tx.Bucket("m")
			if err != nil {
				return err
			}
			return b.Put([]byte(k), []byte("v"))
		}
	}
	if err := db.Update(put("u")); err != nil {
		t.Fatal(err)
	}
	const writers = 8
	var wg sync.WaitGroup
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := db.Commit(context.Background(), put(string(rune('a'+i)))); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()

	got := gathered(t, reg)
	tests := []struct {
		series string
		want   func(float64) bool
	}{
		{`cairn_bbolt_commit_seconds_count{path="update",service="test"}`, func(v float64) bool { return v == 1 }},
		{`cairn_bbolt_commit_seconds_count{path="group",service="test"}`, func(v float64) bool { return v >= 1 && v <= writers }},
		{`cairn_bbolt_commit_group_size_sum{service="test"}`, func(v float64) bool { return v == writers }},
		{`cairn_bbolt_page_writes_total{service="test"}`, func(v float64) bool { return v > 0 }},
		{`cairn_bbolt_write_seconds_total{service="test"}`, func(v float64) bool { return v >= 0 }},
		{`cairn_bbolt_spill_seconds_total{service="test"}`, func(v float64) bool { return v >= 0 }},
		{`cairn_bbolt_rebalance_seconds_total{service="test"}`, func(v float64) bool { return v >= 0 }},
		{`cairn_bbolt_free_pages{service="test"}`, func(v float64) bool { return v >= 0 }},
	}
	for _, tt := range tests {
		v, ok := got[tt.series]
		if !ok || !tt.want(v) {
			t.Errorf("%s = %v (present %v)", tt.series, v, ok)
		}
	}
}

// gathered flattens reg's metrics to "name{label=value,...}" → value, with
// histograms as their _count and _sum.
func gathered(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			key := func(suffix string) string { return mf.GetName() + suffix + "{" + strings.Join(labels, ",") + "}" }
			switch {
			case m.GetHistogram() != nil:
				out[key("_count")] = float64(m.GetHistogram().GetSampleCount())
				out[key("_sum")] = m.GetHistogram().GetSampleSum()
			case m.GetCounter() != nil:
				out[key("")] = m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				out[key("")] = m.GetGauge().GetValue()
			}
		}
	}
	return out
}
