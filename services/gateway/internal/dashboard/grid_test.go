package dashboard

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	healthv1 "github.com/cairn-dev/cairn/gen/cairn/health/v1"
	routingv1 "github.com/cairn-dev/cairn/gen/cairn/routing/v1"
	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
)

func TestParseQuery(t *testing.T) {
	tests := []struct {
		query     string
		want      Query // compared on the exported fields the test sets
		wantField string
	}{
		{query: "", want: Query{Sort: "name", Size: 50}},
		{query: "q=Red&status=paying&stage=onboarding&band=at_risk&owner=nora&segment=smb&plan=none&renewal=30-60&sort=arr&dir=desc&page.pageSize=10",
			want: Query{Search: "Red", Status: "paying", Stage: "onboarding", Band: "at_risk", Owner: "nora", Segment: "smb", Plan: "none",
				Renewal: "30-60", Sort: "arr", Desc: true, Size: 10}},
		{query: "status=won+back&band=BAND_AT_RISK", want: Query{Status: "won_back", Band: "at_risk", Sort: "name", Size: 50}},
		{query: "status=ACCOUNT_STATUS_CHURNED", want: Query{Status: "churned", Sort: "name", Size: 50}},
		{query: "renewal=overdue&format=csv", want: Query{Renewal: "overdue", CSV: true, Sort: "name", Size: 50}},
		{query: "page.pageSize=5000", want: Query{Sort: "name", Size: 1000}},
		{query: "page.pageSize=0", want: Query{Sort: "name", Size: 50}},
		{query: "page.pageToken=" + encodeToken(100), want: Query{Sort: "name", Size: 50, Offset: 100}},
		{query: "ids=a,b,,a", want: Query{IDs: []string{"a", "b"}, Sort: "name", Size: 50}},
		{query: "bnad=at_risk", wantField: "bnad"},
		{query: "band=red", wantField: "band"},
		{query: "band=healthy&band=neutral", wantField: "band"},
		{query: "status=lost", wantField: "status"},
		{query: "sort=score", wantField: "sort"},
		{query: "dir=down", wantField: "dir"},
		{query: "renewal=soon", wantField: "renewal"},
		{query: "renewal=90-30", wantField: "renewal"},
		{query: "renewal=-5", wantField: "renewal"},
		{query: "renewal=99999", wantField: "renewal"},
		{query: "page.pageSize=ten", wantField: "page.pageSize"},
		{query: "page.pageSize=-1", wantField: "page.pageSize"},
		{query: "page.pageToken=xyz", wantField: "page.pageToken"},
		{query: "format=xml", wantField: "format"},
		{query: "ids=" + manyIDs(1001), wantField: "ids"},
	}
	for _, tt := range tests {
		t.Run(tt.query[:min(len(tt.query), 60)], func(t *testing.T) {
			v, err := url.ParseQuery(tt.query)
			if err != nil {
				t.Fatal(err)
			}
			q, err := ParseQuery(v)
			if tt.wantField != "" {
				var fe *FieldError
				if !errors.As(err, &fe) || fe.Field != tt.wantField {
					t.Fatalf("ParseQuery(%q) error = %v, want one naming %q", tt.query, err, tt.wantField)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseQuery(%q): %v", tt.query, err)
			}
			q.renewal, q.ids = renewalWindow{}, nil
			if !equalQuery(q, tt.want) {
				t.Errorf("ParseQuery(%q) = %+v, want %+v", tt.query, q, tt.want)
			}
		})
	}
}

// manyIDs is n distinct account ids, comma-separated.
func manyIDs(n int) string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = "a" + strconv.Itoa(i)
	}
	return strings.Join(ids, ",")
}

func equalQuery(a, b Query) bool {
	return slices.Equal(a.IDs, b.IDs) && a.Search == b.Search && a.Status == b.Status && a.Stage == b.Stage && a.Band == b.Band &&
		a.Owner == b.Owner && a.Segment == b.Segment && a.Plan == b.Plan && a.Renewal == b.Renewal && a.Sort == b.Sort &&
		a.Desc == b.Desc && a.Size == b.Size && a.Offset == b.Offset && a.CSV == b.CSV
}

