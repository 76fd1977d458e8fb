package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"sort"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	healthv1 "github.com/cairn-dev/cairn/gen/cairn/health/v1"
	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
	"github.com/cairn-dev/cairn/pkg/domain/aggregate"
)

// cmdSpec describes a command that calls the services.
type cmdSpec struct {
	name, usage string
	// services are the services it calls (their address flags are shown).
	services []string
	// formats are the -o values it prints (default table and json).
	formats []string
	// npos is the number of positional arguments.
	npos  int
	extra func(fs *flag.FlagSet)
}

// queryCmd is the shared prologue of commands that call one or more services.
func queryCmd(ctx context.Context, env *Env, args []string, sp cmdSpec) (*connFlags, []string, context.Context, context.CancelFunc, error) {
	fs := helpFlagSet(env, sp.name, sp.usage)
	c := addConnFlags(fs, env, sp.services, sp.formats...)
	if sp.extra != nil {
		sp.extra(fs)
	}
	pos, err := parse(fs, args)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	if len(pos) != sp.npos {
		return nil, nil, nil, nil, usagef("want %d argument(s), got %d: usage: cairn %s", sp.npos, len(pos), sp.usage)
	}
	if err := c.resolve(fs); err != nil {
		return nil, nil, nil, nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	return c, pos, ctx, cancel, nil
}

func runJourney(ctx context.Context, env *Env, args []string) error {
	var journeyID string
	c, pos, ctx, cancel, err := queryCmd(ctx, env, args, cmdSpec{name: "journey", usage: "journey ACCOUNT [--journey ID] [-o table|json]", services: []string{"stages"}, npos: 1, extra: func(fs *flag.FlagSet) {
		fs.StringVar(&journeyID, "journey", "", "journey id (default: the workspace's default journey)")
	}})
	if err != nil {
		return err
	}
	defer cancel()
	conn, err := c.dial("stages")
	if err != nil {
		return err
	}
	defer conn.Close()
	resp, err := stagesv1.NewStagesServiceClient(conn).GetAccountJourney(ctx, &stagesv1.GetAccountJourneyRequest{Workspace: c.workspace, AccountId: pos[0], JourneyId: journeyID})
	if err != nil {
		return fmt.Errorf("get journey of %q: %w", pos[0], err)
	}
	if c.output == "json" {
		return c.printJSON(resp)
	}
	j := resp.GetJourney()
	w := env.Stdout
	fmt.Fprintf(w, "Account:        %s\n", j.GetAccountId())
	fmt.Fprintf(w, "Journey:        %s v%d, as of %s\n", j.GetJourneyId(), j.GetVersion(), ts(j.GetAsOf()))
	fmt.Fprintf(w, "Status:         %s\n", lifecycleText(j.GetLifecycle()))
	fmt.Fprintf(w, "Stage:          %s (since %s, %s)\n", dash(j.GetStage()), ts(j.GetEnteredAt()), dur(j.GetTimeInStage()))
	if len(j.GetTraits()) > 0 {
		keys := make([]string, 0, len(j.GetTraits()))
		for k := range j.GetTraits() {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = k + "=" + j.GetTraits()[k]
		}
		fmt.Fprintf(w, "Traits:         %s\n", strings.Join(parts, " "))
	}
	if len(j.GetExitCriteria()) > 0 {
		fmt.Fprintln(w, "\nTo finish this stage:")
		t := newTable(w, "", "CRITERION", "EXPRESSION")
		for _, cr := range j.GetExitCriteria() {
			t.row(check(cr), cr.GetName(), cr.GetExpr())
		}
		if err := t.flush(); err != nil {
			return err
		}
	}
	if len(j.GetDropoffCriteria()) > 0 {
		fmt.Fprintln(w, "\nDrop-off criteria:")
		t := newTable(w, "", "CRITERION", "EXPRESSION")
		for _, cr := range j.GetDropoffCriteria() {
			t.row(check(cr), cr.GetName(), cr.GetExpr())
		}
		if err := t.flush(); err != nil {
			return err
		}
	}
	fmt.Fprintln(w, "\nHistory:")
	t := newTable(w, "AT", "FROM", "TO", "CAUSE", "CRITERIA")
	for _, tr := range j.GetHistory() {
		var met []string
		for _, cr := range tr.GetCriteria() {
			// A move lists the old stage's exit and the new stage's entry,
			// which often share a criterion name.
			if cr.GetMet() && !contains(met, cr.GetName()) {
				met = append(met, cr.GetName())
			}
		}
		t.row(ts(tr.GetAt()), dash(tr.GetFromStage()), tr.GetToStage(), dash(tr.GetCause()), dash(strings.Join(met, ",")))
	}
	if err := t.flush(); err != nil {
		return err
	}
	if len(j.GetOpenSignals()) > 0 {
		fmt.Fprintln(w, "\nOpen signals:")
		return signalTable(w, j.GetOpenSignals())
	}
	return nil
}

func check(cr *stagesv1.CriterionResult) string {
	switch {
	case cr.GetError() != "":
		return "[!]"
	case cr.GetMet():
		return "[x]"
	default:
		return "[ ]"
	}
}

func runHealth(ctx context.Context, env *Env, args []string) error {
	c, pos, ctx, cancel, err := queryCmd(ctx, env, args, cmdSpec{name: "health", usage: "health ACCOUNT [-o table|json]", services: []string{"health"}, npos: 1})
	if err != nil {
		return err
	}
	defer cancel()
	conn, err := c.dial("health")
	if err != nil {
		return err
	}
	defer conn.Close()
	resp, err := healthv1.NewHealthServiceClient(conn).GetAccountHealth(ctx, &healthv1.GetAccountHealthRequest{Workspace: c.workspace, AccountId: pos[0]})
	if err != nil {
		return fmt.Errorf("get health of %q: %w", pos[0], err)
	}
	if c.output == "json" {
		return c.printJSON(resp)
	}
	h := resp.GetHealth()
	w := env.Stdout
	fmt.Fprintf(w, "Account:   %s\n", h.GetAccountId())
	fmt.Fprintf(w, "Status:    %s\n", lifecycleText(h.GetLifecycle()))
	kept := h.GetScore() != 0 || len(h.GetComponents()) > 0
	switch {
	case h.GetScored() || (h.GetLifecycle() == nil && kept): // a server from before `scored` scored everyone it listed

		fmt.Fprintf(w, "Score:     %.1f (%s), previous %.1f, 7d %+.1f, 30d %+.1f, %s, as of %s\n", h.GetScore(), enumName(h.GetBand(), "BAND_"), h.GetPreviousScore(), h.GetTrend_7D(), h.GetTrend_30D(), dash(h.GetDirection()), ts(h.GetAsOf()))
	case kept:
		fmt.Fprintf(w, "Score:     not live: the last score, %.1f (%s) as of %s, is kept for history\n", h.GetScore(), enumName(h.GetBand(), "BAND_"), ts(h.GetAsOf()))
	default:
		fmt.Fprintln(w, "Score:     not scored: customer health is for paying customers")
	}
	fmt.Fprintf(w, "Model:     %s v%d profile %s, computed %s\n", dash(h.GetModelId()), h.GetModelVersion(), dash(h.GetProfile()), ts(h.GetComputedAt()))
	fmt.Fprintf(w, "Stage:     %s   ARR %.0f   contract end %s\n\n", dash(h.GetStage()), h.GetArr(), ts(h.GetContractEnd()))
	t := newTable(w, "COMPONENT", "RAW", "POINTS", "WEIGHT", "CONTRIBUTION", "EXPLANATION")
	for _, cs := range h.GetComponents() {
		expl := cs.GetExplanation()
		if cs.GetError() != "" {
			expl = "error: " + cs.GetError()
		}
		t.row(cs.GetName(), fmt.Sprintf("%.2f", cs.GetRawValue()), fmt.Sprintf("%.0f", cs.GetPoints()), fmt.Sprintf("%.0f", cs.GetWeight()), fmt.Sprintf("%.1f", cs.GetContribution()), dash(expl))
	}
	if err := t.flush(); err != nil {
		return err
	}
	if len(h.GetChanges()) > 0 {
		fmt.Fprintln(w, "\nChanges since the previous score:")
		t := newTable(w, "COMPONENT", "FROM", "TO", "REASON")
		for _, ch := range h.GetChanges() {
			t.row(ch.GetComponent(), fmt.Sprintf("%.1f", ch.GetPreviousContribution()), fmt.Sprintf("%.1f", ch.GetContribution()), dash(ch.GetReason()))
		}
		if err := t.flush(); err != nil {
			return err
		}
	}
	if len(h.GetOpenSignals()) > 0 {
		fmt.Fprintln(w, "\nOpen signals:")
		return signalTable(w, h.GetOpenSignals())
	}
	return nil
}

// lifecycleText is "customer since 2026-03-01 (prospect 2026-01-10, customer 2026-03-01)".
func lifecycleText(l *commonv1.Lifecycle) string {
	if l == nil || l.GetStatus() == commonv1.AccountStatus_ACCOUNT_STATUS_UNSPECIFIED {
		return "-"
	}
	text := enumName(l.GetStatus(), "ACCOUNT_STATUS_") + " since " + ts(l.GetSince())
	var steps []string
	for _, c := range l.GetHistory() {
		steps = append(steps, enumName(c.GetStatus(), "ACCOUNT_STATUS_")+" "+ts(c.GetAt()))
	}
	if len(steps) > 1 {
		text += " (" + strings.Join(steps, ", ") + ")"
	}
	return text
}

func signalTable(w interface{ Write([]byte) (int, error) }, signals []*commonv1.Signal) error {
	t := newTable(w, "KIND", "REASON", "ACCOUNT", "STATE", "OPENED", "MESSAGE")
	for _, s := range signals {
		t.row(enumName(s.GetKind(), "SIGNAL_KIND_"), s.GetReason(), s.GetAccountId(), enumName(s.GetState(), "SIGNAL_STATE_"), ts(s.GetOpenedAt()), dash(s.GetMessage()))
	}
	return t.flush()
}

var signalKinds = map[string]commonv1.SignalKind{
	"": commonv1.SignalKind_SIGNAL_KIND_UNSPECIFIED, "risk": commonv1.SignalKind_SIGNAL_KIND_RISK, "expansion": commonv1.SignalKind_SIGNAL_KIND_EXPANSION,
	"renewal": commonv1.SignalKind_SIGNAL_KIND_RENEWAL, "dropoff": commonv1.SignalKind_SIGNAL_KIND_DROPOFF, "stuck": commonv1.SignalKind_SIGNAL_KIND_STUCK,
}

var signalStates = map[string]commonv1.SignalState{
	"all": commonv1.SignalState_SIGNAL_STATE_UNSPECIFIED, "open": commonv1.SignalState_SIGNAL_STATE_OPEN, "closed": commonv1.SignalState_SIGNAL_STATE_CLOSED,
}

// runSignals merges health's signals (risk, expansion, renewal) and stages'
// (drop-off, stuck). With -o json it prints {"health": ..., "stages": ...}.
func runSignals(ctx context.Context, env *Env, args []string) error {
	var account, kind, state, from, reason, token string
	var size int
	c, _, ctx, cancel, err := queryCmd(ctx, env, args, cmdSpec{name: "signals", usage: "signals [--account A] [--kind risk|expansion|renewal|dropoff|stuck] [--state open|closed|all] [--from all|health|stages] [-o table|json]", services: []string{"stages", "health"}, extra: func(fs *flag.FlagSet) {
		fs.StringVar(&account, "account", "", "only this account")
		fs.StringVar(&kind, "kind", "", "risk, expansion, renewal (health) or dropoff, stuck (stages)")
		fs.StringVar(&state, "state", "open", "open, closed or all")
		fs.StringVar(&reason, "reason", "", "only this reason (stages signals)")
		fs.StringVar(&from, "from", "all", "which service to ask: all, health or stages")
		fs.IntVar(&size, "page-size", 0, "signals per service (default: server's, 50)")
		fs.StringVar(&token, "page-token", "", "page token from a previous call (requires --from)")
	}})
	if err != nil {
		return err
	}
	defer cancel()
	k, ok := signalKinds[kind]
	if !ok {
		return usagef("unknown --kind %q", kind)
	}
	st, ok := signalStates[state]
	if !ok {
		return usagef("unknown --state %q", state)
	}
	if from != "all" && from != "health" && from != "stages" {
		return usagef("--from must be all, health or stages")
	}
	if token != "" && from == "all" {
		return usagef("--page-token belongs to one service: add --from health or --from stages")
	}
	if k == commonv1.SignalKind_SIGNAL_KIND_DROPOFF || k == commonv1.SignalKind_SIGNAL_KIND_STUCK {
		if from == "all" {
			from = "stages"
		}
	} else if k != commonv1.SignalKind_SIGNAL_KIND_UNSPECIFIED && from == "all" {
		from = "health"
	}
	out := map[string]json.RawMessage{}
	var signals []*commonv1.Signal
	var failures []string
	var pages []string
	if from == "all" || from == "health" {
		conn, err := c.dial("health")
		if err != nil {
			return err
		}
		defer conn.Close()
		resp, err := healthv1.NewHealthServiceClient(conn).ListSignals(ctx, &healthv1.ListSignalsRequest{Workspace: c.workspace, AccountId: account, Kind: k, State: st, Page: pageRequest(size, token)})
		if err != nil {
			if from == "health" {
				return fmt.Errorf("list health signals: %w", err)
			}
			failures = append(failures, "health: "+describe(err))
		} else {
			signals = append(signals, resp.GetSignals()...)
			out["health"] = stableJSON(resp)
			if t := resp.GetPage().GetNextPageToken(); t != "" {
				pages = append(pages, "--from health --page-token "+t)
			}
		}
	}
	if from == "all" || from == "stages" {
		conn, err := c.dial("stages")
		if err != nil {
			return err
		}
		defer conn.Close()
		resp, err := stagesv1.NewStagesServiceClient(conn).ListSignals(ctx, &stagesv1.ListSignalsRequest{Workspace: c.workspace, AccountId: account, State: st, Reason: reason, Page: pageRequest(size, token)})
		if err != nil {
			if from == "stages" {
				return fmt.Errorf("list stage signals: %w", err)
			}
			failures = append(failures, "stages: "+describe(err))
		} else {
			for _, s := range resp.GetSignals() {
				if k == commonv1.SignalKind_SIGNAL_KIND_UNSPECIFIED || s.GetKind() == k {
					signals = append(signals, s)
				}
			}
			out["stages"] = stableJSON(resp)
			if t := resp.GetPage().GetNextPageToken(); t != "" {
				pages = append(pages, "--from stages --page-token "+t)
			}
		}
	}
	if len(failures) == 2 {
		return fmt.Errorf("list signals: %s", strings.Join(failures, "; "))
	}
	for _, f := range failures {
		fmt.Fprintf(env.Stderr, "warning: %s\n", f)
	}
	if c.output == "json" {
		b, err := json.MarshalIndent(out, "", "  ")
		if err != nil {
			return fmt.Errorf("encode signals: %w", err)
		}
		_, err = fmt.Fprintln(env.Stdout, string(b))
		return err
	}
	sort.SliceStable(signals, func(i, j int) bool {
		return signals[i].GetOpenedAt().AsTime().After(signals[j].GetOpenedAt().AsTime())
	})
	if err := signalTable(env.Stdout, signals); err != nil {
		return err
	}
	for _, p := range pages {
		fmt.Fprintf(env.Stdout, "\nmore: %s\n", p)
	}
	return nil
}

// replicaErr names replica i of n in err when there are several.
func replicaErr(i, n int, err error) error {
	if n == 1 {
		return err
	}
	return fmt.Errorf("replica %d of %d: %w", i, n, err)
}

func runBacktest(ctx context.Context, env *Env, args []string) error {
	var horizon int
	var model string
	var version uint
	c, _, ctx, cancel, err := queryCmd(ctx, env, args, cmdSpec{name: "backtest", usage: "backtest [--horizon 90] [--model ID] [--version N] [-o table|json]", services: []string{"health"}, extra: func(fs *flag.FlagSet) {
		fs.IntVar(&horizon, "horizon", 90, "days before each outcome at which the score is taken")
		fs.StringVar(&model, "model", "", "model id (default: the active model)")
		fs.UintVar(&version, "version", 0, "model version (default: active)")
	}})
	if err != nil {
		return err
	}
	defer cancel()
	if horizon <= 0 {
		return usagef("--horizon must be positive")
	}
	conns, closeConns, err := c.dialEvery("health")
	if err != nil {
		return err
	}
	defer closeConns()
	// Several replicas: each answers with its outcomes' samples, and the
	// parts merge into the backtest over every account.
	req := &healthv1.BacktestRequest{Workspace: c.workspace, ModelId: model, Version: uint32(version), HorizonDays: int32(horizon), Parts: len(conns) > 1}
	parts := make([]*healthv1.BacktestResponse, len(conns))
	for i, conn := range conns {
		if parts[i], err = healthv1.NewHealthServiceClient(conn).Backtest(ctx, req); err != nil {
			return fmt.Errorf("backtest: %w", replicaErr(i, len(conns), err))
		}
	}
	resp := parts[0]
	if len(parts) > 1 {
		resp = aggregate.Backtest(parts, false)
	}
	if c.output == "json" {
		return c.printJSON(resp)
	}
	w := env.Stdout
	fmt.Fprintf(w, "Horizon %d days: %d renewed, %d churned, AUC %.3f\n\n", resp.GetHorizonDays(), resp.GetRenewed(), resp.GetChurned(), resp.GetAuc())
	t := newTable(w, "BAND", "ACCOUNTS", "CHURNED", "CHURN RATE")
	for _, b := range resp.GetBands() {
		t.row(enumName(b.GetBand(), "BAND_"), b.GetAccounts(), b.GetChurned(), fmt.Sprintf("%.1f%%", 100*b.GetChurnRate()))
	}
	if err := t.flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	t = newTable(w, "COMPONENT", "AUC", "LIFT")
	for _, cl := range resp.GetComponents() {
		t.row(cl.GetComponent(), fmt.Sprintf("%.3f", cl.GetAuc()), fmt.Sprintf("%+.1f", cl.GetLift()))
	}
	return t.flush()
}

// stableJSON is protojson with its deliberately varying whitespace removed.
func stableJSON(m proto.Message) json.RawMessage {
	b, err := protojson.Marshal(m)
	if err != nil {
		return json.RawMessage(`null`)
	}
	var buf bytes.Buffer
	if json.Compact(&buf, b) != nil {
		return json.RawMessage(`null`)
	}
	return buf.Bytes()
}
