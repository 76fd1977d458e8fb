package dashboard

import (
	"cmp"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/reflect/protoreflect"

	healthv1 "github.com/cairn-dev/cairn/gen/cairn/health/v1"
	routingv1 "github.com/cairn-dev/cairn/gen/cairn/routing/v1"
	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
	"github.com/cairn-dev/cairn/pkg/domain/account"
	"github.com/cairn-dev/cairn/services/gateway/internal/web"
)

// Inputs are the service answers one portfolio is built from: every
// listed account of the journey (live and churned), every scored account of
// health, the account traits, and routing's owners and assignments.
type Inputs struct {
	Journey     []*stagesv1.AccountSummary
	Health      []*healthv1.AccountRow
	Traits      map[string]map[string]string
	Owners      []*routingv1.Owner
	Assignments []*routingv1.Assignment
}

// Row is one account as the dashboard lists it: the journey's status and
// stage, health's score, ARR and renewal, and the owner routing assigned.
type Row struct {
	AccountID      string  `json:"accountId"`
	Name           string  `json:"name"`
	Status         string  `json:"status"` // prospect, trial, customer, won_back, churned, unknown
	Stage          string  `json:"stage"`
	Segment        string  `json:"segment"`
	Plan           string  `json:"plan"`
	Band           string  `json:"band"` // healthy, neutral, at_risk, or "" when not scored
	Score          float64 `json:"score"`
	ScoreChange30d float64 `json:"scoreChange30d"`
	ARR            float64 `json:"arr"`
	ContractEnd    string  `json:"contractEnd"` // RFC 3339, or "" when unknown
	RenewalPlay    string  `json:"renewalPlay"`
	OpenSignals    int32   `json:"openSignals"`
	OwnerID        string  `json:"ownerId"`
	OwnerName      string  `json:"ownerName"`
	OwnerTeam      string  `json:"ownerTeam"` // csm, ae, sdr, implementation, manager

	// What the grid filters and sorts by, worked out once per snapshot.
	contractEnd                    time.Time
	idLower, nameLower, ownerLower string
}

// Paying reports whether the account is a live paying customer: the
// accounts health scores and every portfolio figure counts.
func (r Row) Paying() bool { return r.Status == "customer" || r.Status == "won_back" }

// Group is one slice of the paying accounts: a health band, an owner, a
// segment or a plan.
type Group struct {
	Key       string  `json:"key"`
	Label     string  `json:"label"`
	Accounts  int     `json:"accounts"`
	ARR       float64 `json:"arr"`
	Healthy   int     `json:"healthy"`
	Neutral   int     `json:"neutral"`
	AtRisk    int     `json:"atRisk"`
	Unscored  int     `json:"unscored"`
	AtRiskARR float64 `json:"atRiskArr"`
	// AvgScore is the mean score of the group's scored accounts.
	AvgScore float64 `json:"avgScore"`
	scored   int
	sum      float64
}

// Portfolio is the CS lead's view of the paying accounts. Every count is
// of Rows with Paying() true and the group's key in the named field, so the
// dashboard can list exactly the accounts behind each figure.
type Portfolio struct {
	Customers int     `json:"customers"`
	ARR       float64 `json:"arr"`
	AtRiskARR float64 `json:"atRiskArr"`
	// Bands is healthy, neutral, at_risk and unscored, in that order.
	Bands []*Group `json:"bands"`
	// ByOwner, BySegment and ByPlan are ordered by ARR, largest first; an
	// empty key is "none" (no owner, segment or plan known).
	ByOwner   []*Group `json:"byOwner"`
	BySegment []*Group `json:"bySegment"`
	ByPlan    []*Group `json:"byPlan"`
	// Renewals are the paying accounts by contract end: overdue, within
	// 30 and within 90 days (the accounts endpoint fills them at its now).
	Renewals []Renewal `json:"renewals,omitempty"`
}

// Report is the joined account report, every row and the portfolio, that
// GET /v1/dashboard/accounts filters, sorts and pages (Page).
type Report struct {
	AsOf      time.Time `json:"asOf"`
	Rows      []Row     `json:"rows"`
	Portfolio Portfolio `json:"portfolio"`
}

// Unassigned is the key of the accounts that have no owner.
const Unassigned = "none"

