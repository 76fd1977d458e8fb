package journey

import (
	"testing"

	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
	"github.com/cairn-dev/cairn/pkg/domain/account"
)

func TestOwner(t *testing.T) {
	tests := []struct {
		name   string
		traits map[string]string
		want   string
	}{
		{name: "no owner", traits: map[string]string{"segment": "smb"}, want: ""},
		{name: "explicit owner wins", traits: map[string]string{"owner": "ola", "csm_id": "nora"}, want: "ola"},
		{name: "CSM before AE", traits: map[string]string{"ae_id": "lena", "csm_id": "nora"}, want: "nora"},
		{name: "AE before SDR", traits: map[string]string{"ae_id": "lena", "sdr_id": "sam"}, want: "lena"},
		{name: "SDR of a prospect", traits: map[string]string{"sdr_id": "sam"}, want: "sam"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			aj := &stagesv1.AccountJourney{Stage: "trial", Traits: tc.traits}
			if got := Owner(aj); got != tc.want {
				t.Errorf("Owner = %q, want %q", got, tc.want)
			}
			if tc.want == "" {
				return
			}
			f := AccountFilter{Owner: tc.want}
			if !f.Matches(aj, account.StatusTrial) {
				t.Errorf("the owner filter %q does not match the account it names", tc.want)
			}
			if (AccountFilter{Owner: "someone-else"}).Matches(aj, account.StatusTrial) {
				t.Error("the owner filter matches another owner")
			}
		})
	}
}
