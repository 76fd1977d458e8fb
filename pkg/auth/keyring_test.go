package auth

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-dev/cairn/pkg/clock"
)

var epoch = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func TestKeyringCreateAuthenticate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "keys.json")
	k, err := NewKeyring(path, clock.NewManual(epoch))
	if err != nil {
		t.Fatalf("NewKeyring on a missing file: %v", err)
	}
	tests := []struct {
		name      string
		workspace string
		role      Role
		err       bool
	}{
		{name: "write key", workspace: "acme", role: RoleWrite},
		{name: "read key", workspace: "acme", role: RoleRead},
		{name: "admin key", workspace: "globex", role: RoleAdmin},
		{name: "service key without workspace", role: RoleService},
		{name: "service key bound to a workspace", workspace: "acme", role: RoleService},
		{name: "admin key without workspace", role: RoleAdmin, err: true},
		{name: "unspecified role", workspace: "acme", role: RoleUnspecified, err: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tok, err := k.Create(tc.workspace, tc.role)
			if (err != nil) != tc.err {
				t.Fatalf("Create err = %v, want error %v", err, tc.err)
			}
			if err != nil {
				return
			}
			if want := "cairn_" + tc.role.String() + "_"; !strings.HasPrefix(tok, want) || len(tok) != len(want)+64 {
				t.Fatalf("token %q does not look like %s<64 hex>", tok, want)
			}
			p, err := k.Authenticate(tok)
			if err != nil {
				t.Fatalf("Authenticate(new token): %v", err)
			}
			if p.Workspace != tc.workspace || p.Role != tc.role || p.KeyID == "" {
				t.Fatalf("Authenticate = %+v, want workspace %q role %v", p, tc.workspace, tc.role)
			}
			// Only a service key without a workspace is cluster-wide, and
			// its id says so.
			wide := tc.role == RoleService && tc.workspace == ""
			if p.ClusterWide() != wide || strings.HasPrefix(p.KeyID, ClusterWideIDPrefix) != wide {
				t.Fatalf("key %+v: ClusterWide() = %v, id prefix %s: want cluster-wide %v", p, p.ClusterWide(), ClusterWideIDPrefix, wide)
			}
			if _, err := k.Authenticate(tok + "x"); !errors.Is(err, ErrUnknownKey) {
				t.Fatalf("Authenticate(wrong token) err = %v, want ErrUnknownKey", err)
			}
		})
	}

	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Fatalf("key file mode = %v, want 0600", perm)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var f keyFile
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatalf("key file is not JSON: %v", err)
	}
	if len(f.Keys) != 5 {
		t.Fatalf("key file has %d keys, want 5", len(f.Keys))
	}
	for _, r := range f.Keys {
		if len(r.Hash) != 64 || !r.CreatedAt.Equal(epoch) {
			t.Fatalf("bad record %+v", r)
		}
	}
	if strings.Contains(string(data), "cairn_") {
		t.Fatal("key file contains a clear-text token")
	}
}

func TestKeyringEmptyAndOversizedTokens(t *testing.T) {
	k, err := NewKeyring(filepath.Join(t.TempDir(), "keys.json"), clock.NewManual(epoch))
	if err != nil {
		t.Fatal(err)
	}
	for name, tok := range map[string]string{"empty": "", "oversized": strings.Repeat("a", maxTokenLen+1), "unknown": "cairn_read_00"} {
		t.Run(name, func(t *testing.T) {
			if _, err := k.Authenticate(tok); !errors.Is(err, ErrUnknownKey) {
				t.Fatalf("err = %v, want ErrUnknownKey", err)
			}
		})
	}
}

