package account

import (
	"strings"
	"time"

	routingv1 "github.com/cairn-dev/cairn/gen/cairn/routing/v1"
)

// Team is the team of an owner in routing's directory, in the short form
// of routingv1.Team: "csm", "ae", "implementation", "sdr", "manager".
type Team string

// The teams an account's owner can come from.
const (
	TeamCSM            Team = "csm"
	TeamAE             Team = "ae"
	TeamImplementation Team = "implementation"
	TeamSDR            Team = "sdr"
	TeamManager        Team = "manager"
)

// Assignment is what the owner rule reads of one routing assignment of an
// account: who holds it, the team routing's directory puts them in, and
// when it was made.
type Assignment struct {
	Owner string
	Team  Team
	At    time.Time
}

// ownerTrait is the trait an owner set by hand in the CRM is read from.
const ownerTrait = "owner"

// ownerTeams is the order in which a team's owner is the account's owner,
// with the CRM trait that names that team's owner: a customer's CSM before
// its AE, an implementation lead before a prospect's SDR, a manager (only
// ever assigned by escalation) last.
var ownerTeams = []struct {
	team  Team
	trait string
}{
	{TeamCSM, "csm_id"},
	{TeamAE, "ae_id"},
	{TeamImplementation, "implementation_id"},
	{TeamSDR, "sdr_id"},
	{TeamManager, ""},
}

// Owner is the account's owner, the one rule the dashboard, the CLI and
// stages' owner of record share:
//
//  1. the "owner" trait, an owner set by hand in the CRM;
//  2. else, team by team (CSM, AE, implementation, SDR, manager), that
//     team's owner trait from the CRM (csm_id, ae_id, implementation_id,
//     sdr_id), else whoever holds the account's latest assignment to that
//     team, whatever its state: a CSM stays the account's CSM after the
//     kickoff handoff is met;
//  3. else "", no owner.
//
// Assignments with no owner or a team outside the list are not read; of
// two assignments to one team made at the same time, the later in the
// slice counts.
func Owner(traits map[string]string, assigned []Assignment) string {
	if v := traits[ownerTrait]; v != "" {
		return v
	}
	for _, t := range ownerTeams {
		if t.trait != "" && traits[t.trait] != "" {
			return traits[t.trait]
		}
		latest, at := "", time.Time{}
		for _, a := range assigned {
			if a.Team == t.team && a.Owner != "" && (latest == "" || !a.At.Before(at)) {
				latest, at = a.Owner, a.At
			}
		}
		if latest != "" {
			return latest
		}
	}
	return ""
}

// OwnerOf is the owner of record of an account with these traits alone
// (Owner without assignments), as stages lists and filters accounts.
func OwnerOf(traits map[string]string) string { return Owner(traits, nil) }

// RoutingAssignments groups routing's assignments by account for Owner,
// each with its owner's team from routing's owner directory (owners). An
// assignment without an account, or whose owner is not in the directory,
// is left out.
func RoutingAssignments(owners []*routingv1.Owner, assignments []*routingv1.Assignment) map[string][]Assignment {
	teams := make(map[string]Team, len(owners))
	for _, o := range owners {
		if o.GetTeam() != routingv1.Team_TEAM_UNSPECIFIED {
			teams[o.GetOwnerId()] = Team(strings.ToLower(strings.TrimPrefix(o.GetTeam().String(), "TEAM_")))
		}
	}
	out := map[string][]Assignment{}
	for _, a := range assignments {
		team, ok := teams[a.GetOwnerId()]
		if a.GetAccountId() == "" || !ok {
			continue
		}
		out[a.GetAccountId()] = append(out[a.GetAccountId()], Assignment{Owner: a.GetOwnerId(), Team: team, At: a.GetCreatedAt().AsTime()})
	}
	return out
}
