package dashboard

import (
	"cmp"
	"fmt"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cairn-dev/cairn/pkg/page"
)

// Account grid paging: the page size when none is asked for and the
// largest one served, as every list RPC (pkg/page).
const (
	defaultGridPage = 50
	maxGridPage     = 1000
	// maxRenewalDays bounds a renewal window, ten years.
	maxRenewalDays = 3660
	// maxIDs bounds the ids one request may name.
	maxIDs = 1000
)

// Query is what GET /v1/dashboard/accounts asks of the account grid: its
// filters, sort and page. The zero Query lists the live (not churned)
// accounts by name, 50 at a time.
type Query struct {
	// Search matches a substring of the account id or name, any case.
	Search string
	// Status is "" (live: churned left out), "all", "paying" (customer or
	// won back) or one status: prospect, trial, customer, won_back,
	// churned, unknown.
	Status string
	Stage  string
	// Band is healthy, neutral, at_risk or unscored.
	Band string
	// Owner, Segment and Plan match the row's value; "none" matches rows
	// without one.
	Owner, Segment, Plan string
	// Renewal is "overdue", "N" (contract end within N days) or "A-B"
	// (after A days, within B).
	Renewal string
	// IDs, when set, keeps only these accounts.
	IDs []string
	// Sort is one of SortKeys; Desc reverses it (ties stay by name, id).
	Sort string
	Desc bool
	// Size is the page size; Offset the first matching row to return.
	Size   int
	Offset int
	// CSV asks for every matching row as CSV instead of a JSON page.
	CSV bool

	renewal renewalWindow
	ids     map[string]bool
}

// SortKeys are the grid's sort keys, as the page names its columns.
var SortKeys = []string{"name", "status", "stage", "health", "change", "arr", "renewal", "owner", "segment", "signals"}

// queryParams are the parameters the accounts endpoint takes.
var queryParams = []string{"q", "status", "stage", "band", "owner", "segment", "plan", "renewal", "ids", "sort", "dir",
	"page.pageSize", "page.pageToken", "format"}

var (
	statuses = []string{"all", "paying", "prospect", "trial", "customer", "won_back", "churned", "unknown"}
	bands    = []string{"healthy", "neutral", "at_risk", "unscored"}
)

// FieldError is a bad query parameter: the parameter as given and what is
// wrong with it.
type FieldError struct {
	Field, Problem string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Problem }

func badField(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Problem: fmt.Sprintf(format, args...)}
}

// ParseQuery reads the accounts endpoint's parameters. An unknown
// parameter, one given twice or a value it does not take is a FieldError
// naming it.
func ParseQuery(v url.Values) (Query, error) {
	q := Query{Sort: "name", Size: defaultGridPage}
	for k, vals := range v {
		if !slices.Contains(queryParams, k) {
			return q, badField(k, "no such parameter; this route takes %s", strings.Join(queryParams, ", "))
		}
		if len(vals) > 1 {
			return q, badField(k, "given %d times; give it once", len(vals))
		}
	}
	get := func(k string) string { return strings.TrimSpace(v.Get(k)) }
	q.Search = get("q")
	q.Stage, q.Owner, q.Segment, q.Plan = get("stage"), get("owner"), get("segment"), get("plan")
	if s := strings.ToLower(get("status")); s != "" {
		s = strings.ReplaceAll(strings.TrimPrefix(s, "account_status_"), " ", "_")
		if !slices.Contains(statuses, s) {
			return q, badField("status", "unknown value %q; it takes %s", get("status"), strings.Join(statuses, ", "))
		}
		q.Status = s
	}
	if b := strings.ToLower(get("band")); b != "" {
		b = strings.TrimPrefix(b, "band_")
		if !slices.Contains(bands, b) {
			return q, badField("band", "unknown value %q; it takes %s", get("band"), strings.Join(bands, ", "))
		}
		q.Band = b
	}
	if r := get("renewal"); r != "" {
		w, err := parseRenewal(r)
		if err != nil {
			return q, err
		}
		q.Renewal, q.renewal = r, w
	}
	if ids := get("ids"); ids != "" {
		q.ids = map[string]bool{}
		for id := range strings.SplitSeq(ids, ",") {
			if id = strings.TrimSpace(id); id != "" && !q.ids[id] {
				q.ids[id] = true
				q.IDs = append(q.IDs, id)
			}
		}
		if len(q.IDs) > maxIDs {
			return q, badField("ids", "names %d accounts; at most %d", len(q.IDs), maxIDs)
		}
	}
	if s := strings.ToLower(get("sort")); s != "" {
		if !slices.Contains(SortKeys, s) {
			return q, badField("sort", "unknown sort key %q; it takes %s", get("sort"), strings.Join(SortKeys, ", "))
		}
		q.Sort = s
	}
	switch strings.ToLower(get("dir")) {
	case "", "asc":
	case "desc":
		q.Desc = true
	default:
		return q, badField("dir", "unknown value %q; it takes asc, desc", get("dir"))
	}
	if s := get("page.pageSize"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return q, badField("page.pageSize", "must be a whole number from 0 to %d, got %q", maxGridPage, s)
		}
		if n > 0 {
			q.Size = min(n, maxGridPage)
		}
	}
	if t := get("page.pageToken"); t != "" {
		off, ok := decodeToken(t)
		if !ok {
			return q, badField("page.pageToken", "not a token this list gave; pass nextPageToken back unchanged")
		}
		q.Offset = off
	}
	switch strings.ToLower(get("format")) {
	case "", "json":
	case "csv":
		q.CSV = true
	default:
		return q, badField("format", "unknown value %q; it takes json, csv", get("format"))
	}
	return q, nil
}

