package insight

import (
	"fmt"
	"testing"
	"time"

	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
	"github.com/cairn-dev/cairn/pkg/domain/account"
)

var t0 = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

func at(days int) int64 { return t0.Add(time.Duration(days) * day).Unix() }

func TestCount(t *testing.T) {
	tests := []struct {
		name   string
		agg    func(a *account.Aggregates)
		now    int64
		counts string // eligible/reached per moment
	}{
		{"no contract counts nowhere", func(a *account.Aggregates) { a.Events["login"] = account.Span{First: at(1), Last: at(1)} }, at(100), "[0/0 0/0]"},
		{"login in time", func(a *account.Aggregates) {
			a.Events["contract_signed"] = account.Span{First: at(0), Last: at(0)}
			a.Events["login"] = account.Span{First: at(3), Last: at(3)}
		}, at(10), "[1/1 0/0]"},
		{"late login is eligible, not reached", func(a *account.Aggregates) {
			a.Events["crm.closed_won"] = account.Span{First: at(0), Last: at(0)}
			a.Events["signed_in"] = account.Span{First: at(8), Last: at(8)}
		}, at(10), "[1/0 0/0]"},
		{"contract trait wins, first value reached", func(a *account.Aggregates) {
			a.ContractStart = at(-50)
			a.Events["contract_signed"] = account.Span{First: at(0), Last: at(0)}
			a.Events["activated"] = account.Span{First: at(-20), Last: at(-20)}
		}, at(0), "[1/0 1/1]"},
		{"deadline not passed", func(a *account.Aggregates) {
			a.Events["contract_signed"] = account.Span{First: at(0), Last: at(0)}
		}, at(6), "[0/0 0/0]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := account.New("w", "a")
			tc.agg(a)
			ms := Moments()
			out := make([]*stagesv1.Moment, len(ms))
			for i := range out {
				out[i] = &stagesv1.Moment{}
			}
			Count(out, ms, a, tc.now)
			var got []string
			for _, m := range out {
				got = append(got, fmt.Sprintf("%d/%d", m.GetEligible(), m.GetReached()))
			}
			if fmt.Sprint(got) != tc.counts {
				t.Errorf("counts = %v, want %s", got, tc.counts)
			}
		})
	}
}

func TestCommittee(t *testing.T) {
	a := account.New("w", "acme")
	a.Users["u1"] = &account.User{ID: "u1", Persona: "champion", LastSeen: at(-2)}
	a.Users["u2"] = &account.User{ID: "u2", Title: "VP Finance", LastSeen: at(-40)}
	a.Events["security_review_started"] = account.Span{First: at(-10), Last: at(-10)}
	a.Events["procurement_started"] = account.Span{First: at(-20), Last: at(-20)}
	a.Events["po_raised"] = account.Span{First: at(-5), Last: at(-5)}
	resp := Committee(a, t0)
	byRole := map[string]*stagesv1.Persona{}
	for _, p := range resp.GetPersonas() {
		byRole[p.GetRole()] = p
	}
	if p := byRole["champion"]; fmt.Sprint(p.GetUserIds()) != "[u1]" || !p.GetEngaged() || p.GetDaysSinceEngaged() != 2 {
		t.Errorf("champion = %v", p)
	}
	if p := byRole["economic_buyer"]; fmt.Sprint(p.GetUserIds()) != "[u2]" || p.GetEngaged() || p.GetDaysSinceEngaged() != 40 {
		t.Errorf("economic buyer = %v", p)
	}
	if p := byRole["procurement"]; len(p.GetUserIds()) != 0 || p.GetDaysSinceEngaged() != -1 {
		t.Errorf("procurement = %v", p)
	}
	if len(resp.GetStuckSignals()) != 1 {
		t.Fatalf("stuck = %v, want the security review only (procurement finished)", resp.GetStuckSignals())
	}
	s := resp.GetStuckSignals()[0]
	if s.GetReason() != "security_review_open_7d" || s.GetSignalId() != "acme:stuck:security_review_open_7d" || !s.GetOpenedAt().AsTime().Equal(t0.Add(-3*day)) {
		t.Errorf("stuck signal = %v", s)
	}
}