// TestAccountsBadParameter checks that the endpoint answers 400 naming
// the parameter before it calls any service (the clients are nil).
func TestAccountsBadParameter(t *testing.T) {
	h := Accounts(Clients{}, func() time.Time { return t0 })
	for _, tt := range []struct{ query, field string }{
		{"sort=bogus", "sort"}, {"dir=sideways", "dir"}, {"band=red", "band"}, {"status=lost", "status"},
		{"renewal=soon", "renewal"}, {"page.pageSize=x", "page.pageSize"}, {"page.pageToken=%21", "page.pageToken"},
		{"colour=red", "colour"}, {"format=pdf", "format"},
	} {
		t.Run(tt.query, func(t *testing.T) {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/v1/dashboard/accounts?"+tt.query, nil))
			if w.Code != http.StatusBadRequest {
				t.Fatalf("status = %d, want 400; body %s", w.Code, w.Body)
			}
			var body struct {
				Message string `json:"message"`
			}
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(body.Message, tt.field+": ") {
				t.Errorf("message %q does not name %q", body.Message, tt.field)
			}
		})
	}
}

// gridInputs are six accounts: three paying (one at risk, renewing in 20
// days; one overdue), a prospect, a trial and a churned account.
func gridInputs() Inputs {
	acct := func(id, name string, st commonv1.AccountStatus, stage, seg string) *stagesv1.AccountSummary {
		return &stagesv1.AccountSummary{AccountId: id, Name: name, Status: st, Stage: stage, Segment: seg}
	}
	row := func(id string, band healthv1.Band, score, arr float64, end time.Time) *healthv1.AccountRow {
		r := &healthv1.AccountRow{AccountId: id, Band: band, Score: score, Arr: arr, ScoreChange_30D: score - 50}
		if !end.IsZero() {
			r.ContractEnd = timestamppb.New(end)
		}
		return r
	}
	return Inputs{
		Journey: []*stagesv1.AccountSummary{
			acct("acme", "Acme", commonv1.AccountStatus_ACCOUNT_STATUS_CUSTOMER, "adopt", "mid"),
			acct("bolt", "bolt", commonv1.AccountStatus_ACCOUNT_STATUS_CUSTOMER, "adopt", "smb"),
			acct("cove", "Cove", commonv1.AccountStatus_ACCOUNT_STATUS_WON_BACK, "renew", "smb"),
			acct("dune", "Dune", commonv1.AccountStatus_ACCOUNT_STATUS_PROSPECT, "lead", ""),
			acct("echo", "Echo Redgrid", commonv1.AccountStatus_ACCOUNT_STATUS_TRIAL, "trial", "smb"),
			acct("fern", "Fern", commonv1.AccountStatus_ACCOUNT_STATUS_CHURNED, "", "mid"),
		},
		Health: []*healthv1.AccountRow{
			row("acme", healthv1.Band_BAND_AT_RISK, 30, 50000, t0.AddDate(0, 0, 20)),
			row("bolt", healthv1.Band_BAND_HEALTHY, 80, 12000, t0.AddDate(0, 0, 200)),
			row("cove", healthv1.Band_BAND_NEUTRAL, 60, 30000, t0.AddDate(0, 0, -3)),
		},
		Owners:      []*routingv1.Owner{{OwnerId: "nora", Name: "Nora Lind", Team: routingv1.Team_TEAM_CSM}},
		Assignments: []*routingv1.Assignment{assignment("acme", "nora", t0), assignment("echo", "nora", t0)},
	}
}