// renewalWindow is a parsed renewal filter: overdue, or a contract end
// after lo days (exclusive, when open) and within hi days.
type renewalWindow struct {
	set, overdue, open bool
	lo, hi             float64
}

func parseRenewal(r string) (renewalWindow, error) {
	bad := badField("renewal", "unknown value %q; it takes overdue, N (within N days) or A-B (after A days, within B), days from 0 to %d", r, maxRenewalDays)
	if r == "overdue" {
		return renewalWindow{set: true, overdue: true}, nil
	}
	days := func(s string) (float64, bool) {
		n, err := strconv.Atoi(s)
		return float64(n), err == nil && n >= 0 && n <= maxRenewalDays
	}
	if a, b, ok := strings.Cut(r, "-"); ok {
		lo, ok1 := days(a)
		hi, ok2 := days(b)
		if !ok1 || !ok2 || lo >= hi {
			return renewalWindow{}, bad
		}
		return renewalWindow{set: true, open: true, lo: lo, hi: hi}, nil
	}
	hi, ok := days(r)
	if !ok {
		return renewalWindow{}, bad
	}
	return renewalWindow{set: true, hi: hi}, nil
}

// encodeToken and decodeToken make a page token of the offset of the next
// page's first row, in pkg/page's token format. The grid is re-filtered
// for every page, so a token stays valid as rows come and go (a row may
// then show twice or be skipped, as with any offset).
func encodeToken(offset int) string {
	return page.EncodeToken([]byte(strconv.Itoa(offset)))
}

func decodeToken(t string) (int, bool) {
	b, err := page.DecodeToken(t)
	if err != nil || len(b) == 0 {
		return 0, false
	}
	n, err := strconv.Atoi(string(b))
	return n, err == nil && n >= 0
}

// Match reports whether the row passes every filter of q at now. The
// portfolio's renewal counts use it too, so that a count and the list it
// opens cannot disagree.
func (q *Query) Match(r *Row, now time.Time) bool {
	switch q.Status {
	case "":
		if r.Status == "churned" {
			return false
		}
	case "all":
	case "paying":
		if !r.Paying() {
			return false
		}
	default:
		if r.Status != q.Status {
			return false
		}
	}
	if q.ids != nil && !q.ids[r.AccountID] {
		return false
	}
	if q.Stage != "" && r.Stage != q.Stage {
		return false
	}
	if q.Band != "" && cmp.Or(r.Band, "unscored") != q.Band {
		return false
	}
	if q.Owner != "" && cmp.Or(r.OwnerID, Unassigned) != q.Owner {
		return false
	}
	if q.Segment != "" && cmp.Or(r.Segment, Unassigned) != q.Segment {
		return false
	}
	if q.Plan != "" && cmp.Or(r.Plan, Unassigned) != q.Plan {
		return false
	}
	if w := q.renewal; w.set {
		if r.contractEnd.IsZero() {
			return false
		}
		days := r.contractEnd.Sub(now).Hours() / 24
		switch {
		case w.overdue:
			if days >= 0 {
				return false
			}
		case days < 0 || days > w.hi || (w.open && days <= w.lo):
			return false
		}
	}
	if q.Search != "" {
		s := strings.ToLower(q.Search)
		if !strings.Contains(r.idLower, s) && !strings.Contains(r.nameLower, s) {
			return false
		}
	}
	return true
}

// sortRows orders rows by q's key and direction, then by name and id.
func (q *Query) sortRows(rows []*Row) {
	key := sortKeys[q.Sort]
	slices.SortStableFunc(rows, func(a, b *Row) int {
		c := key(a, b)
		if q.Desc {
			c = -c
		}
		return cmp.Or(c, byName(a, b))
	})
}

func byName(a, b *Row) int {
	return cmp.Or(cmp.Compare(a.nameLower, b.nameLower), cmp.Compare(a.AccountID, b.AccountID))
}

// last makes an empty value sort after every other, as "~" does in the
// page's own comparisons.
func last(s string) string { return cmp.Or(s, "\U0010FFFF") }

var sortKeys = map[string]func(a, b *Row) int{
	"name":   func(a, b *Row) int { return 0 },
	"status": func(a, b *Row) int { return cmp.Compare(a.Status, b.Status) },
	"stage":  func(a, b *Row) int { return cmp.Compare(last(a.Stage), last(b.Stage)) },
	"health": func(a, b *Row) int { return cmp.Compare(scoreKey(a), scoreKey(b)) },
	"change": func(a, b *Row) int { return cmp.Compare(changeKey(a), changeKey(b)) },
	"arr":    func(a, b *Row) int { return cmp.Compare(a.ARR, b.ARR) },
	"renewal": func(a, b *Row) int {
		return cmp.Compare(renewalKey(a), renewalKey(b))
	},
	"owner":   func(a, b *Row) int { return cmp.Compare(last(a.ownerLower), last(b.ownerLower)) },
	"segment": func(a, b *Row) int { return cmp.Compare(last(a.Segment), last(b.Segment)) },
	"signals": func(a, b *Row) int { return cmp.Compare(a.OpenSignals, b.OpenSignals) },
}

// scoreKey puts unscored rows below every score; changeKey likewise.
func scoreKey(r *Row) float64 {
	if r.Band == "" {
		return -1
	}
	return r.Score
}

func changeKey(r *Row) float64 {
	if r.Band == "" {
		return math.Inf(-1)
	}
	return r.ScoreChange30d
}

// renewalKey puts rows without a contract end after every date.
func renewalKey(r *Row) int64 {
	if r.contractEnd.IsZero() {
		return math.MaxInt64
	}
	return r.contractEnd.UnixNano()
}
