package cli

import (
	"context"
	"flag"
	"fmt"
	"sort"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	healthv1 "github.com/cairn-dev/cairn/gen/cairn/health/v1"
	routingv1 "github.com/cairn-dev/cairn/gen/cairn/routing/v1"
	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
	"github.com/cairn-dev/cairn/pkg/domain/account"
)

// listPageSize is the page size list commands ask for; the services cap
// pages at 1000.
const listPageSize = 1000

// pages calls fetch with successive page tokens until the last page, or
// until want items were collected (want 0: all). fetch returns how many
// items the page added and the next token.
func pages(want int, fetch func(size int, token string) (added int, next string, err error)) error {
	token, got := "", 0
	for {
		size := listPageSize
		if want > 0 && want-got < size {
			size = want - got
		}
		n, next, err := fetch(size, token)
		if err != nil {
			return err
		}
		got += n
		if next == "" || (want > 0 && got >= want) {
			return nil
		}
		token = next
	}
}

var formatsWithCSV = []string{"table", "json", "csv"}

// accountRow is one row of `cairn accounts`: the stages summary joined with
// the health row, when health scores the account.
type accountRow struct {
	AccountID    string   `json:"accountId"`
	Name         string   `json:"name,omitempty"`
	Stage        string   `json:"stage,omitempty"`
	Status       string   `json:"status,omitempty"`
	StatusSince  string   `json:"statusSince,omitempty"`
	Owner        string   `json:"owner,omitempty"`
	Segment      string   `json:"segment,omitempty"`
	Score        *float64 `json:"score,omitempty"`
	Band         string   `json:"band,omitempty"`
	ARR          *float64 `json:"arr,omitempty"`
	ContractEnd  string   `json:"contractEnd,omitempty"`
	RenewalPlay  string   `json:"renewalPlay,omitempty"`
	OpenSignals  int32    `json:"openSignals"`
	ScoreChange  *float64 `json:"scoreChange30d,omitempty"`
	healthListed bool
}

func parseStatuses(list string) ([]commonv1.AccountStatus, error) {
	var out []commonv1.AccountStatus
	for _, s := range strings.Split(list, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		v, ok := commonv1.AccountStatus_value["ACCOUNT_STATUS_"+upper(strings.ReplaceAll(s, "-", "_"))]
		if !ok || v == 0 {
			return nil, usagef("unknown --status %q: want prospect, trial, customer, churned or won_back", s)
		}
		out = append(out, commonv1.AccountStatus(v))
	}
	return out, nil
}

func parseBand(s string) (healthv1.Band, error) {
	if s == "" {
		return healthv1.Band_BAND_UNSPECIFIED, nil
	}
	v, ok := healthv1.Band_value["BAND_"+upper(strings.ReplaceAll(s, "-", "_"))]
	if !ok || v == 0 {
		return 0, usagef("unknown --band %q: want healthy, neutral or at_risk", s)
	}
	return healthv1.Band(v), nil
}

