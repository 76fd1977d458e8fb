package vocab_test

import (
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/cairn-dev/cairn/pkg/domain/vocab"
)

// sections splits docs/events.md into its "### " sections, by heading.
func sections(t *testing.T) map[string]string {
	t.Helper()
	doc, err := os.ReadFile("../../../docs/events.md")
	if err != nil {
		t.Fatalf("read docs/events.md: %v", err)
	}
	out := map[string]string{}
	parts := regexp.MustCompile(`(?m)^##+ `).Split(string(doc), -1)
	for _, p := range parts[1:] {
		head, body, _ := strings.Cut(p, "\n")
		out[strings.TrimSpace(head)] = body
	}
	return out
}

// rows returns the cells of the table rows of body whose first cell is a
// `code` name, keyed by that name.
func rows(body string) map[string][]string {
	out := map[string][]string{}
	for _, line := range strings.Split(body, "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		out[strings.Trim(cells[0], "`")] = cells[1:]
	}
	return out
}

func codeList(names []string) string {
	var out []string
	for _, n := range names {
		out = append(out, "`"+n+"`")
	}
	return strings.Join(out, ", ")
}

var roleHeading = map[vocab.Role]string{
	vocab.RoleMilestone: "Milestones", vocab.RoleFeature: "Features", vocab.RoleIntegration: "Integrations",
	vocab.RoleEngagement: "Engagement", vocab.RoleSynthetic: "Synthetic",
}

// TestDocsMatchTheVocabulary fails when docs/events.md and the registry
// disagree: every reserved event has its section with its property table,
// every product event its row under its role with its aliases, every alias
// its row in the alias table, and the doc lists no event the registry does
// not know.
func TestDocsMatchTheVocabulary(t *testing.T) {
	sec := sections(t)
	aliases := rows(sec["Aliases"])
	listed := map[string]bool{}
	for _, e := range vocab.All() {
		for _, a := range e.Aliases {
			if got := aliases[a]; len(got) == 0 || got[0] != "`"+e.Name+"`" {
				t.Errorf("the Aliases table has %q -> %v, want %s", a, got, e.Name)
			}
		}
		if e.Reserved() {
			body, ok := sec["`"+e.Name+"`"]
			if !ok {
				t.Errorf("no section for reserved event %s", e.Name)
				continue
			}
			if len(e.Aliases) > 0 && !strings.Contains(body, "Alias: "+codeList(e.Aliases)+".") {
				t.Errorf("%s: section does not say \"Alias: %s.\"", e.Name, codeList(e.Aliases))
			}
			props := rows(body)
			if len(props) != len(e.Properties) {
				t.Errorf("%s: %d properties documented, the registry has %d", e.Name, len(props), len(e.Properties))
			}
			for _, p := range e.Properties {
				cells, ok := props[p.Name]
				if !ok || len(cells) < 2 {
					t.Errorf("%s: property %s not documented", e.Name, p.Name)
					continue
				}
				req := map[bool]string{true: "yes", false: "no"}[p.Required]
				if !strings.HasPrefix(cells[0], p.Type()) || cells[1] != req {
					t.Errorf("%s.%s documented as %q required %q, registry says %q required %q", e.Name, p.Name, cells[0], cells[1], p.Type(), req)
				}
			}
			continue
		}
		heading := roleHeading[e.Role]
		cells, ok := rows(sec[heading])[e.Name]
		if !ok {
			t.Errorf("%s is not listed under ### %s", e.Name, heading)
			continue
		}
		listed[e.Name] = true
		if cells[0] != codeList(e.Aliases) {
			t.Errorf("%s: aliases documented as %q, want %q", e.Name, cells[0], codeList(e.Aliases))
		}
	}
	for _, r := range vocab.Roles() {
		for name := range rows(sec[roleHeading[r]]) {
			if e, ok := vocab.Lookup(name); !ok || e.Name != name || e.Role != r {
				t.Errorf("### %s lists %s, which is not a canonical %s event of the registry", roleHeading[r], name, r)
			}
		}
	}
	for alias, cells := range aliases {
		if e, ok := vocab.Lookup(alias); !ok || e.Name == alias || "`"+e.Name+"`" != cells[0] {
			t.Errorf("the Aliases table lists %s -> %s, which the registry does not have", alias, cells[0])
		}
	}
	for head := range sec {
		if name, ok := strings.CutPrefix(head, "`"); ok {
			name = strings.TrimSuffix(name, "`")
			if e, ok := vocab.Lookup(name); !ok || e.Name != name || !e.Reserved() {
				t.Errorf("section %s is not a reserved event of the registry", head)
			}
		}
	}
	if !slices.Equal(slices.Sorted(maps.Keys(listed)), filter(vocab.Names(), func(n string) bool { e, _ := vocab.Lookup(n); return !e.Reserved() })) {
		t.Error("the product tables do not list exactly the registry's product events")
	}
}

func filter(in []string, keep func(string) bool) []string {
	var out []string
	for _, s := range in {
		if keep(s) {
			out = append(out, s)
		}
	}
	return out
}
