package rules

import (
	"fmt"
	"slices"
	"testing"
	"time"

	routingv1 "github.com/cairn-dev/cairn/gen/cairn/routing/v1"
)

// BenchmarkDecision routes MQLs through 50 rules (49 that do not match, then a
// pool rule) onto a weighted pool of 200 owners with capacities, and reports
// the p99 latency of one decision alongside ns/op.
func BenchmarkDecision(b *testing.B) {
	var owners []*routingv1.Owner
	var ids []string
	for i := range 200 {
		id := fmt.Sprintf("o%03d", i)
		ids = append(ids, id)
		owners = append(owners, owner(id, withCapacity(1_000_000), withWeight(int32(1+i%4))))
	}
	t := &testing.T{}
	dir := newDir(t, owners...)
	dir.pools["p"] = &routingv1.Pool{PoolId: "p", OwnerIds: ids, Strategy: routingv1.Strategy_STRATEGY_WEIGHTED_ROUND_ROBIN}
	cfg := &routingv1.Config{FallbackPoolId: "p"}
	for i := range 49 {
		cfg.Rules = append(cfg.Rules, &routingv1.Rule{
			Name:      fmt.Sprintf("r%02d", i),
			Condition: fmt.Sprintf(`lead.territory == "t%d" && account.segment in ["enterprise", "mid"]`, i),
			Action:    routingv1.ActionKind_ACTION_KIND_OWNER, OwnerId: ids[i],
		})
	}
	cfg.Rules = append(cfg.Rules, &routingv1.Rule{Name: "rest", Condition: `lead.territory == "amer"`, Action: routingv1.ActionKind_ACTION_KIND_POOL, PoolId: "p"})
	e, errs := Compile(cfg)
	if len(errs) > 0 {
		b.Fatal(errs)
	}
	in := Input{
		Type:    routingv1.HandoffType_HANDOFF_TYPE_MQL,
		Lead:    map[string]any{"territory": "amer", "email": "x@acme.com"},
		Account: map[string]any{"segment": "smb"},
		Now:     monday10,
	}
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		start := time.Now()
		r := e.Decide(in, dir)
		lat = append(lat, time.Since(start))
		if r.OwnerID == "" {
			b.Fatal("no owner")
		}
		dir.apply(r)
	}
	b.StopTimer()
	slices.Sort(lat)
	if len(lat) > 0 {
		b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
	}
}
