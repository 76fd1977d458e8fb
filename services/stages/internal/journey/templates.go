package journey

import (
	"embed"
	"fmt"
	"sort"

	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
)

//go:embed templates/*.yaml
var templateFS embed.FS

// DefaultTemplate is applied as journey DefaultJourney v1 to a workspace whose
// first event arrives before any journey was applied.
const DefaultTemplate = "five-stage"

// DefaultJourney is the journey id used when a request names none.
const DefaultJourney = "default"

// Templates returns the built-in templates, sorted by id. Each call parses
// the embedded YAML afresh, so callers may modify the results.
func Templates() ([]*stagesv1.JourneyDefinition, error) {
	entries, err := templateFS.ReadDir("templates")
	if err != nil {
		return nil, fmt.Errorf("list templates: %w", err)
	}
	var out []*stagesv1.JourneyDefinition
	for _, e := range entries {
		data, err := templateFS.ReadFile("templates/" + e.Name())
		if err != nil {
			return nil, fmt.Errorf("read template %s: %w", e.Name(), err)
		}
		def, errs := ProtoFromYAML(data)
		if len(errs) > 0 {
			return nil, fmt.Errorf("template %s: %s: %s", e.Name(), errs[0].GetPath(), errs[0].GetMessage())
		}
		out = append(out, def)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].GetId() < out[j].GetId() })
	return out, nil
}

// Template returns the built-in template with the id.
func Template(id string) (*stagesv1.JourneyDefinition, error) {
	all, err := Templates()
	if err != nil {
		return nil, err
	}
	for _, t := range all {
		if t.GetId() == id {
			return t, nil
		}
	}
	return nil, fmt.Errorf("template %q: %w", id, ErrNoTemplate)
}