// TestKeyringReload checks that a key created by another process is seen
// once the clock has moved a second, and not before.
func TestKeyringReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.json")
	clk := clock.NewManual(epoch)
	server, err := NewKeyring(path, clk)
	if err != nil {
		t.Fatal(err)
	}
	cli, err := NewKeyring(path, clk)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := cli.Create("acme", RoleRead)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := server.Authenticate(tok); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("before a second passed: err = %v, want ErrUnknownKey (reload is paced)", err)
	}
	clk.Advance(time.Second)
	if _, err := server.Authenticate(tok); err != nil {
		t.Fatalf("after a second: %v", err)
	}

	// Revoke from the other process; the server drops the key after a second.
	id := cli.Keys()[0].ID
	if err := cli.Revoke(id); err != nil {
		t.Fatal(err)
	}
	if err := cli.Revoke(id); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("second revoke err = %v, want ErrUnknownKey", err)
	}
	clk.Advance(time.Second)
	if _, err := server.Authenticate(tok); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("after revoke: err = %v, want ErrUnknownKey", err)
	}

	// A broken file keeps the previous keys and reports the error.
	tok2, err := cli.Create("acme", RoleAdmin)
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Second)
	if _, err := server.Authenticate(tok2); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Second)
	if _, err := server.Authenticate(tok2); err != nil {
		t.Fatalf("broken file must keep old keys: %v", err)
	}
	if server.Err() == nil {
		t.Fatal("Err() = nil after a broken reload")
	}
}

func TestParseKeyFile(t *testing.T) {
	const hash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	tests := []struct {
		name string
		data string
		err  string
	}{
		{name: "valid", data: `{"keys":[{"id":"k1","workspace":"acme","role":"read","hash":"` + hash + `"}]}`},
		{name: "empty list", data: `{"keys":[]}`},
		{name: "bad json", data: `{`, err: "decode JSON"},
		{name: "bad role", data: `{"keys":[{"id":"k1","workspace":"acme","role":"root","hash":"` + hash + `"}]}`, err: "keys[0].role"},
		{name: "missing id", data: `{"keys":[{"workspace":"acme","role":"read","hash":"` + hash + `"}]}`, err: "keys[0].id"},
		{name: "missing workspace", data: `{"keys":[{"id":"k","role":"read","hash":"` + hash + `"}]}`, err: "keys[0].workspace"},
		{name: "short hash", data: `{"keys":[{"id":"k","workspace":"a","role":"read","hash":"abcd"}]}`, err: "keys[0].hash"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := parseKeyFile([]byte(tc.data))
			if tc.err == "" && err != nil {
				t.Fatalf("unexpected error %v", err)
			}
			if tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
				t.Fatalf("err = %v, want one mentioning %q", err, tc.err)
			}
		})
	}
}

func FuzzParseKeyFile(f *testing.F) {
	f.Add([]byte(`{"keys":[{"id":"k1","workspace":"acme","role":"read","hash":"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"}]}`))
	f.Add([]byte(`{"keys":null}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		records, entries, err := parseKeyFile(data)
		if err == nil && len(records) != len(entries) {
			t.Fatalf("%d records but %d entries", len(records), len(entries))
		}
	})
}

func TestStaticKeys(t *testing.T) {
	s := StaticKeys{"tok": {KeyID: "k", Workspace: "acme", Role: RoleRead}}
	if p, err := s.Authenticate("tok"); err != nil || p.KeyID != "k" {
		t.Fatalf("Authenticate(tok) = %+v, %v", p, err)
	}
	if _, err := s.Authenticate("to"); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("Authenticate(to) err = %v", err)
	}
}

// BenchmarkAuthenticate measures one Authenticate against a keyring of 100
// keys (every hash is compared, in constant time).
func BenchmarkAuthenticate(b *testing.B) {
	k, err := NewKeyring(filepath.Join(b.TempDir(), "keys.json"), clock.NewManual(epoch))
	if err != nil {
		b.Fatal(err)
	}
	var tok string
	for i := range 100 {
		if tok, err = k.Create(fmt.Sprintf("ws%d", i), RoleWrite); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := k.Authenticate(tok); err != nil {
			b.Fatal(err)
		}
	}
}