func runAccounts(ctx context.Context, env *Env, args []string) error {
	var stage, statusList, band, owner, segment, signal, journeyID string
	var renewal, limit int
	c, _, ctx, cancel, err := queryCmd(ctx, env, args, cmdSpec{
		name:     "accounts",
		usage:    "accounts [--stage S] [--status customer,trial] [--band healthy|neutral|at_risk] [--owner O] [--segment S] [--renewal-window 120|90|60|30] [--limit N] [-o table|json|csv]",
		services: []string{"stages", "health", "routing"}, formats: formatsWithCSV,
		extra: func(fs *flag.FlagSet) {
			fs.StringVar(&stage, "stage", "", "only accounts in this journey stage")
			fs.StringVar(&statusList, "status", "", "only these statuses, comma-separated: prospect, trial, customer, churned, won_back (default: every status but churned)")
			fs.StringVar(&band, "band", "", "only accounts in this health band: healthy, neutral or at_risk")
			fs.StringVar(&owner, "owner", "", "only accounts of this owner (none: accounts without one), as the dashboard assigns owners")
			fs.StringVar(&segment, "segment", "", "only accounts of this segment")
			fs.StringVar(&signal, "signal", "", "only accounts with an open stage signal of this reason")
			fs.IntVar(&renewal, "renewal-window", 0, "only accounts whose renewal is within this many days: 120, 90, 60 or 30")
			fs.StringVar(&journeyID, "journey", "", "journey id (default: the workspace's default journey)")
			fs.IntVar(&limit, "limit", 0, "print at most this many accounts (default: all; every page is fetched)")
		},
	})
	if err != nil {
		return err
	}
	defer cancel()
	statuses, err := parseStatuses(statusList)
	if err != nil {
		return err
	}
	b, err := parseBand(band)
	if err != nil {
		return err
	}
	switch renewal {
	case 0, 30, 60, 90, 120:
	default:
		return usagef("--renewal-window must be 120, 90, 60 or 30")
	}
	if limit < 0 {
		return usagef("--limit must not be negative")
	}
	stagesConn, err := c.dial("stages")
	if err != nil {
		return err
	}
	defer stagesConn.Close()
	healthConn, err := c.dial("health")
	if err != nil {
		return err
	}
	defer healthConn.Close()

	// Health first: its filters (band, renewal window) narrow the list, and
	// its rows carry the score of every account it scores.
	healthFiltered := b != healthv1.Band_BAND_UNSPECIFIED || renewal != 0
	// Owners as the dashboard shows them (account.Owner): the traits stages
	// lists, else routing's assignments. Without routing, only the traits.
	assigned, rerr := routingAssignments(ctx, c)
	if rerr != nil {
		if owner != "" {
			return fmt.Errorf("list owners' assignments: %w", rerr)
		}
		fmt.Fprintf(env.Stderr, "warning: routing: %s; owners come from the account traits alone\n", describe(rerr))
	}

	scored := map[string]*healthv1.AccountRow{}
	hc := healthv1.NewHealthServiceClient(healthConn)
	err = pages(0, func(size int, token string) (int, string, error) {
		resp, err := hc.ListAccounts(ctx, &healthv1.ListAccountsRequest{Workspace: c.workspace, Band: b, RenewalWindow: int32(renewal), Page: pageRequest(size, token)})
		if err != nil {
			return 0, "", err
		}
		for _, r := range resp.GetAccounts() {
			scored[r.GetAccountId()] = r
		}
		return len(resp.GetAccounts()), resp.GetPage().GetNextPageToken(), nil
	})
	if err != nil {
		if healthFiltered {
			return fmt.Errorf("list health accounts: %w", err)
		}
		fmt.Fprintf(env.Stderr, "warning: health: %s; scores are left out\n", describe(err))
	}

	var rows []*accountRow
	sc := stagesv1.NewStagesServiceClient(stagesConn)
	want := limit
	if healthFiltered || owner != "" {
		want = 0 // the stages pages hold accounts the health or owner filter drops
	}
	err = pages(want, func(size int, token string) (int, string, error) {
		// Not stages' owner filter: it knows the traits, not routing's
		// assignments.
		resp, err := sc.ListAccounts(ctx, &stagesv1.ListAccountsRequest{Workspace: c.workspace, JourneyId: journeyID, Stage: stage, Signal: signal, Segment: segment, Status: statuses, Page: pageRequest(size, token)})
		if err != nil {
			return 0, "", err
		}
		for _, a := range resp.GetAccounts() {
			h, ok := scored[a.GetAccountId()]
			if healthFiltered && !ok {
				continue
			}
			r := accountRowOf(a, h, assigned[a.GetAccountId()])
			if owner != "" && r.Owner != owner && (owner != noOwner || r.Owner != "") {
				continue
			}
			rows = append(rows, r)
		}
		return len(resp.GetAccounts()), resp.GetPage().GetNextPageToken(), nil
	})
	if err != nil {
		return fmt.Errorf("list accounts: %w", err)
	}
	if limit > 0 && len(rows) > limit {
		rows = rows[:limit]
	}
	if c.output == "json" {
		if rows == nil {
			rows = []*accountRow{}
		}
		return writeJSON(env.Stdout, map[string]any{"accounts": rows})
	}
	g := &grid{header: []string{"ACCOUNT", "NAME", "STAGE", "STATUS", "OWNER", "SEGMENT", "SCORE", "BAND", "ARR", "CONTRACT END", "SIGNALS"}}
	for _, r := range rows {
		score, arr := "-", "-"
		if r.Score != nil {
			score = num(*r.Score, true)
		}
		if r.ARR != nil {
			arr = fmt.Sprintf("%.0f", *r.ARR)
		}
		g.add(r.AccountID, dash(r.Name), dash(r.Stage), dash(r.Status), dash(r.Owner), dash(r.Segment), score, dash(r.Band), arr, dash(r.ContractEnd), r.OpenSignals)
	}
	return g.print(env.Stdout, c.output)
}

