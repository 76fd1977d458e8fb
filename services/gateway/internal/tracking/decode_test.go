package tracking

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestItemField(t *testing.T) {
	tests := []struct {
		name  string
		field string
		index int
		want  string
	}{
		{"nested", "batch[3].properties.seats", 3, "properties.seats"},
		{"whole item", "batch[3]", 3, ""},
		{"other index kept", "batch[2].type", 3, "batch[2].type"},
		{"relative already", "type", 0, "type"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := itemField(tc.field, tc.index); got != tc.want {
				t.Errorf("itemField(%q, %d) = %q, want %q", tc.field, tc.index, got, tc.want)
			}
		})
	}
}

// checkDecoded asserts the invariants the handler relies on for any input.
func checkDecoded(t *testing.T, d Decoded, err error) {
	t.Helper()
	if err != nil {
		if !errors.Is(err, ErrUnparseable) {
			t.Fatalf("error %v is not ErrUnparseable", err)
		}
		return
	}
	if len(d.Events) != len(d.Index) {
		t.Fatalf("%d events but %d indexes", len(d.Events), len(d.Index))
	}
	seen := map[int]bool{}
	for i, idx := range d.Index {
		if i > 0 && idx <= d.Index[i-1] {
			t.Fatalf("indexes not increasing: %v", d.Index)
		}
		if d.Events[i] == nil {
			t.Fatalf("nil event at %d", i)
		}
		seen[idx] = true
	}
	for _, p := range d.Problems {
		if seen[p.Index] {
			t.Fatalf("item %d both decoded and rejected", p.Index)
		}
		if p.Reason == "" {
			t.Fatalf("problem %+v has no reason", p)
		}
	}
}

func seeds(f *testing.F) {
	body, err := os.ReadFile(filepath.Join("testdata", "batch_mixed.json"))
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{
		string(body),
		`{"batch":[]}`,
		`{"batch":null}`,
		`{"userId":"u","event":"e","timestamp":"2026-01-01T00:00:00Z"}`,
		`{"userId":12,"traits":{"a":[1,{"b":null}]}}`,
		`[]`, `null`, ``, `{"batch":[1,"x",{}]}`,
		`{"context":[],"batch":[]}`,
		`{"batch":[{ },{"type":"page"} , 3,{"context":null}],"x":{"y":[1]}}`,
	} {
		f.Add([]byte(s))
	}
}

func FuzzDecodeBatch(f *testing.F) {
	seeds(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		d, err := DecodeBatch(body)
		checkDecoded(t, d, err)
	})
}

func FuzzDecodeCall(f *testing.F) {
	seeds(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, typ := range []string{"track", "identify", "group", "page", "screen", "alias"} {
			d, err := DecodeCall(typ, body)
			checkDecoded(t, d, err)
			if err == nil && len(d.Events)+len(d.Problems) != 1 {
				t.Fatalf("single call gave %d events and %d problems", len(d.Events), len(d.Problems))
			}
		}
	})
}

// TestDecodeBatchWithoutEnvelopeContext guards a regression fixed in
// pkg/domain/segment (e073f96): most SDK batches carry no top-level context or
// integrations, and their items must still decode.
func TestDecodeBatchWithoutEnvelopeContext(t *testing.T) {
	tests := []struct {
		name string
		body string
	}{
		{"no envelope, bare items", `{"batch":[{"type":"track","userId":"u","event":"e"},{"type":"identify","userId":"u"}]}`},
		{"envelope context only", `{"context":{"ip":"1.2.3.4"},"batch":[{"type":"track","userId":"u","event":"e"},{"type":"identify","userId":"u"}]}`},
		{"empty envelope objects", `{"context":{},"integrations":null,"batch":[{"type":"track","userId":"u","event":"e","context":{"a":1}},{}]}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, err := DecodeBatch([]byte(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range d.Problems {
				if p.Field == "context" || p.Field == "integrations" {
					t.Errorf("item %d rejected on %s: %s", p.Index, p.Field, p.Reason)
				}
			}
			if len(d.Events) < 1 {
				t.Errorf("no events decoded: %+v", d.Problems)
			}
		})
	}
	d, err := DecodeBatch([]byte(`{"context":{"ip":"1.2.3.4"},"batch":[{"type":"track","userId":"u","event":"e","context":{"groupId":"acme"}}]}`))
	if err != nil || len(d.Events) != 1 {
		t.Fatalf("decode: %v %+v", err, d)
	}
	if got := d.Events[0].GetContext().AsMap(); got["ip"] != "1.2.3.4" || got["groupId"] != "acme" {
		t.Errorf("merged context = %v", got)
	}
}
