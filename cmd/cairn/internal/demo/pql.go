package demo

import (
	"fmt"
	"sort"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"gopkg.in/yaml.v3"

	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	"github.com/cairn-dev/cairn/pkg/domain/account"
	"github.com/cairn-dev/cairn/pkg/domain/vocab"
)

// The demo's SDRs answer PQL handoffs. Routing opens one when a PQL rule of
// the demo's routing config (routing.yaml) starts to hold for an account,
// at the time of the event that made it hold. The generator finds those
// moments the way routing does, by folding the account's events into
// pkg/domain/account's aggregates in time order and evaluating the rules
// after each event, and has an SDR contact the account soon after each.
//
// The rules are evaluated with the variables routing declares, but only
// `status` and the aggregates carry the account's values here (`stage`,
// `signals` and the health variables are empty; `account` holds the group
// traits): the demo's rules read nothing else.

// pqlRule is one compiled PQL rule of the demo's routing config.
type pqlRule struct {
	name string
	prg  *account.Program
}

// demoPQL compiles the PQL rules of routing.yaml once.
var demoPQL = sync.OnceValues(func() ([]pqlRule, error) { return compilePQL(RoutingYAML) })

// compilePQL compiles the pql_rules of a routing config in the PQL rules'
// environment.
func compilePQL(routingYAML []byte) ([]pqlRule, error) {
	var cfg struct {
		PQLRules []struct {
			Name string `yaml:"name"`
			When string `yaml:"when"`
		} `yaml:"pql_rules"`
	}
	if err := yaml.Unmarshal(routingYAML, &cfg); err != nil {
		return nil, fmt.Errorf("read pql_rules: %w", err)
	}
	env, err := account.NewPQLEnv()
	if err != nil {
		return nil, err
	}
	var out []pqlRule
	for i, r := range cfg.PQLRules {
		prg, err := env.CompileBool(r.When)
		if err != nil {
			return nil, fmt.Errorf("pql_rules[%d] (%s): %w", i, r.Name, err)
		}
		out = append(out, pqlRule{name: r.Name, prg: prg})
	}
	return out, nil
}

// answerPQLs has an SDR answer every PQL handoff routing opens for the
// account while it is a prospect or a trial (PQL rules qualify leads; the
// demo's hold only for trials).
func (s *sim) answerPQLs() {
	rules, err := demoPQL()
	if err != nil || len(rules) == 0 {
		return // TestDemoPQLRules fails on a config whose rules do not compile
	}
	evs := append([]Event(nil), s.events...)
	sort.SliceStable(evs, func(i, j int) bool { return evs[i].Timestamp.Before(evs[j].Timestamp) })
	agg := account.New("", s.account.ID)
	holding := map[string]bool{}
	for _, ev := range evs {
		in := s.ingestionEvent(ev)
		if in == nil {
			continue
		}
		agg.Apply(in, &account.PQLConfig)
		st := agg.Status()
		if st != account.StatusProspect && st != account.StatusTrial {
			return // a customer (or later churned) never becomes a lead again
		}
		traits := map[string]any{}
		for k, v := range agg.Traits {
			traits[k] = v
		}
		vars := map[string]any{
			"status": string(st), "stage": "", "previous_stage": "", "health_band": "", "health_score": 0.0,
			"signals": []string{}, "account": traits,
		}
		for _, r := range rules {
			ok, err := r.prg.EvalBool(agg, ev.Timestamp, vars)
			ok = ok && err == nil
			if ok && !holding[r.name] {
				s.answerPQL(r.name, ev.Timestamp)
			}
			holding[r.name] = ok
		}
	}
}

// answerPQL is the SDR's first touch on a PQL handoff opened at at. PQLs
// are hot: the SLA allows one business hour, and the SDR usually calls or
// writes within 10 to 50 minutes, which meets it whatever the owner's
// working hours; for a share of leads, fewer for better-fitting accounts,
// only a day to four days later. The times come from side hashes, not from
// the random stream, so the rest of the workspace is unchanged.
func (s *sim) answerPQL(rule string, at time.Time) {
	key := "pql-contact/" + rule + "/" + at.Format(time.RFC3339)
	touch := at.Add(time.Duration(10+s.side(key)*40) * time.Minute)
	if s.side(key+"/late") < 0.15-0.1*s.fit {
		touch = at.Add(time.Duration(20+s.side(key+"/hours")*72) * time.Hour)
	}
	s.system("crm.contacted", touch, map[string]any{"channel": []string{"call", "email"}[int(s.side(key+"/ch")*2)], "purpose": "pql"})
}

// ingestionEvent is ev as ingestion logs it for routing, or nil when it
// names no account (anonymous page views before the visitor identified).
func (s *sim) ingestionEvent(ev Event) *ingestionv1.Event {
	if ev.GroupID != s.account.ID && ev.Context["groupId"] != s.account.ID {
		return nil
	}
	out := &ingestionv1.Event{UserId: ev.UserID, AnonymousId: ev.AnonymousID, AccountId: s.account.ID, Timestamp: timestamppb.New(ev.Timestamp)}
	switch ev.Type {
	case "track":
		out.Type, out.Event, out.Source = ingestionv1.EventType_EVENT_TYPE_TRACK, vocab.Canonical(ev.Event), vocab.SourceOf(ev.Event)
	case "page":
		out.Type, out.Name, out.Source = ingestionv1.EventType_EVENT_TYPE_PAGE, ev.Name, vocab.SourceProduct
	case "identify":
		out.Type = ingestionv1.EventType_EVENT_TYPE_IDENTIFY
	case "group":
		out.Type, out.GroupId = ingestionv1.EventType_EVENT_TYPE_GROUP, ev.GroupID
	default:
		return nil
	}
	out.Properties = toStruct(ev.Properties)
	out.Traits = toStruct(ev.Traits)
	return out
}

// toStruct converts JSON-like values; a value structpb cannot hold leaves
// the struct out (the demo sends none).
func toStruct(m map[string]any) *structpb.Struct {
	if len(m) == 0 {
		return nil
	}
	st, err := structpb.NewStruct(m)
	if err != nil {
		return nil
	}
	return st
}
