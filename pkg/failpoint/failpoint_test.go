package failpoint

import (
	"strings"
	"sync"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		spec    string
		want    []string // Setting.String of each
		wantErr string   // a part of the error
	}{
		{spec: "", want: nil},
		{spec: " ; ", want: nil},
		{spec: "store/before-commit=kill@3", want: []string{"store/before-commit=kill@3"}},
		{spec: "store/after-commit=stop", want: []string{"store/after-commit=stop@1"}},
		{spec: " stream/cursor-after-commit = stop @ 2 ;store/before-commit=kill@10; ",
			want: []string{"stream/cursor-after-commit=stop@2", "store/before-commit=kill@10"}},
		{spec: "stream/append-before-commit=kill;stream/append-after-commit=kill;stream/cursor-before-commit=kill",
			want: []string{"stream/append-before-commit=kill@1", "stream/append-after-commit=kill@1", "stream/cursor-before-commit=kill@1"}},
		{spec: "store/before-commit", wantErr: `setting 1 "store/before-commit": want point=action[@hit]`},
		{spec: "store/befor-commit=kill", wantErr: `unknown point "store/befor-commit" (known: store/before-commit, store/after-commit,`},
		{spec: "store/before-commit=panic", wantErr: `unknown action "panic" (known: kill, stop)`},
		{spec: "store/before-commit=kill@0", wantErr: `hit "0": want a whole number from 1`},
		{spec: "store/before-commit=kill@-1", wantErr: `hit "-1"`},
		{spec: "store/before-commit=kill@x", wantErr: `hit "x"`},
		{spec: "store/before-commit=kill@", wantErr: `hit ""`},
		{spec: "store/before-commit=kill@99999999999999999999", wantErr: `hit "99999999999999999999"`},
		{spec: "store/after-commit=kill;store/after-commit=stop@2", wantErr: `setting 2 "store/after-commit=stop@2": point store/after-commit is armed twice`},
		{spec: "store/after-commit=kill,store/before-commit=kill", wantErr: `unknown action "kill,store/before-commit=kill" (known: kill, stop; settings are separated by ";")`},
	} {
		t.Run(tc.spec, func(t *testing.T) {
			got, err := Parse(tc.spec)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Parse(%q) error = %v, want one containing %q", tc.spec, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q): %v", tc.spec, err)
			}
			var names []string
			for _, s := range got {
				names = append(names, s.String())
			}
			if strings.Join(names, " ") != strings.Join(tc.want, " ") {
				t.Errorf("Parse(%q) = %v, want %v", tc.spec, names, tc.want)
			}
		})
	}
}

// recordFires replaces the real action (which would kill the test) for the
// duration of a test and returns what fired.
func recordFires(t *testing.T) func() []string {
	t.Helper()
	var (
		mu    sync.Mutex
		fired []string
	)
	old := fire
	fire = func(s Setting) {
		mu.Lock()
		defer mu.Unlock()
		fired = append(fired, s.String())
	}
	t.Cleanup(func() {
		fire = old
		Disable()
	})
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), fired...)
	}
}

func TestEnableFiresOnceOnTheArmedHit(t *testing.T) {
	fired := recordFires(t)
	if err := Enable("store/before-commit=kill@3;stream/cursor-after-commit=stop"); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			StoreBeforeCommit.Hit()
			StoreAfterCommit.Hit() // not armed
		}()
	}
	wg.Wait()
	CursorAfterCommit.Hit()
	CursorAfterCommit.Hit()
	got := strings.Join(fired(), " ")
	if want := "store/before-commit=kill@3 stream/cursor-after-commit=stop@1"; got != want {
		t.Errorf("fired %q, want %q", got, want)
	}

	// Enable again starts the counts afresh and disarms the rest; an
	// error changes nothing.
	if err := Enable("store/after-commit=kill@2"); err != nil {
		t.Fatal(err)
	}
	if err := Enable("store/after-commit=explode"); err == nil {
		t.Fatal("Enable of a bad value succeeded")
	}
	StoreBeforeCommit.Hit()
	StoreBeforeCommit.Hit()
	StoreBeforeCommit.Hit()
	StoreAfterCommit.Hit()
	StoreAfterCommit.Hit()
	Disable()
	StoreAfterCommit.Hit()
	got = strings.Join(fired(), " ")
	if want := "store/before-commit=kill@3 stream/cursor-after-commit=stop@1 store/after-commit=kill@2"; got != want {
		t.Errorf("fired %q, want %q", got, want)
	}
}

func TestNamesParse(t *testing.T) {
	for _, n := range Names() {
		s, err := Parse(n + "=stop@7")
		if err != nil || len(s) != 1 || s[0].Point.Name() != n {
			t.Errorf("Parse of point %s: %v %v", n, s, err)
		}
	}
}

// FuzzParse: CAIRN_FAILPOINTS comes from outside the program; no value may
// panic, and what parses prints back to a value that parses the same.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"", "store/before-commit=kill@3", "store/after-commit=stop;stream/append-after-commit=kill@2",
		"stream/cursor-before-commit = stop @ 9", "=", "@", ";;", "store/before-commit=kill@18446744073709551615",
		"store/before-commit=kill@18446744073709551616", "x=y@z", "store/after-commit=kill;store/after-commit=kill",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		got, err := Parse(spec)
		if err != nil {
			return
		}
		parts := make([]string, len(got))
		for i, s := range got {
			if s.At == 0 || (s.Action != Kill && s.Action != Stop) {
				t.Fatalf("Parse(%q) gave %+v", spec, s)
			}
			parts[i] = s.String()
		}
		again, err := Parse(strings.Join(parts, ";"))
		if err != nil || len(again) != len(got) {
			t.Fatalf("Parse(%q) printed as %q does not parse back: %v", spec, parts, err)
		}
		for i := range got {
			if again[i] != got[i] {
				t.Fatalf("Parse(%q): %v printed and parsed is %v", spec, got[i], again[i])
			}
		}
	})
}

// BenchmarkHitDisarmed is the cost of a point on the commit path when
// nothing is armed, as in production.
func BenchmarkHitDisarmed(b *testing.B) {
	Disable()
	for b.Loop() {
		StoreBeforeCommit.Hit()
	}
}