// noOwner is the --owner value of the accounts without one, as the
// dashboard's owner filter names them.
const noOwner = "none"

// routingAssignments reads routing's owner directory and every assignment,
// grouped by account for account.Owner.
func routingAssignments(ctx context.Context, c *connFlags) (map[string][]account.Assignment, error) {
	rconn, err := c.dial("routing")
	if err != nil {
		return nil, err
	}
	defer rconn.Close()
	rc := routingv1.NewRoutingServiceClient(rconn)
	var owners []*routingv1.Owner
	err = pages(0, func(size int, token string) (int, string, error) {
		r, err := rc.ListOwners(ctx, &routingv1.ListOwnersRequest{Workspace: c.workspace, Page: pageRequest(size, token)})
		if err != nil {
			return 0, "", err
		}
		owners = append(owners, r.GetOwners()...)
		return len(r.GetOwners()), r.GetPage().GetNextPageToken(), nil
	})
	if err != nil {
		return nil, err
	}
	var as []*routingv1.Assignment
	err = pages(0, func(size int, token string) (int, string, error) {
		r, err := rc.ListAssignments(ctx, &routingv1.ListAssignmentsRequest{Workspace: c.workspace, Page: pageRequest(size, token)})
		if err != nil {
			return 0, "", err
		}
		as = append(as, r.GetAssignments()...)
		return len(r.GetAssignments()), r.GetPage().GetNextPageToken(), nil
	})
	if err != nil {
		return nil, err
	}
	return account.RoutingAssignments(owners, as), nil
}

func accountRowOf(a *stagesv1.AccountSummary, h *healthv1.AccountRow, assigned []account.Assignment) *accountRow {
	r := &accountRow{AccountID: a.GetAccountId(), Name: a.GetName(), Stage: a.GetStage(), Owner: account.Owner(a.GetTraits(), assigned), Segment: a.GetSegment(), OpenSignals: a.GetOpenSignals()}
	if a.GetStatus() != commonv1.AccountStatus_ACCOUNT_STATUS_UNSPECIFIED {
		r.Status = enumName(a.GetStatus(), "ACCOUNT_STATUS_")
		r.StatusSince = tsDay(a.GetStatusSince())
	}
	if h != nil {
		score, arr, change := h.GetScore(), h.GetArr(), h.GetScoreChange_30D()
		r.Score, r.ARR, r.ScoreChange = &score, &arr, &change
		r.Band = enumName(h.GetBand(), "BAND_")
		r.ContractEnd = tsDay(h.GetContractEnd())
		r.RenewalPlay = h.GetRenewalPlay()
		r.OpenSignals += h.GetOpenSignals()
	}
	return r
}

// openStates are the assignment states of a handoff someone still has to
// act on.
var openStates = map[routingv1.AssignmentState]bool{
	routingv1.AssignmentState_ASSIGNMENT_STATE_OPEN:       true,
	routingv1.AssignmentState_ASSIGNMENT_STATE_TOUCHED:    true,
	routingv1.AssignmentState_ASSIGNMENT_STATE_PAUSED:     true,
	routingv1.AssignmentState_ASSIGNMENT_STATE_BREACHED:   true,
	routingv1.AssignmentState_ASSIGNMENT_STATE_UNASSIGNED: true,
}

