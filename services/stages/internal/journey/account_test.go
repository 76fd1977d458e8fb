package journey

import (
	"errors"
	"fmt"
	"log/slog"
	"testing"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
	"github.com/cairn-dev/cairn/pkg/apierr"
	"github.com/cairn-dev/cairn/pkg/domain/account"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// TestInvalidErrorIsFieldError checks that a bad definition reaches a
// client as InvalidArgument listing every problem as a field violation.
func TestInvalidErrorIsFieldError(t *testing.T) {
	_, err := Compile(&stagesv1.JourneyDefinition{Id: "X", Stages: []*stagesv1.Stage{{Id: "one", Exit: []*stagesv1.Criterion{{Name: "done", Expr: "nope("}}}}})
	if !errors.Is(err, ErrInvalid) || !errors.Is(err, apierr.ErrInvalid) {
		t.Fatalf("err = %v, want ErrInvalid and apierr.ErrInvalid", err)
	}
	st := status.Convert(apierr.Status(slog.New(slog.DiscardHandler), "/m", fmt.Errorf("apply journey: %w", err)))
	if st.Code() != codes.InvalidArgument {
		t.Fatalf("code = %v, want InvalidArgument", st.Code())
	}
	var fields []string
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				fields = append(fields, v.GetField())
			}
		}
	}
	if fmt.Sprint(fields) != "[id stages[one].exit[done]]" {
		t.Errorf("field violations = %v, want [id stages[one].exit[done]]", fields)
	}
}

func TestBehavioural(t *testing.T) {
	for typ, want := range map[ingestionv1.EventType]bool{
		ingestionv1.EventType_EVENT_TYPE_TRACK: true, ingestionv1.EventType_EVENT_TYPE_PAGE: true, ingestionv1.EventType_EVENT_TYPE_SCREEN: true,
		ingestionv1.EventType_EVENT_TYPE_IDENTIFY: false, ingestionv1.EventType_EVENT_TYPE_GROUP: false,
	} {
		if got := Behavioural(&ingestionv1.Event{Type: typ}); got != want {
			t.Errorf("Behavioural(%v) = %v, want %v", typ, got, want)
		}
	}
}

func TestStateOf(t *testing.T) {
	aj := &stagesv1.AccountJourney{Stage: "onboarding", EnteredAt: timestamppb.New(t0), OpenSignals: []*commonv1.Signal{
		{Attributes: map[string]string{"stage": "onboarding", "criterion": "stalled"}},
		{Attributes: map[string]string{"stage": "evaluation", "criterion": "no_champion"}},
	}}
	st := StateOf(aj)
	if st.Stage != "onboarding" || !st.EnteredAt.Equal(t0) || fmt.Sprint(st.Open) != "[stalled]" {
		t.Errorf("state = %+v", st)
	}
	if st := StateOf(&stagesv1.AccountJourney{}); st.Stage != "" || !st.EnteredAt.IsZero() || st.Open != nil {
		t.Errorf("state of an unplaced account = %+v", st)
	}
}

func TestAppendHistory(t *testing.T) {
	aj := &stagesv1.AccountJourney{}
	for i := range HistoryLimit + 5 {
		AppendHistory(aj, &stagesv1.Transition{Workspace: "w", AccountId: "a", ToStage: fmt.Sprint(i),
			Criteria: []*stagesv1.CriterionResult{{Name: "c", Expr: "true", Description: "d", Met: true}}})
	}
	if len(aj.History) != HistoryLimit || aj.History[0].GetToStage() != "5" || aj.History[HistoryLimit-1].GetToStage() != fmt.Sprint(HistoryLimit+4) {
		t.Fatalf("history keeps %d entries from %s", len(aj.History), aj.History[0].GetToStage())
	}
	h := aj.History[0]
	if h.GetWorkspace() != "" || h.GetAccountId() != "" || h.GetCriteria()[0].GetExpr() != "" || h.GetCriteria()[0].GetDescription() != "" ||
		h.GetCriteria()[0].GetName() != "c" || !h.GetCriteria()[0].GetMet() {
		t.Errorf("history entry = %v", h)
	}
}