func TestGridPage(t *testing.T) {
	g := newGrid(Build(t0, gridInputs()))
	tests := []struct {
		query     string
		wantIDs   []string
		wantTotal int
		wantNext  bool
		wantARR   float64
	}{
		{query: "", wantIDs: []string{"acme", "bolt", "cove", "dune", "echo"}, wantTotal: 5, wantARR: 92000},
		{query: "status=all", wantIDs: []string{"acme", "bolt", "cove", "dune", "echo", "fern"}, wantTotal: 6, wantARR: 92000},
		{query: "status=paying&sort=arr&dir=desc", wantIDs: []string{"acme", "cove", "bolt"}, wantTotal: 3, wantARR: 92000},
		{query: "status=paying&sort=health", wantIDs: []string{"acme", "cove", "bolt"}, wantTotal: 3, wantARR: 92000},
		{query: "sort=health&dir=desc", wantIDs: []string{"bolt", "cove", "acme", "dune", "echo"}, wantTotal: 5, wantARR: 92000},
		{query: "sort=renewal", wantIDs: []string{"cove", "acme", "bolt", "dune", "echo"}, wantTotal: 5, wantARR: 92000},
		{query: "band=unscored", wantIDs: []string{"dune", "echo"}, wantTotal: 2},
		{query: "owner=nora", wantIDs: []string{"acme", "echo"}, wantTotal: 2, wantARR: 50000},
		{query: "owner=none&status=all", wantIDs: []string{"bolt", "cove", "dune", "fern"}, wantTotal: 4, wantARR: 42000},
		{query: "segment=none", wantIDs: []string{"dune"}, wantTotal: 1},
		{query: "status=churned", wantIDs: []string{"fern"}, wantTotal: 1},
		{query: "status=won_back", wantIDs: []string{"cove"}, wantTotal: 1, wantARR: 30000},
		{query: "renewal=overdue", wantIDs: []string{"cove"}, wantTotal: 1, wantARR: 30000},
		{query: "renewal=30", wantIDs: []string{"acme"}, wantTotal: 1, wantARR: 50000},
		{query: "renewal=30-365", wantIDs: []string{"bolt"}, wantTotal: 1, wantARR: 12000},
		{query: "q=REDGRID", wantIDs: []string{"echo"}, wantTotal: 1},
		{query: "q=ol", wantIDs: []string{"bolt"}, wantTotal: 1, wantARR: 12000},
		{query: "ids=fern,acme&status=all", wantIDs: []string{"acme", "fern"}, wantTotal: 2, wantARR: 50000},
		{query: "page.pageSize=2", wantIDs: []string{"acme", "bolt"}, wantTotal: 5, wantNext: true, wantARR: 92000},
		{query: "page.pageSize=2&page.pageToken=" + encodeToken(4), wantIDs: []string{"echo"}, wantTotal: 5, wantARR: 92000},
		{query: "page.pageToken=" + encodeToken(40), wantIDs: []string{}, wantTotal: 5, wantARR: 92000},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			v, _ := url.ParseQuery(tt.query)
			q, err := ParseQuery(v)
			if err != nil {
				t.Fatal(err)
			}
			p := g.page(&q, t0)
			ids := []string{}
			for _, r := range p.Rows {
				ids = append(ids, r.AccountID)
			}
			if !slices.Equal(ids, tt.wantIDs) {
				t.Errorf("rows = %v, want %v", ids, tt.wantIDs)
			}
			if p.Page.TotalSize != tt.wantTotal || (p.Page.NextPageToken != "") != tt.wantNext || p.ARR != tt.wantARR {
				t.Errorf("total %d next %q arr %v, want %d, next %v, arr %v", p.Page.TotalSize, p.Page.NextPageToken, p.ARR, tt.wantTotal, tt.wantNext, tt.wantARR)
			}
		})
	}
}