func runAccount(ctx context.Context, env *Env, args []string) error {
	var journeyID string
	c, pos, ctx, cancel, err := queryCmd(ctx, env, args, cmdSpec{
		name:     "account",
		usage:    "account NAME|ID [--journey ID] [-o table|json|csv]",
		services: []string{"stages", "health", "routing"}, formats: formatsWithCSV, npos: 1,
		extra: func(fs *flag.FlagSet) {
			fs.StringVar(&journeyID, "journey", "", "journey id (default: the workspace's default journey)")
		},
	})
	if err != nil {
		return err
	}
	defer cancel()
	conns := map[string]interface{ Close() error }{}
	defer func() {
		for _, cc := range conns {
			cc.Close()
		}
	}()
	stagesConn, err := c.dial("stages")
	if err != nil {
		return err
	}
	conns["stages"] = stagesConn
	healthConn, err := c.dial("health")
	if err != nil {
		return err
	}
	conns["health"] = healthConn
	routingConn, err := c.dial("routing")
	if err != nil {
		return err
	}
	conns["routing"] = routingConn

	sc := stagesv1.NewStagesServiceClient(stagesConn)
	id := pos[0]
	jr, err := sc.GetAccountJourney(ctx, &stagesv1.GetAccountJourneyRequest{Workspace: c.workspace, AccountId: id, JourneyId: journeyID})
	if status.Code(err) == codes.NotFound {
		// Not an id: perhaps the account's name.
		byName, ferr := findAccountByName(ctx, sc, c.workspace, journeyID, id)
		if ferr != nil {
			return ferr
		}
		if byName == "" {
			return fmt.Errorf("account %q: %w", id, err)
		}
		id = byName
		jr, err = sc.GetAccountJourney(ctx, &stagesv1.GetAccountJourneyRequest{Workspace: c.workspace, AccountId: id, JourneyId: journeyID})
	}
	if err != nil {
		return fmt.Errorf("get journey of %q: %w", id, err)
	}
	hr, herr := healthv1.NewHealthServiceClient(healthConn).GetAccountHealth(ctx, &healthv1.GetAccountHealthRequest{Workspace: c.workspace, AccountId: id})
	if herr != nil && status.Code(herr) != codes.NotFound {
		fmt.Fprintf(env.Stderr, "warning: health: %s\n", describe(herr))
	}
	var all, handoffs []*routingv1.Assignment
	rc := routingv1.NewRoutingServiceClient(routingConn)
	rerr := pages(0, func(size int, token string) (int, string, error) {
		resp, err := rc.ListAssignments(ctx, &routingv1.ListAssignmentsRequest{Workspace: c.workspace, AccountId: id, Page: pageRequest(size, token)})
		if err != nil {
			return 0, "", err
		}
		all = append(all, resp.GetAssignments()...)
		for _, a := range resp.GetAssignments() {
			if openStates[a.GetState()] {
				handoffs = append(handoffs, a)
			}
		}
		return len(resp.GetAssignments()), resp.GetPage().GetNextPageToken(), nil
	})
	var owners []*routingv1.Owner
	if rerr == nil {
		rerr = pages(0, func(size int, token string) (int, string, error) {
			resp, err := rc.ListOwners(ctx, &routingv1.ListOwnersRequest{Workspace: c.workspace, Page: pageRequest(size, token)})
			if err != nil {
				return 0, "", err
			}
			owners = append(owners, resp.GetOwners()...)
			return len(resp.GetOwners()), resp.GetPage().GetNextPageToken(), nil
		})
	}
	if rerr != nil {
		fmt.Fprintf(env.Stderr, "warning: routing: %s\n", describe(rerr))
	}

	sort.SliceStable(handoffs, func(a, b int) bool {
		return handoffs[a].GetCreatedAt().AsTime().Before(handoffs[b].GetCreatedAt().AsTime())
	})
	j, h := jr.GetJourney(), hr.GetHealth()
	// The owner as the dashboard and `cairn accounts` show it: the one rule
	// of account.Owner over the traits and every assignment of the account.
	owner := account.Owner(j.GetTraits(), account.RoutingAssignments(owners, all)[id])
	switch c.output {
	case "json":
		out := map[string]any{"accountId": id, "owner": owner, "journey": stableJSON(j), "openHandoffs": []any{}}
		if h != nil {
			out["health"] = stableJSON(h)
		}
		hs := make([]any, len(handoffs))
		for i, a := range handoffs {
			hs[i] = stableJSON(a)
		}
		out["openHandoffs"] = hs
		return writeJSON(env.Stdout, out)
	case "csv":
		// One row per fact, so that a spreadsheet gets everything.
		g := &grid{header: []string{"SECTION", "NAME", "VALUE", "DETAIL"}}
		g.add("account", "id", id, "")
		g.add("account", "name", dash(j.GetTraits()["name"]), "")
		g.add("account", "status", statusWord(j.GetLifecycle()), "")
		g.add("account", "owner", dash(owner), "")
		g.add("journey", "stage", dash(j.GetStage()), fmt.Sprintf("%s v%d since %s", j.GetJourneyId(), j.GetVersion(), ts(j.GetEnteredAt())))
		for _, cr := range j.GetExitCriteria() {
			g.add("criterion", cr.GetName(), metWord(cr), cr.GetExpr())
		}
		if h != nil && h.GetScored() {
			g.add("health", "score", fmt.Sprintf("%.1f", h.GetScore()), enumName(h.GetBand(), "BAND_"))
			for _, cs := range h.GetComponents() {
				g.add("health reason", cs.GetName(), fmt.Sprintf("%.1f", cs.GetContribution()), cs.GetExplanation())
			}
		}
		for _, a := range handoffs {
			g.add("handoff", a.GetAssignmentId(), enumName(a.GetState(), "ASSIGNMENT_STATE_"), enumName(a.GetType(), "HANDOFF_TYPE_")+" "+dash(a.GetOwnerId()))
		}
		return g.print(env.Stdout, "csv")
	}
	w := env.Stdout
	fmt.Fprintf(w, "Account:  %s", id)
	if n := j.GetTraits()["name"]; n != "" {
		fmt.Fprintf(w, " (%s)", n)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "Status:   %s\n", lifecycleText(j.GetLifecycle()))
	fmt.Fprintf(w, "Owner:    %s\n", dash(owner))
	fmt.Fprintf(w, "Stage:    %s (journey %s v%d, since %s)\n", dash(j.GetStage()), j.GetJourneyId(), j.GetVersion(), ts(j.GetEnteredAt()))
	switch {
	case h == nil:
		fmt.Fprintln(w, "Health:   -")
	case h.GetScored():
		fmt.Fprintf(w, "Health:   %.1f (%s), 30d %+.1f, as of %s\n", h.GetScore(), enumName(h.GetBand(), "BAND_"), h.GetTrend_30D(), ts(h.GetAsOf()))
	default:
		fmt.Fprintln(w, "Health:   not scored: customer health is for paying customers")
	}
	var met, missing []*stagesv1.CriterionResult
	for _, cr := range j.GetExitCriteria() {
		if cr.GetMet() {
			met = append(met, cr)
		} else {
			missing = append(missing, cr)
		}
	}
	if len(met)+len(missing) > 0 {
		fmt.Fprintf(w, "\nTo finish %s: %d of %d criteria met\n", j.GetStage(), len(met), len(met)+len(missing))
		t := newTable(w, "", "CRITERION", "EXPRESSION")
		for _, cr := range append(met, missing...) {
			t.row(check(cr), cr.GetName(), cr.GetExpr())
		}
		if err := t.flush(); err != nil {
			return err
		}
	}
	if h != nil && h.GetScored() && len(h.GetComponents()) > 0 {
		fmt.Fprintln(w, "\nHealth reasons:")
		t := newTable(w, "COMPONENT", "CONTRIBUTION", "EXPLANATION")
		for _, cs := range h.GetComponents() {
			expl := cs.GetExplanation()
			if cs.GetError() != "" {
				expl = "error: " + cs.GetError()
			}
			t.row(cs.GetName(), fmt.Sprintf("%.1f", cs.GetContribution()), dash(expl))
		}
		if err := t.flush(); err != nil {
			return err
		}
	}
	fmt.Fprintln(w, "\nOpen handoffs:")
	if len(handoffs) == 0 {
		fmt.Fprintln(w, "  none")
		return nil
	}
	return assignmentGrid(handoffs).print(w, "table")
}

