package store

import (
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
)

func TestHasStage(t *testing.T) {
	full := &stagesv1.AccountJourney{Workspace: "w", AccountId: "a", JourneyId: "default", Version: 3, Stage: "onboarding",
		EnteredAt: timestamppb.Now(), History: []*stagesv1.Transition{{ToStage: "trial"}}, Traits: map[string]string{"stage": "x"},
		Lifecycle: &commonv1.Lifecycle{Status: commonv1.AccountStatus_ACCOUNT_STATUS_CUSTOMER}}
	churned := proto.Clone(full).(*stagesv1.AccountJourney)
	churned.Stage = ""
	for _, tt := range []struct {
		name string
		msg  *stagesv1.AccountJourney
		want bool
	}{
		{"in a stage", full, true},
		{"in no stage, with history and traits", churned, false},
		{"empty", &stagesv1.AccountJourney{}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			raw, err := proto.Marshal(tt.msg)
			if err != nil {
				t.Fatal(err)
			}
			got, err := HasStage(raw)
			if err != nil || got != tt.want {
				t.Errorf("HasStage = %v, %v; want %v", got, err, tt.want)
			}
		})
	}
	if _, err := HasStage([]byte{0x2a, 0x05, 'a'}); err == nil {
		t.Error("HasStage of a truncated record: no error")
	}
}

// FuzzHasStage checks HasStage against a full decode: whenever the record
// decodes, they agree on whether it has a stage.
func FuzzHasStage(f *testing.F) {
	for _, m := range []*stagesv1.AccountJourney{{Stage: "s", AccountId: "a"}, {AccountId: "a", Traits: map[string]string{"k": "v"}}} {
		raw, _ := proto.Marshal(m)
		f.Add(raw)
	}
	f.Add([]byte{0x2a, 0x01, 'x', 0x2a, 0x00})
	f.Fuzz(func(t *testing.T, raw []byte) {
		got, err := HasStage(raw)
		var aj stagesv1.AccountJourney
		if derr := proto.Unmarshal(raw, &aj); derr != nil {
			return
		}
		if err != nil {
			t.Fatalf("HasStage failed on a record that decodes: %v", err)
		}
		if got != (aj.GetStage() != "") {
			t.Fatalf("HasStage = %v, stage %q", got, aj.GetStage())
		}
	})
}