func TestSyncTraits(t *testing.T) {
	a := account.New("w", "a")
	a.Traits = map[string]string{"name": "Acme", "segment": "smb", "ignored": "x"}
	a.Seats, a.ARR = 12, 1500.5
	aj := &stagesv1.AccountJourney{Traits: map[string]string{"cohort": "2026-03", "owner": "kim"}}
	SyncTraits(aj, a)
	want := "map[arr:1500.5 cohort:2026-03 name:Acme owner:kim seats:12 segment:smb]"
	if got := fmt.Sprint(aj.Traits); got != want {
		t.Errorf("traits = %s, want %s", got, want)
	}
}

func TestFilters(t *testing.T) {
	aj := &stagesv1.AccountJourney{Stage: "evaluation", Traits: map[string]string{"segment": "smb", "owner": "kim"},
		OpenSignals: []*commonv1.Signal{{Reason: "evaluation.no_champion_10d", Attributes: map[string]string{"criterion": "no_champion_10d"}}}}
	for _, tc := range []struct {
		f    AccountFilter
		want bool
	}{
		{AccountFilter{}, true},
		{AccountFilter{Stage: "evaluation", Segment: "smb", Owner: "kim"}, true},
		{AccountFilter{Stage: "onboarding"}, false},
		{AccountFilter{Segment: "ent"}, false},
		{AccountFilter{Owner: "lee"}, false},
		{AccountFilter{Signal: "evaluation.no_champion_10d"}, true},
		{AccountFilter{Signal: "no_champion_10d"}, true},
		{AccountFilter{Signal: "other"}, false},
	} {
		if got := tc.f.Matches(aj, account.StatusCustomer); got != tc.want {
			t.Errorf("%+v matches = %v, want %v", tc.f, got, tc.want)
		}
	}
	if (AccountFilter{}).Matches(&stagesv1.AccountJourney{}, account.StatusProspect) {
		t.Error("an unplaced account matches")
	}
	unplaced := &stagesv1.AccountJourney{}
	churned, wonBack := account.StatusChurned, account.StatusWonBack
	for _, tc := range []struct {
		name   string
		f      AccountFilter
		aj     *stagesv1.AccountJourney
		status account.Status
		want   bool
	}{
		{"default lists a placed customer", AccountFilter{}, aj, account.StatusCustomer, true},
		{"default hides a churned account", AccountFilter{}, unplaced, churned, false},
		{"default hides a churned account still placed", AccountFilter{}, aj, churned, false},
		{"churned filter lists a churned account", AccountFilter{Statuses: []account.Status{churned}}, unplaced, churned, true},
		{"churned filter hides a customer", AccountFilter{Statuses: []account.Status{churned}}, aj, account.StatusCustomer, false},
		{"status list", AccountFilter{Statuses: []account.Status{churned, wonBack}}, aj, wonBack, true},
		{"status filter never lists an unplaced prospect", AccountFilter{Statuses: []account.Status{account.StatusProspect}}, unplaced, account.StatusProspect, false},
		{"churned with a stage filter", AccountFilter{Stage: "evaluation", Statuses: []account.Status{churned}}, unplaced, churned, false},
	} {
		if got := tc.f.Matches(tc.aj, tc.status); got != tc.want {
			t.Errorf("%s: matches = %v, want %v", tc.name, got, tc.want)
		}
	}
	sig := &commonv1.Signal{AccountId: "a", State: commonv1.SignalState_SIGNAL_STATE_OPEN, Reason: "r"}
	for _, tc := range []struct {
		f    SignalFilter
		want bool
	}{
		{SignalFilter{}, true},
		{SignalFilter{AccountID: "a", State: commonv1.SignalState_SIGNAL_STATE_OPEN, Reason: "r"}, true},
		{SignalFilter{AccountID: "b"}, false},
		{SignalFilter{State: commonv1.SignalState_SIGNAL_STATE_CLOSED}, false},
		{SignalFilter{Reason: "s"}, false},
	} {
		if got := tc.f.Matches(sig); got != tc.want {
			t.Errorf("%+v matches = %v, want %v", tc.f, got, tc.want)
		}
	}
}