func metWord(cr *stagesv1.CriterionResult) string {
	switch {
	case cr.GetError() != "":
		return "error"
	case cr.GetMet():
		return "met"
	default:
		return "missing"
	}
}

func statusWord(l *commonv1.Lifecycle) string {
	if l == nil || l.GetStatus() == commonv1.AccountStatus_ACCOUNT_STATUS_UNSPECIFIED {
		return "-"
	}
	return enumName(l.GetStatus(), "ACCOUNT_STATUS_")
}

// findAccountByName returns the id of the one account named name
// (case-insensitively), "" when none is, and an error when several are.
func findAccountByName(ctx context.Context, sc stagesv1.StagesServiceClient, ws, journeyID, name string) (string, error) {
	var ids []string
	all := []commonv1.AccountStatus{
		commonv1.AccountStatus_ACCOUNT_STATUS_PROSPECT, commonv1.AccountStatus_ACCOUNT_STATUS_TRIAL, commonv1.AccountStatus_ACCOUNT_STATUS_CUSTOMER,
		commonv1.AccountStatus_ACCOUNT_STATUS_CHURNED, commonv1.AccountStatus_ACCOUNT_STATUS_WON_BACK,
	}
	err := pages(0, func(size int, token string) (int, string, error) {
		resp, err := sc.ListAccounts(ctx, &stagesv1.ListAccountsRequest{Workspace: ws, JourneyId: journeyID, Status: all, Page: pageRequest(size, token)})
		if err != nil {
			return 0, "", err
		}
		for _, a := range resp.GetAccounts() {
			if strings.EqualFold(a.GetName(), name) {
				ids = append(ids, a.GetAccountId())
			}
		}
		return len(resp.GetAccounts()), resp.GetPage().GetNextPageToken(), nil
	})
	if err != nil {
		return "", fmt.Errorf("look up account named %q: %w", name, err)
	}
	switch len(ids) {
	case 0:
		return "", nil
	case 1:
		return ids[0], nil
	}
	return "", fmt.Errorf("%d accounts are named %q (%s): give an id", len(ids), name, strings.Join(ids, ", "))
}

