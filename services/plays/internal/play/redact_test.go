package play

import (
	"strings"
	"testing"
)

func TestRedact(t *testing.T) {
	in := `# our destinations
destinations:
  - id: crm
    type: webhook
    url: https://hooks.example.com/cairn
    secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw
  - id: cs-slack
    type: slack
    url: https://hooks.slack.com/services/T000/B000/XXXX
plays:
  - id: p
    on: [signal.opened]
    actions:
      - webhook: {destination: crm}
`
	out := Redact(in)
	for _, secret := range []string{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "T000/B000/XXXX"} {
		if strings.Contains(out, secret) {
			t.Errorf("Redact kept %q:\n%s", secret, out)
		}
	}
	for _, keep := range []string{"# our destinations", "https://hooks.example.com/cairn", "https://hooks.slack.com/<redacted>", "secret: <redacted>", "destination: crm"} {
		if !strings.Contains(out, keep) {
			t.Errorf("Redact lost %q:\n%s", keep, out)
		}
	}
	for _, bad := range []string{"", "plays: [", "- a\n- b"} {
		if got := Redact(bad); strings.Contains(got, "[") {
			t.Errorf("Redact(%q) = %q", bad, got)
		}
	}
}
