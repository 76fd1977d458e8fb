package validate

import (
	"os"
	"regexp"
	"testing"

	"github.com/cairn-dev/cairn/pkg/domain/segment"
)

// TestDocsExamples keeps docs/events.md honest: every reserved event has a
// section, and every JSON example there decodes and validates.
func TestDocsExamples(t *testing.T) {
	doc, err := os.ReadFile("../../../../docs/events.md")
	if err != nil {
		t.Fatalf("read docs/events.md: %v", err)
	}
	names, _ := Reserved()
	for _, n := range names {
		if !regexp.MustCompile("(?m)^### `" + regexp.QuoteMeta(n) + "`$").Match(doc) {
			t.Errorf("docs/events.md has no section for %s", n)
		}
	}
	blocks := regexp.MustCompile("(?s)```json\n(.*?)```").FindAllSubmatch(doc, -1)
	if len(blocks) < len(names) {
		t.Fatalf("found %d JSON examples for %d reserved events", len(blocks), len(names))
	}
	seen := map[string]bool{}
	for i, b := range blocks {
		ev, err := segment.DecodeCall("", b[1])
		if err != nil {
			t.Errorf("example %d: decode: %v", i, err)
			continue
		}
		if ferr := Event(ev, DefaultLimits(), now); ferr != nil {
			t.Errorf("example %d (%s): %v", i, ev.GetEvent(), ferr)
		}
		seen[ev.GetEvent()] = true
	}
	for _, n := range names {
		if !seen[n] {
			t.Errorf("no JSON example for %s", n)
		}
	}
}