// Build joins the inputs into one row per account and sums the portfolio.
func Build(asOf time.Time, in Inputs) Report {
	owners := make(map[string]*routingv1.Owner, len(in.Owners))
	for _, o := range in.Owners {
		owners[o.GetOwnerId()] = o
	}
	// The owner rule is shared with the CLI (account.Owner): the traits,
	// else the latest assignment per team, as routing's directory has it.
	assigned := account.RoutingAssignments(in.Owners, in.Assignments)

	rows := make([]Row, 0, len(in.Journey))
	index := map[string]int{}
	for _, j := range in.Journey {
		if _, dup := index[j.GetAccountId()]; dup {
			continue
		}
		index[j.GetAccountId()] = len(rows)
		rows = append(rows, Row{
			AccountID: j.GetAccountId(), Name: j.GetName(), Status: cmp.Or(shortName(j.GetStatus()), "unknown"),
			Stage: j.GetStage(), Segment: j.GetSegment(), OpenSignals: j.GetOpenSignals(),
		})
	}
	for _, h := range in.Health {
		i, ok := index[h.GetAccountId()]
		if !ok {
			// Health scores paying accounts only, so one the journey did not
			// list (not placed in a stage yet) is a customer.
			i = len(rows)
			index[h.GetAccountId()] = i
			rows = append(rows, Row{AccountID: h.GetAccountId(), Status: "customer", Stage: h.GetStage()})
		}
		r := &rows[i]
		r.Band = shortName(h.GetBand())
		r.Score = h.GetScore()
		r.ScoreChange30d = h.GetScoreChange_30D()
		r.ARR = h.GetArr()
		if ce := h.GetContractEnd(); ce != nil && ce.AsTime().Year() > 1971 {
			r.contractEnd = ce.AsTime().UTC()
			r.ContractEnd = r.contractEnd.Format(time.RFC3339)
		}
		r.RenewalPlay = h.GetRenewalPlay()
		r.OpenSignals = max(r.OpenSignals, h.GetOpenSignals())
	}
	for i := range rows {
		r := &rows[i]
		t := in.Traits[r.AccountID]
		if r.Name == "" {
			r.Name = cmp.Or(t["name"], r.AccountID)
		}
		r.Segment = cmp.Or(r.Segment, t["segment"])
		r.Plan = t["plan"]
		r.OwnerID = account.Owner(t, assigned[r.AccountID])
		if o, ok := owners[r.OwnerID]; ok {
			r.OwnerName = o.GetName()
			r.OwnerTeam = shortName(o.GetTeam())
		}
		if r.OwnerName == "" {
			r.OwnerName = r.OwnerID
		}
		r.idLower, r.nameLower, r.ownerLower = strings.ToLower(r.AccountID), strings.ToLower(r.Name), strings.ToLower(r.OwnerName)
	}
	slices.SortFunc(rows, func(a, b Row) int { return byName(&a, &b) })
	return Report{AsOf: asOf.UTC(), Rows: rows, Portfolio: Summarize(rows)}
}

// Summarize sums the paying rows by band, owner, segment and plan.
func Summarize(rows []Row) Portfolio {
	p := Portfolio{}
	bands := map[string]*Group{}
	for _, k := range []string{"healthy", "neutral", "at_risk", "unscored"} {
		g := &Group{Key: k, Label: strings.ReplaceAll(k, "_", " ")}
		bands[k] = g
		p.Bands = append(p.Bands, g)
	}
	owners, segments, plans := map[string]*Group{}, map[string]*Group{}, map[string]*Group{}
	group := func(m map[string]*Group, key, label string) *Group {
		if key == "" {
			key, label = Unassigned, ""
		}
		g, ok := m[key]
		if !ok {
			g = &Group{Key: key, Label: cmp.Or(label, key)}
			m[key] = g
		}
		return g
	}
	for _, r := range rows {
		if !r.Paying() {
			continue
		}
		p.Customers++
		p.ARR += r.ARR
		if r.Band == "at_risk" {
			p.AtRiskARR += r.ARR
		}
		for _, g := range []*Group{
			bands[cmp.Or(r.Band, "unscored")],
			group(owners, r.OwnerID, r.OwnerName),
			group(segments, r.Segment, ""),
			group(plans, r.Plan, ""),
		} {
			g.add(r)
		}
	}
	for _, g := range p.Bands {
		g.finish()
	}
	p.ByOwner, p.BySegment, p.ByPlan = sorted(owners), sorted(segments), sorted(plans)
	return p
}

func (g *Group) add(r Row) {
	g.Accounts++
	g.ARR += r.ARR
	switch r.Band {
	case "healthy":
		g.Healthy++
	case "neutral":
		g.Neutral++
	case "at_risk":
		g.AtRisk++
		g.AtRiskARR += r.ARR
	default:
		g.Unscored++
		return
	}
	g.scored++
	g.sum += r.Score
}

func (g *Group) finish() {
	if g.scored > 0 {
		g.AvgScore = g.sum / float64(g.scored)
	}
}

// sorted lists the groups by ARR, largest first, then by key; "none" last.
func sorted(m map[string]*Group) []*Group {
	out := make([]*Group, 0, len(m))
	for _, g := range m {
		g.finish()
		out = append(out, g)
	}
	slices.SortFunc(out, func(a, b *Group) int {
		if (a.Key == Unassigned) != (b.Key == Unassigned) {
			if a.Key == Unassigned {
				return 1
			}
			return -1
		}
		return cmp.Or(cmp.Compare(b.ARR, a.ARR), cmp.Compare(b.Accounts, a.Accounts), cmp.Compare(a.Key, b.Key))
	})
	return out
}

// shortName is an enum value's short form, as the REST API reads and writes
// it (web.ShortName: "at_risk" for BAND_AT_RISK, "won_back" for
// ACCOUNT_STATUS_WON_BACK), or "" when the value is unset or unknown.
func shortName(e protoreflect.Enum) string {
	if e.Number() == 0 {
		return ""
	}
	ev := e.Descriptor().Values().ByNumber(e.Number())
	if ev == nil {
		return ""
	}
	return web.ShortName(ev)
}
