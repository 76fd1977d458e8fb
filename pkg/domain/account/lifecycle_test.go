package account

import (
	"fmt"
	"strings"
	"testing"
)

func TestLifecycle(t *testing.T) {
	const day = 86400
	type ev struct {
		name string
		at   int64 // days
	}
	tests := []struct {
		name   string
		events []ev
		want   string // history as status@day,...
	}{
		{name: "prospect", events: []ev{{"page", 1}, {"demo_requested", 3}}, want: "prospect@1"},
		{name: "trial", events: []ev{{"page", 1}, {"trial_started", 4}}, want: "prospect@1 trial@4"},
		{name: "trial converts", events: []ev{{"page", 1}, {"trial_started", 4}, {"trial_converted", 20}}, want: "prospect@1 trial@4 customer@20"},
		{name: "sales-led customer", events: []ev{{"page", 1}, {"crm.closed_won", 30}, {"billing.subscription_started", 31}}, want: "prospect@1 customer@30"},
		{name: "churned", events: []ev{{"page", 1}, {"billing.subscription_started", 10}, {"billing.churned", 200}}, want: "prospect@1 customer@10 churned@200"},
		{name: "won back", events: []ev{{"page", 1}, {"billing.subscription_started", 10}, {"billing.churned", 200}, {"crm.closed_won", 260}},
			want: "prospect@1 customer@10 churned@200 won_back@260"},
		{name: "churned twice", events: []ev{{"page", 1}, {"billing.subscription_started", 10}, {"billing.churned", 200}, {"billing.subscription_started", 260}, {"billing.churned", 400}},
			want: "prospect@1 customer@10 churned@200 won_back@260 churned@400"},
		{name: "renewal before the churn is no win-back", events: []ev{{"page", 1}, {"billing.subscription_started", 10}, {"billing.renewed", 100}, {"billing.churned", 200}},
			want: "prospect@1 customer@10 churned@200"},
		{name: "churn imported without the purchase", events: []ev{{"page", 1}, {"billing.churned", 50}}, want: "prospect@1 customer@50 churned@50"},
		{name: "late event applied out of order", events: []ev{{"billing.churned", 200}, {"page", 1}, {"billing.subscription_started", 10}},
			want: "prospect@1 customer@10 churned@200"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := New("w", "a")
			for _, e := range tc.events {
				at := e.at * day
				sp, ok := a.Events[e.name]
				if !ok {
					sp = Span{First: at, Last: at}
				}
				sp.First, sp.Last = min(sp.First, at), max(sp.Last, at)
				a.Events[e.name] = sp
				if a.FirstEventAt == 0 || at < a.FirstEventAt {
					a.FirstEventAt = at
				}
				if e.name == eventChurned {
					a.addOutcome(OutcomeChurned, at)
				}
			}
			l := a.Lifecycle()
			var got []string
			for _, c := range l.History {
				got = append(got, fmt.Sprintf("%s@%d", c.Status, c.At/day))
			}
			if strings.Join(got, " ") != tc.want {
				t.Errorf("history = %s\n     want %s", strings.Join(got, " "), tc.want)
			}
			last := l.History[len(l.History)-1]
			if l.Status != last.Status || l.Since != last.At {
				t.Errorf("status %s since %d, last change %+v", l.Status, l.Since, last)
			}
		})
	}
}
