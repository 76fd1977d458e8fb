package yamldoc

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCheck(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want string // the error, "" for none
	}{
		{"plain file", "id: default\ncomponents:\n  - weight: 40.5\n    thresholds: [{min: -1e300, points: 0}]\n", ""},
		{"leading document marker", "---\nid: x\n", ""},
		{"trailing document marker", "id: x\n---\n", ""},
		{"trailing end marker", "id: x\n...\n", ""},
		{"trailing empty documents and comments", "id: x\n---\n# nothing\n---\n", ""},
		{"quoted strings are not numbers", "name: '1e400'\nwhen: \".nan\"\nnote: NaN\n", ""},
		{"syntax error left to the applier", "id: [\n", ""},
		{"tiny numbers are zero, not out of range", "x: 1e-400\n", ""},
		{"two documents", "id: a\n---\nid: b\n", "line 2: " + MultiDocument},
		{"second document after an empty one", "id: a\n---\n---\nid: b\n", "line 3: " + MultiDocument},
		{"second document that does not parse", "id: a\n---\nid: [\n", MultiDocument + " (it does not parse either: yaml: line 3: did not find expected node content)"},
		{"empty first document", "---\n---\nid: b\n", "line 2: " + MultiDocument},
		{".nan weight", "id: default\ncomponents:\n  - name: usage\n    weight: .nan\n", "line 4: components[0].weight: .nan is not a finite number"},
		{".inf", "bands: {healthy: .inf}\n", "line 1: bands.healthy: .inf is not a finite number"},
		{"-.Inf in a flow list", "linear: [0, -.Inf]\n", "line 1: linear[1]: -.Inf is not a finite number"},
		{"explicit float tag", "x: !!float .NaN\n", "line 1: x: .NaN is not a finite number"},
		{"out of range", "owners:\n  - capacity: 1e400\n", "line 2: owners[0].capacity: number 1e400 is out of range (more than a 64-bit float holds)"},
		{"out of range, negative", "a:\n  b:\n    - -2e999\n", "line 3: a.b[0]: number -2e999 is out of range (more than a 64-bit float holds)"},
		{"anchors are checked once", "a: &x .nan\nb: *x\n", "line 1: a: .nan is not a finite number"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := Check([]byte(tc.yaml))
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Check = %v, want nil", err)
			case tc.want != "" && (err == nil || err.Error() != tc.want):
				t.Fatalf("Check = %v, want %q", err, tc.want)
			}
			var ye *Error
			if err != nil && !errors.As(err, &ye) {
				t.Fatalf("Check = %T, want *Error", err)
			}
		})
	}
}

// FuzzCheck: Check never panics, and what it refuses it refuses with a
// reason; a refusal of a number names its line and field.
func FuzzCheck(f *testing.F) {
	f.Add([]byte("id: default\ncomponents:\n  - name: usage\n    weight: .nan\n"))
	f.Add([]byte("id: a\n---\nid: b\n"))
	f.Add([]byte("a: &x [1, 2, {b: 1e400}]\nc: *x\n"))
	f.Add([]byte("? [a, b]\n: .inf\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		err := Check(data)
		if err == nil {
			return
		}
		var ye *Error
		if !errors.As(err, &ye) || ye.Reason == "" {
			t.Fatalf("Check = %v, want an *Error with a reason", err)
		}
		if strings.Contains(ye.Reason, "finite") && ye.Line == 0 {
			t.Fatalf("number refused without its line: %v", ye)
		}
		if !utf8.ValidString(ye.Path) && utf8.Valid(data) {
			t.Fatalf("path %q of a UTF-8 file is not UTF-8", ye.Path)
		}
	})
}
