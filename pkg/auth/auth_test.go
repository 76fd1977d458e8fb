package auth

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"go.uber.org/goleak"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestRoleStringParse(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Role
		err  bool
	}{
		{name: "write", in: "write", want: RoleWrite},
		{name: "read", in: "read", want: RoleRead},
		{name: "admin upper case", in: "ADMIN", want: RoleAdmin},
		{name: "service with spaces", in: " service ", want: RoleService},
		{name: "unspecified refused", in: "unspecified", err: true},
		{name: "empty refused", in: "", err: true},
		{name: "garbage refused", in: "root", err: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseRole(tc.in)
			if (err != nil) != tc.err {
				t.Fatalf("ParseRole(%q) err = %v, want error %v", tc.in, err, tc.err)
			}
			if err == nil && got != tc.want {
				t.Fatalf("ParseRole(%q) = %v, want %v", tc.in, got, tc.want)
			}
			if err == nil {
				if back, _ := ParseRole(got.String()); back != got {
					t.Fatalf("round trip of %v gave %v", got, back)
				}
			}
		})
	}
}

func TestAllows(t *testing.T) {
	// want[have][need], needs in order unspecified, write, read, admin, service.
	want := map[Role][5]bool{
		RoleUnspecified: {false, false, false, false, false},
		RoleWrite:       {true, true, false, false, false},
		RoleRead:        {true, false, true, false, false},
		RoleAdmin:       {true, true, true, true, false},
		RoleService:     {true, true, true, true, true},
		Role(42):        {false, false, false, false, false},
	}
	needs := []Role{RoleUnspecified, RoleWrite, RoleRead, RoleAdmin, RoleService}
	for have, row := range want {
		for i, need := range needs {
			t.Run(fmt.Sprintf("%v needs %v", have, need), func(t *testing.T) {
				if got := Allows(have, need); got != row[i] {
					t.Fatalf("Allows(%v, %v) = %v, want %v", have, need, got, row[i])
				}
			})
		}
	}
}

func TestWorkspace(t *testing.T) {
	tests := []struct {
		name      string
		principal *Principal
		requested string
		want      string
		code      codes.Code
	}{
		{name: "no principal", requested: "acme", code: codes.Unauthenticated},
		{name: "write empty means own", principal: &Principal{Workspace: "acme", Role: RoleWrite}, want: "acme"},
		{name: "read own", principal: &Principal{Workspace: "acme", Role: RoleRead}, requested: "acme", want: "acme"},
		{name: "admin other", principal: &Principal{Workspace: "acme", Role: RoleAdmin}, requested: "globex", code: codes.PermissionDenied},
		{name: "read other", principal: &Principal{Workspace: "acme", Role: RoleRead}, requested: "globex", code: codes.PermissionDenied},
		{name: "service names any", principal: &Principal{Role: RoleService}, requested: "globex", want: "globex"},
		{name: "service must name one", principal: &Principal{Role: RoleService}, code: codes.InvalidArgument},
		{name: "bound service key, own workspace", principal: &Principal{Workspace: "acme", Role: RoleService}, requested: "acme", want: "acme"},
		{name: "bound service key, empty means own", principal: &Principal{Workspace: "acme", Role: RoleService}, want: "acme"},
		{name: "bound service key, another workspace", principal: &Principal{Workspace: "acme", Role: RoleService}, requested: "rival", code: codes.PermissionDenied},
		{name: "non-service key without workspace", principal: &Principal{Role: RoleAdmin}, requested: "", code: codes.PermissionDenied},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			if tc.principal != nil {
				ctx = NewContext(ctx, *tc.principal)
			}
			got, err := Workspace(ctx, tc.requested)
			if code := status.Code(err); code != tc.code {
				t.Fatalf("Workspace code = %v (%v), want %v", code, err, tc.code)
			}
			if got != tc.want {
				t.Fatalf("Workspace = %q, want %q", got, tc.want)
			}
			if tc.code == codes.PermissionDenied && tc.requested != "" {
				if msg := status.Convert(err).Message(); strings.Contains(msg, tc.requested) {
					t.Fatalf("message %q leaks the requested workspace", msg)
				}
			}
		})
	}
}

func TestParseBearer(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
		ok   bool
	}{
		{name: "canonical", in: "Bearer abc", want: "abc", ok: true},
		{name: "lower-case scheme", in: "bearer abc", want: "abc", ok: true},
		{name: "extra spaces", in: "Bearer   abc  ", want: "abc", ok: true},
		{name: "basic scheme", in: "Basic abc", ok: false},
		{name: "scheme only", in: "Bearer ", ok: false},
		{name: "empty", in: "", ok: false},
		{name: "no scheme", in: "abc", ok: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := parseBearer(tc.in)
			if ok != tc.ok || got != tc.want {
				t.Fatalf("parseBearer(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestBearerRedacted(t *testing.T) {
	c := Bearer("cairn_admin_secret")
	for _, s := range []string{fmt.Sprint(c), fmt.Sprintf("%v", c), fmt.Sprintf("%#v", c)} {
		if strings.Contains(s, "secret") {
			t.Fatalf("credentials print the token: %q", s)
		}
	}
	md, err := c.GetRequestMetadata(context.Background())
	if err != nil || md["authorization"] != "Bearer cairn_admin_secret" {
		t.Fatalf("GetRequestMetadata = %v, %v", md, err)
	}
	if c.RequireTransportSecurity() {
		t.Fatal("Bearer must work over plaintext loopback")
	}
}

func FuzzParseBearer(f *testing.F) {
	for _, s := range []string{"Bearer abc", "bearer ", "", "Basic x", "BEARER \x00\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tok, ok := parseBearer(s)
		if ok && tok == "" {
			t.Fatalf("parseBearer(%q) accepted an empty token", s)
		}
	})
}

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