// TestGridPagesCoverEveryRow follows nextPageToken to the end and checks
// that the pages together are the whole sorted list, once each.
func TestGridPagesCoverEveryRow(t *testing.T) {
	g := newGrid(Build(t0, gridInputs()))
	all := Query{Status: "all", Sort: "arr", Desc: true, Size: 1000}
	want := []string{}
	for _, r := range g.page(&all, t0).Rows {
		want = append(want, r.AccountID)
	}
	var got []string
	token := ""
	for range 10 {
		v := url.Values{"status": {"all"}, "sort": {"arr"}, "dir": {"desc"}, "page.pageSize": {"4"}}
		if token != "" {
			v.Set("page.pageToken", token)
		}
		q, err := ParseQuery(v)
		if err != nil {
			t.Fatal(err)
		}
		p := g.page(&q, t0)
		for _, r := range p.Rows {
			got = append(got, r.AccountID)
		}
		if token = p.Page.NextPageToken; token == "" {
			break
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("pages = %v, want %v", got, want)
	}
}

func TestGridFacetsAndRenewals(t *testing.T) {
	g := newGrid(Build(t0, gridInputs()))
	p := g.page(&Query{Sort: "name", Size: 1}, t0)
	if want := []string{"adopt", "lead", "renew", "trial"}; !slices.Equal(p.Facets.Stages, want) {
		t.Errorf("stages = %v, want %v", p.Facets.Stages, want)
	}
	if want := []string{"mid", "smb"}; !slices.Equal(p.Facets.Segments, want) {
		t.Errorf("segments = %v, want %v", p.Facets.Segments, want)
	}
	if want := []Facet{{ID: "nora", Name: "Nora Lind"}}; !slices.Equal(p.Facets.Owners, want) {
		t.Errorf("owners = %v, want %v", p.Facets.Owners, want)
	}
	want := []Renewal{{Window: "overdue", Accounts: 1, ARR: 30000}, {Window: "30", Accounts: 1, ARR: 50000}, {Window: "90", Accounts: 1, ARR: 50000}}
	if !slices.Equal(p.Portfolio.Renewals, want) {
		t.Errorf("renewals = %+v, want %+v", p.Portfolio.Renewals, want)
	}
	if p.Portfolio.Customers != 3 {
		t.Errorf("customers = %d, want 3", p.Portfolio.Customers)
	}
}

func TestWriteCSV(t *testing.T) {
	g := newGrid(Build(t0, gridInputs()))
	q := Query{Status: "all", Sort: "name"}
	rows := g.match(&q, t0)
	rows[0].Name = "=HYPERLINK(1)"
	w := httptest.NewRecorder()
	writeCSV(w, rows, t0)
	lines := strings.Split(strings.TrimSuffix(w.Body.String(), "\r\n"), "\r\n")
	if len(lines) != 7 {
		t.Fatalf("%d lines, want a header and 6 rows:\n%s", len(lines), w.Body)
	}
	if want := strings.Join(csvColumns, ","); lines[0] != want {
		t.Errorf("header %q, want %q", lines[0], want)
	}
	if want := "acme,'=HYPERLINK(1),customer,adopt,30.0,At risk,-20.0,50000,2026-12-21,Nora Lind,mid,,0"; lines[1] != want {
		t.Errorf("row %q, want %q", lines[1], want)
	}
	if got := w.Header().Get("Content-Type"); !strings.HasPrefix(got, "text/csv") {
		t.Errorf("content type %q", got)
	}
}

func TestSnapshots(t *testing.T) {
	now := t0
	s := &Snapshots{MaxAge: time.Minute, Size: 2, Now: func() time.Time { return now }}
	builds := 0
	build := func() (any, error) { builds++; return builds, nil }
	fail := func() (any, error) { builds++; return nil, errors.New("down") }
	steps := []struct {
		name       string
		advance    time.Duration
		key, fp    string
		fn         func() (any, error)
		want       any
		wantBuilds int
	}{
		{name: "first build", key: "a", fp: "1", fn: build, want: 1, wantBuilds: 1},
		{name: "same fingerprint: cached", advance: 10 * time.Second, key: "a", fp: "1", fn: build, want: 1, wantBuilds: 1},
		{name: "state moved: rebuilt", key: "a", fp: "2", fn: build, want: 2, wantBuilds: 2},
		{name: "another caller: its own", key: "b", fp: "2", fn: build, want: 3, wantBuilds: 3},
		{name: "older than MaxAge: rebuilt", advance: time.Minute, key: "a", fp: "2", fn: build, want: 4, wantBuilds: 4},
		{name: "failed build", key: "a", fp: "3", fn: fail, want: nil, wantBuilds: 5},
		{name: "a failure is not kept", key: "a", fp: "3", fn: build, want: 6, wantBuilds: 6},
		{name: "third key evicts the least used", key: "c", fp: "3", fn: build, want: 7, wantBuilds: 7},
		{name: "b was evicted", key: "b", fp: "2", fn: build, want: 8, wantBuilds: 8},
	}
	for _, st := range steps {
		now = now.Add(st.advance)
		v, _, _ := s.get(st.key, st.fp, st.fn)
		if v != st.want || builds != st.wantBuilds {
			t.Fatalf("%s: got %v after %d builds, want %v after %d", st.name, v, builds, st.want, st.wantBuilds)
		}
	}
}

func TestDefuse(t *testing.T) {
	for in, want := range map[string]string{
		"": "", "Acme": "Acme", "=SUM(A1)": "'=SUM(A1)", "+1 555": "'+1 555", "@cmd": "'@cmd", "-12.5": "-12.5", "-x": "'-x", "-": "'-",
	} {
		if got := defuse(in); got != want {
			t.Errorf("defuse(%q) = %q, want %q", in, got, want)
		}
	}
}
