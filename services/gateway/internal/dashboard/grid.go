package dashboard

import (
	"cmp"
	"encoding/csv"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Page is the answer of GET /v1/dashboard/accounts: one page of the rows
// that match the query, how many match and their ARR, the portfolio of
// every paying account (whatever the filters) and the values the grid's
// filters offer.
type Page struct {
	// AsOf is when the services were read.
	AsOf time.Time `json:"asOf"`
	Rows []*Row    `json:"rows"`
	Page PageInfo  `json:"page"`
	// ARR sums the ARR of every matching row, not only this page's.
	ARR       float64   `json:"arr"`
	Portfolio Portfolio `json:"portfolio"`
	Facets    Facets    `json:"facets"`
}

// PageInfo is the list convention of the REST API: a token for the next
// page, absent on the last, and the number of matching rows.
type PageInfo struct {
	NextPageToken string `json:"nextPageToken,omitempty"`
	TotalSize     int    `json:"totalSize"`
}

// Facets are the values the grid's filters offer: every stage, owner,
// segment and plan some account has.
type Facets struct {
	Stages   []string `json:"stages"`
	Owners   []Facet  `json:"owners"`
	Segments []string `json:"segments"`
	Plans    []string `json:"plans"`
}

// Facet is one owner: its id and name.
type Facet struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// Renewal counts the paying accounts whose contract end falls in one
// window of the portfolio page ("overdue", "30", "90"), with the filter
// the accounts grid lists them with.
type Renewal struct {
	Window   string  `json:"window"`
	Accounts int     `json:"accounts"`
	ARR      float64 `json:"arr"`
}

// renewalWindows are the portfolio's renewal figures.
var renewalWindows = []string{"overdue", "30", "90"}

// grid is one snapshot of the joined report, ordered by name.
type grid struct {
	asOf      time.Time
	rows      []*Row
	portfolio Portfolio
	facets    Facets
}

func newGrid(rep Report) *grid {
	g := &grid{asOf: rep.AsOf, portfolio: rep.Portfolio, rows: make([]*Row, len(rep.Rows))}
	stages, segments, plans := map[string]bool{}, map[string]bool{}, map[string]bool{}
	owners := map[string]string{}
	for i := range rep.Rows {
		r := &rep.Rows[i]
		g.rows[i] = r
		stages[r.Stage], segments[r.Segment], plans[r.Plan] = true, true, true
		if r.OwnerID != "" {
			owners[r.OwnerID] = cmp.Or(r.OwnerName, r.OwnerID)
		}
	}
	keys := func(m map[string]bool) []string {
		delete(m, "")
		out := make([]string, 0, len(m))
		for k := range m {
			out = append(out, k)
		}
		slices.Sort(out)
		return out
	}
	g.facets = Facets{Stages: keys(stages), Segments: keys(segments), Plans: keys(plans), Owners: make([]Facet, 0, len(owners))}
	for id, name := range owners {
		g.facets.Owners = append(g.facets.Owners, Facet{ID: id, Name: name})
	}
	slices.SortFunc(g.facets.Owners, func(a, b Facet) int {
		return cmp.Or(cmp.Compare(strings.ToLower(a.Name), strings.ToLower(b.Name)), cmp.Compare(a.ID, b.ID))
	})
	return g
}

// match is every row that passes q's filters at now, in q's order.
func (g *grid) match(q *Query, now time.Time) []*Row {
	var out []*Row
	for _, r := range g.rows {
		if q.Match(r, now) {
			out = append(out, r)
		}
	}
	if q.Sort != "name" || q.Desc {
		q.sortRows(out)
	}
	return out
}

// page is the answer to q at now.
func (g *grid) page(q *Query, now time.Time) Page {
	rows := g.match(q, now)
	p := Page{AsOf: g.asOf, Portfolio: g.portfolio, Facets: g.facets, Page: PageInfo{TotalSize: len(rows)}, Rows: []*Row{}}
	for _, r := range rows {
		p.ARR += r.ARR
	}
	if q.Offset < len(rows) {
		end := min(q.Offset+q.Size, len(rows))
		p.Rows = rows[q.Offset:end]
		if end < len(rows) {
			p.Page.NextPageToken = encodeToken(end)
		}
	}
	p.Portfolio.Renewals = make([]Renewal, 0, len(renewalWindows))
	for _, w := range renewalWindows {
		rq := Query{Status: "paying", Renewal: w}
		rq.renewal, _ = parseRenewal(w)
		n := Renewal{Window: w}
		for _, r := range g.rows {
			if r.Paying() && rq.Match(r, now) {
				n.Accounts++
				n.ARR += r.ARR
			}
		}
		p.Portfolio.Renewals = append(p.Portfolio.Renewals, n)
	}
	return p
}

// csvColumns are the export's columns, as the grid shows them.
var csvColumns = []string{"account_id", "name", "status", "stage", "health_score", "health_band", "score_change_30d", "arr",
	"renewal_date", "owner", "segment", "plan", "open_signals"}

var bandWords = map[string]string{"healthy": "Healthy", "neutral": "Neutral", "at_risk": "At risk"}

// writeCSV streams rows as CSV. A cell that a spreadsheet would run as a
// formula (=, +, -, @, not a number) is prefixed with an apostrophe:
// account names come from the CRM.
func writeCSV(w http.ResponseWriter, rows []*Row, now time.Time) {
	h := w.Header()
	h.Set("Content-Type", "text/csv; charset=utf-8")
	h.Set("Content-Disposition", `attachment; filename="cairn-accounts-`+now.Format(time.DateOnly)+`.csv"`)
	cw := csv.NewWriter(w)
	cw.UseCRLF = true
	_ = cw.Write(csvColumns)
	one := func(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }
	for _, r := range rows {
		rec := []string{r.AccountID, r.Name, strings.ReplaceAll(r.Status, "_", " "), r.Stage, "", "", "", "",
			"", r.OwnerName, r.Segment, r.Plan, strconv.Itoa(int(r.OpenSignals))}
		if r.Status == "unknown" {
			rec[2] = ""
		}
		if r.Band != "" {
			rec[4], rec[5], rec[6] = one(r.Score), cmp.Or(bandWords[r.Band], r.Band), one(r.ScoreChange30d)
		}
		if r.ARR != 0 {
			rec[7] = strconv.FormatFloat(r.ARR, 'f', -1, 64)
		}
		if !r.contractEnd.IsZero() {
			rec[8] = r.contractEnd.Format(time.DateOnly)
		}
		for i, v := range rec {
			rec[i] = defuse(v)
		}
		if err := cw.Write(rec); err != nil {
			return // the client went away
		}
	}
	cw.Flush()
}

// defuse keeps a spreadsheet from reading a cell as a formula: one that
// starts with =, +, - or @, unless it is a negative number.
func defuse(v string) string {
	if v == "" || !strings.ContainsRune("=+-@", rune(v[0])) {
		return v
	}
	if len(v) > 1 && v[0] == '-' && v[1] >= '0' && v[1] <= '9' {
		return v
	}
	return "'" + v
}