func runOwners(ctx context.Context, env *Env, args []string) error {
	var team string
	c, _, ctx, cancel, err := queryCmd(ctx, env, args, cmdSpec{
		name:     "owners",
		usage:    "owners [--team sdr|ae|csm|implementation|manager] [-o table|json|csv]",
		services: []string{"routing"}, formats: formatsWithCSV,
		extra: func(fs *flag.FlagSet) {
			fs.StringVar(&team, "team", "", "only owners of this team: sdr, ae, csm, implementation or manager")
		},
	})
	if err != nil {
		return err
	}
	defer cancel()
	var tm routingv1.Team
	if team != "" {
		v, ok := routingv1.Team_value["TEAM_"+upper(team)]
		if !ok || v == 0 {
			return usagef("unknown --team %q", team)
		}
		tm = routingv1.Team(v)
	}
	conn, err := c.dial("routing")
	if err != nil {
		return err
	}
	defer conn.Close()
	rc := routingv1.NewRoutingServiceClient(conn)
	resp := &routingv1.ListOwnersResponse{}
	err = pages(0, func(size int, token string) (int, string, error) {
		r, err := rc.ListOwners(ctx, &routingv1.ListOwnersRequest{Workspace: c.workspace, Team: tm, Page: pageRequest(size, token)})
		if err != nil {
			return 0, "", err
		}
		resp.Owners = append(resp.Owners, r.GetOwners()...)
		return len(r.GetOwners()), r.GetPage().GetNextPageToken(), nil
	})
	if err != nil {
		return fmt.Errorf("list owners: %w", err)
	}
	load := map[string]*routingv1.OwnerLoad{}
	err = pages(0, func(size int, token string) (int, string, error) {
		r, err := rc.ListOwnerLoad(ctx, &routingv1.ListOwnerLoadRequest{Workspace: c.workspace, Page: pageRequest(size, token)})
		if err != nil {
			return 0, "", err
		}
		for _, l := range r.GetOwners() {
			load[l.GetOwnerId()] = l
		}
		return len(r.GetOwners()), r.GetPage().GetNextPageToken(), nil
	})
	if err != nil {
		fmt.Fprintf(env.Stderr, "warning: owner load: %s\n", describe(err))
	}
	if c.output == "json" {
		return c.printJSON(resp)
	}
	g := &grid{header: []string{"OWNER", "NAME", "TEAM", "EMAIL", "TIME ZONE", "CAPACITY", "OPEN", "BREACHED", "MANAGER"}}
	for _, o := range resp.GetOwners() {
		capacity := "unlimited"
		if o.GetCapacity() > 0 {
			capacity = fmt.Sprint(o.GetCapacity())
		}
		open, breached := "-", "-"
		if l := load[o.GetOwnerId()]; l != nil {
			open, breached = fmt.Sprint(l.GetOpen()), fmt.Sprint(l.GetBreached())
		}
		g.add(o.GetOwnerId(), dash(o.GetName()), enumName(o.GetTeam(), "TEAM_"), dash(o.GetEmail()), dash(o.GetTimeZone()), capacity, open, breached, dash(o.GetManagerId()))
	}
	return g.print(env.Stdout, c.output)
}

