package web

import (
	"net/url"
	"strings"
	"testing"

	"github.com/grpc-ecosystem/grpc-gateway/v2/utilities"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	healthv1 "github.com/cairn-dev/cairn/gen/cairn/health/v1"
	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
)

func TestShortNames(t *testing.T) {
	tests := []struct {
		value protoreflect.EnumValueDescriptor
		short string
	}{
		{healthv1.Band_BAND_AT_RISK.Descriptor().Values().ByNumber(protoreflect.EnumNumber(healthv1.Band_BAND_AT_RISK)), "at_risk"},
		{healthv1.AccountSort_ACCOUNT_SORT_SCORE_CHANGE.Descriptor().Values().ByNumber(protoreflect.EnumNumber(healthv1.AccountSort_ACCOUNT_SORT_SCORE_CHANGE)), "score_change"},
	}
	for _, tc := range tests {
		if got := ShortName(tc.value); got != tc.short {
			t.Errorf("ShortName(%s) = %q, want %q", tc.value.Name(), got, tc.short)
		}
	}
	if got := upperSnake("AccountSort"); got != "ACCOUNT_SORT" {
		t.Errorf("upperSnake = %q", got)
	}
}

// FuzzQueryParser: whatever the query, the parser does not panic, and an
// error it returns names a parameter, so that FromError can turn it into a
// field violation.
func FuzzQueryParser(f *testing.F) {
	for _, seed := range []string{
		"band=at_risk&sort=arr&page.pageSize=10",
		"band=BAND_AT_RISK&band=healthy",
		"status=customer&status=ACCOUNT_STATUS_TRIAL&stage=onboarding",
		"page.pageSize=ten",
		"page.page_size=1&page.pageSize=2",
		"renewalWindow=-1&signal=%00",
		"a[b]=c&band[x]=y",
	} {
		f.Add(seed)
	}
	p := &QueryParser{}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		for _, msg := range []proto.Message{&healthv1.ListAccountsRequest{}, &stagesv1.ListAccountsRequest{}} {
			perr := p.Parse(msg, cloneValues(q), utilities.NewDoubleArray(nil))
			if perr == nil {
				continue
			}
			if _, _, ok := paramViolation(perr.Error()); !ok && !strings.HasPrefix(perr.Error(), paramPrefix) {
				t.Errorf("error %q names no parameter", perr)
			}
		}
	})
}

func cloneValues(q url.Values) url.Values {
	out := make(url.Values, len(q))
	for k, v := range q {
		out[k] = append([]string(nil), v...)
	}
	return out
}

// TestUnknownParameter: a query parameter that names no field of the
// request is refused naming it and listing the ones the route takes,
// rather than ignored (a misspelt filter would otherwise return every
// account).
func TestUnknownParameter(t *testing.T) {
	p := &QueryParser{}
	for _, tc := range []struct {
		query, wantErr string
	}{
		{"band=at_risk&page.pageSize=5", ""},
		{"bnad=at_risk", "query parameter bnad: no such parameter; this route takes "},
		{"page.size=5", "query parameter page.size: no such parameter"},
		{"window.start=2026-01-01T00:00:00Z", "query parameter window.start: no such parameter"},
	} {
		q, err := url.ParseQuery(tc.query)
		if err != nil {
			t.Fatal(err)
		}
		err = p.Parse(&healthv1.ListAccountsRequest{}, q, utilities.NewDoubleArray(nil))
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%s: %v", tc.query, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%s: %v, want %q", tc.query, err, tc.wantErr)
		}
	}
	err := p.Parse(&healthv1.ListAccountsRequest{}, url.Values{"bnad": {"x"}}, utilities.NewDoubleArray(nil))
	if err == nil || !strings.Contains(err.Error(), "band") || !strings.Contains(err.Error(), "page.pageSize") {
		t.Errorf("the error lists no parameters: %v", err)
	}
}