func runAssignments(ctx context.Context, env *Env, args []string) error {
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		return assignmentAction(ctx, env, args[0], args[1:])
	}
	var owner, state, typ, account string
	var limit int
	var queue bool
	c, _, ctx, cancel, err := queryCmd(ctx, env, args, cmdSpec{
		name:     "assignments",
		usage:    assignmentsUsage,
		services: []string{"routing"}, formats: formatsWithCSV,
		extra: func(fs *flag.FlagSet) {
			fs.StringVar(&owner, "owner", "", "only this owner")
			fs.StringVar(&state, "state", "", "only this state")
			fs.StringVar(&typ, "type", "", "only this handoff type")
			fs.StringVar(&account, "account", "", "only this account")
			fs.BoolVar(&queue, "queue", false, "the open queue: open and untouched breached assignments, most overdue first (not with --state)")
			fs.IntVar(&limit, "limit", 0, "print at most this many assignments (default: all; every page is fetched)")
		},
	})
	if err != nil {
		return err
	}
	defer cancel()
	req := &routingv1.ListAssignmentsRequest{Workspace: c.workspace, OwnerId: owner, AccountId: account, OpenQueue: queue}
	if state != "" {
		if queue {
			return usagef("--queue and --state do not combine")
		}
		v, ok := routingv1.AssignmentState_value["ASSIGNMENT_STATE_"+upper(state)]
		if !ok || v == 0 {
			return usagef("unknown --state %q", state)
		}
		req.State = routingv1.AssignmentState(v)
	}
	if typ != "" {
		v, ok := routingv1.HandoffType_value["HANDOFF_TYPE_"+upper(typ)]
		if !ok || v == 0 {
			return usagef("unknown --type %q", typ)
		}
		req.Type = routingv1.HandoffType(v)
	}
	if limit < 0 {
		return usagef("--limit must not be negative")
	}
	conn, err := c.dial("routing")
	if err != nil {
		return err
	}
	defer conn.Close()
	rc := routingv1.NewRoutingServiceClient(conn)
	resp := &routingv1.ListAssignmentsResponse{}
	err = pages(limit, func(size int, token string) (int, string, error) {
		req.Page = pageRequest(size, token)
		r, err := rc.ListAssignments(ctx, req)
		if err != nil {
			return 0, "", err
		}
		resp.Assignments = append(resp.Assignments, r.GetAssignments()...)
		return len(r.GetAssignments()), r.GetPage().GetNextPageToken(), nil
	})
	if err != nil {
		return fmt.Errorf("list assignments: %w", err)
	}
	if limit > 0 && len(resp.Assignments) > limit {
		resp.Assignments = resp.Assignments[:limit]
	}
	if c.output == "json" {
		return c.printJSON(resp)
	}
	return assignmentGrid(resp.GetAssignments()).print(env.Stdout, c.output)
}

func assignmentGrid(as []*routingv1.Assignment) *grid {
	g := &grid{header: []string{"ID", "TYPE", "ACCOUNT", "OWNER", "STATE", "RULE", "CREATED", "SLA DUE", "SLA"}}
	for _, a := range as {
		sla := "-"
		if s := a.GetSla(); s != nil {
			switch {
			case s.GetBreached():
				sla = "breached"
			case s.GetMetAt() != nil:
				sla = "met"
			case s.GetPaused():
				sla = "paused"
			default:
				sla = "running " + dur(s.GetUsed()) + "/" + dur(s.GetAllowed())
			}
		}
		acct := a.GetAccountId()
		if acct == "" {
			acct = a.GetLead().GetEmail()
		}
		g.add(a.GetAssignmentId(), enumName(a.GetType(), "HANDOFF_TYPE_"), dash(acct), dash(a.GetOwnerId()), enumName(a.GetState(), "ASSIGNMENT_STATE_"),
			dash(a.GetDecision().GetRule()), ts(a.GetCreatedAt()), ts(a.GetSla().GetDueAt()), sla)
	}
	return g
}
