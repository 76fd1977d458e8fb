package app

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"net/url"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	playsv1 "github.com/cairn-dev/cairn/gen/cairn/plays/v1"
	"github.com/cairn-dev/cairn/services/plays/internal/deliver"
	"github.com/cairn-dev/cairn/services/plays/internal/play"
	"github.com/cairn-dev/cairn/services/plays/internal/store"
)

// fireAll matches every trigger against the workspace's active plays and
// carries out the actions of those that hold, in the consumer's
// transaction: firings, tasks and outbox rows commit with the cursor, so
// each trigger is decided exactly once.
func (s *Service) fireAll(t *store.Tx, a *store.Account, trigs []trigger, sc scope, src string) error {
	if len(trigs) == 0 {
		return nil
	}
	set, version, err := s.activeSet(t)
	if err != nil || set == nil {
		return err
	}
	for _, tr := range trigs {
		// A churned account fires nothing but the plays about churn and
		// win-back themselves, and its open work is closed.
		if a.Status == "churned" && tr.kind != play.StatusChurned && tr.kind != play.StatusWonBack {
			continue
		}
		if tr.kind == play.StatusChurned && !t.Replaying() {
			if err := s.closeOpenTasks(t, a.ID, tr.at, "plays: the account churned"); err != nil {
				return err
			}
		}
		if t.Replaying() && tr.at.Before(sc.since) {
			continue // history before the replay's start: it only teaches facts
		}
		acct := a.Map()
		matches, err := set.Match(play.Input{Kind: tr.kind, Record: tr.record, Account: acct, InJourney: tr.inJourney})
		if err != nil {
			// Evaluation errors are per play; Match has returned the
			// plays that held. Record the error for the operator.
			s.logger.Warn("plays: evaluation error", "workspace", t.Workspace(), "account", a.ID, "trigger", tr.kind, "err", err)
		}
		for _, m := range matches {
			if sc.plays != nil && !sc.plays[m.Play.ID] {
				continue
			}
			// One trigger fires a play once: live, or in one replay.
			if done, err := t.Fired(m.Play.ID, src+"/"+tr.kind); err != nil {
				return err
			} else if done {
				sc.stats.skip()
				continue
			}
			if err := t.MarkFired(m.Play.ID, src+"/"+tr.kind); err != nil {
				return err
			}
			if err := s.fire(t, version, a, acct, tr, m.Play, sc.replay); err != nil {
				return err
			}
			sc.stats.fired()
		}
	}
	return nil
}

// fire carries out one play for one account, unless its cooldown holds it.
func (s *Service) fire(t *store.Tx, version uint32, a *store.Account, acct map[string]any, tr trigger, p *play.Play, replay string) error {
	seq, err := t.NextSeq()
	if err != nil {
		return err
	}
	f := &playsv1.Firing{
		Workspace: t.Workspace(), FiringId: fmt.Sprintf("f_%d", seq), PlayId: p.ID, PlaysVersion: version,
		AccountId: a.ID, Trigger: tr.kind, Record: tr.summary, At: timestamppb.New(tr.at), ReplayId: replay,
	}
	until, err := t.Cooldown(p.ID, a.ID)
	if err != nil {
		return err
	}
	if tr.at.Before(until) {
		f.Held = "cooldown until " + until.Format(time.RFC3339)
		return t.PutFiring(seq, f)
	}
	if p.Cooldown > 0 {
		if err := t.SetCooldown(p.ID, a.ID, tr.at.Add(p.Cooldown)); err != nil {
			return err
		}
	}
	why := fmt.Sprintf("play %q fired on %s: %s", p.Name, tr.kind, tr.summary)
	for _, act := range p.Actions {
		switch act.Type {
		case "task":
			id, err := s.addTask(t, a, f, why, act.Task.Title, act.Task.Owner, act.Task.Due, tr.at, tr.at, "", 0)
			if err != nil {
				return err
			}
			f.TaskIds = append(f.TaskIds, id)
		case "playbook":
			pb := act.Playbook
			anchor := play.Anchor{Band: a.Band}
			if d, ok := tr.record["window_days"].(int64); ok {
				anchor.WindowDays = int(d)
			}
			for n, st := range pb.StepsFor(anchor) {
				// A negative offset (before a date such as the contract
				// end) that has already passed falls due at once.
				starts := tr.at.Add(max(st.Offset, 0))
				id, err := s.addTask(t, a, f, why, st.Title, st.Owner, st.Due, tr.at, starts, pb.ID, n+1)
				if err != nil {
					return err
				}
				f.TaskIds = append(f.TaskIds, id)
			}
		case "webhook", "slack", "content":
			body, err := s.message(t.Workspace(), p, act, a, acct, tr, f, why)
			if err != nil {
				return err
			}
			dseq, err := t.NextSeq()
			if err != nil {
				return err
			}
			d := &playsv1.Delivery{
				Workspace: t.Workspace(), DeliveryId: deliveryID(t.Workspace(), dseq), DestinationId: act.Destination.ID,
				AccountId: a.ID, PlayId: p.ID, FiringId: f.FiringId, Action: act.Type,
				State: playsv1.DeliveryState_DELIVERY_STATE_PENDING, CreatedAt: timestamppb.New(s.clk.Now()),
				Body: string(body),
			}
			if err := t.AddDelivery(dseq, d); err != nil {
				return err
			}
			f.DeliveryIds = append(f.DeliveryIds, d.DeliveryId)
			msg := toMessage(t.Workspace(), dseq, d)
			t.Base().OnCommit(func() { s.engine.Enqueue(msg) })
		}
	}
	return t.PutFiring(seq, f)
}

// deliveryID is a delivery's webhook-id: unique across workspaces, the
// same on every attempt.
func deliveryID(ws string, seq uint64) string {
	h := fnv.New32a()
	_, _ = h.Write([]byte(ws))
	return fmt.Sprintf("msg_%08x_%d", h.Sum32(), seq)
}

// toMessage is a delivery as the engine takes it.
func toMessage(ws string, seq uint64, d *playsv1.Delivery) deliver.Message {
	m := deliver.Message{
		ID: d.GetDeliveryId(), Seq: seq, Destination: engineDest(ws, d.GetDestinationId()), Account: d.GetAccountId(),
		Body: []byte(d.GetBody()), Created: d.GetCreatedAt().AsTime(), Attempts: int(d.GetAttempts()),
		LastError: d.GetLastError(),
	}
	if d.GetNextAttemptAt() != nil {
		m.NextAt = d.GetNextAttemptAt().AsTime()
	}
	return m
}

// engineDest is the engine's name of a workspace's destination.
func engineDest(ws, id string) string { return ws + "/" + id }

// addTask creates a task: open now, or scheduled for a later playbook step.
func (s *Service) addTask(t *store.Tx, a *store.Account, f *playsv1.Firing, why, title string, owner play.Owner, due time.Duration, now, starts time.Time, playbook string, step int) (string, error) {
	seq, err := t.NextSeq()
	if err != nil {
		return "", err
	}
	k := &playsv1.Task{
		Workspace: t.Workspace(), TaskId: fmt.Sprintf("t_%d", seq), AccountId: a.ID, PlayId: f.GetPlayId(),
		PlaybookId: playbook, Step: int32(step), Title: title, OwnerRole: owner.String(), OwnerId: resolveOwner(a, owner.String()),
		State: playsv1.TaskState_TASK_STATE_OPEN, CreatedAt: timestamppb.New(now), StartsAt: timestamppb.New(starts),
		Why: why, FiringId: f.GetFiringId(),
	}
	if due > 0 {
		k.DueAt = timestamppb.New(s.dueAt(t.Workspace(), k.GetOwnerId(), starts, due))
	}
	if starts.After(now) {
		k.State = playsv1.TaskState_TASK_STATE_SCHEDULED
		if err := t.AddTimer(starts, k.TaskId, store.TimerOpen); err != nil {
			return "", err
		}
	} else if err := s.armExpiry(t, k); err != nil {
		return "", err
	}
	return k.TaskId, t.PutTask(k)
}

// dueAt is due after starts on the owner's business-hours clock, or in
// calendar time for an owner the directory does not know (a pool, a role
// nobody holds yet).
func (s *Service) dueAt(ws, owner string, starts time.Time, due time.Duration) time.Time {
	if c := s.directory.Calendar(ws, owner); c != nil && owner != "" {
		return c.AddBusiness(starts, due)
	}
	return starts.Add(due)
}

// armExpiry arms the timer that expires an open task left past its due
// date; a task without a due date never expires.
func (s *Service) armExpiry(t *store.Tx, k *playsv1.Task) error {
	if k.GetDueAt() == nil {
		return nil
	}
	return t.AddTimer(k.GetDueAt().AsTime().Add(s.taskExpiry), k.GetTaskId(), store.TimerExpire)
}

// resolveOwner turns a task's owner role into the account's owner of that
// role, as routing assigned it; a pool or a role nobody holds yet stays
// unassigned (the role says whose it is).
func resolveOwner(a *store.Account, role string) string {
	switch {
	case strings.HasPrefix(role, "owner:"):
		return strings.TrimPrefix(role, "owner:")
	case strings.HasPrefix(role, "pool:"):
		return ""
	}
	return a.Owners[role]
}

// assignOpenTasks gives an account's open and scheduled tasks for role,
// made before anyone held the role (routing's assignment can reach plays
// after the record that fired the play), to the new owner.
func (s *Service) assignOpenTasks(t *store.Tx, account, role, owner string) error {
	tasks, err := t.AccountTasks(account)
	if err != nil {
		return err
	}
	for _, k := range tasks {
		if k.GetOwnerId() != "" || k.GetOwnerRole() != role ||
			(k.GetState() != playsv1.TaskState_TASK_STATE_OPEN && k.GetState() != playsv1.TaskState_TASK_STATE_SCHEDULED) {
			continue
		}
		k.OwnerId = owner
		if err := t.PutTask(k); err != nil {
			return err
		}
	}
	return nil
}

// closeOpenTasks closes an account's open and scheduled tasks as skipped.
func (s *Service) closeOpenTasks(t *store.Tx, account string, at time.Time, by string) error {
	tasks, err := t.AccountTasks(account)
	if err != nil {
		return err
	}
	for _, k := range tasks {
		if k.GetState() != playsv1.TaskState_TASK_STATE_OPEN && k.GetState() != playsv1.TaskState_TASK_STATE_SCHEDULED {
			continue
		}
		k.State, k.ClosedAt, k.ClosedBy = playsv1.TaskState_TASK_STATE_SKIPPED, timestamppb.New(at), by
		if err := t.PutTask(k); err != nil {
			return err
		}
	}
	return nil
}

// payload is the JSON body of a webhook or content delivery, in the
// Standard Webhooks shape (type, timestamp, data).
type payload struct {
	Type      string      `json:"type"`
	Timestamp time.Time   `json:"timestamp"`
	Data      payloadData `json:"data"`
}

type payloadData struct {
	Workspace string         `json:"workspace"`
	FiringID  string         `json:"firing_id"`
	Play      payloadPlay    `json:"play"`
	Account   map[string]any `json:"account"`
	Trigger   payloadTrigger `json:"trigger"`
	Why       string         `json:"why"`
	Owner     *payloadOwner  `json:"owner,omitempty"`
	Content   *payloadCont   `json:"content,omitempty"`
	Link      string         `json:"link"`
}

type payloadPlay struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

type payloadTrigger struct {
	Kind    string         `json:"kind"`
	At      time.Time      `json:"at"`
	Summary string         `json:"summary"`
	Record  map[string]any `json:"record"`
}

type payloadOwner struct {
	Role string `json:"role"`
	ID   string `json:"id,omitempty"`
}

type payloadCont struct {
	ID  string `json:"id,omitempty"`
	URL string `json:"url,omitempty"`
}

// message builds the body of a webhook, Slack or content action.
func (s *Service) message(ws string, p *play.Play, act play.Action, a *store.Account, acct map[string]any, tr trigger, f *playsv1.Firing, why string) ([]byte, error) {
	link := s.dashboardURL + "/#/accounts/" + url.PathEscape(a.ID)
	owner := firstOwner(a)
	if act.Type == "slack" {
		text := fmt.Sprintf("*%s* · %s\n*What happened:* %s\n*Why:* play %q on %s\n*Owner:* %s\n<%s|Open %s in Cairn>",
			p.Name, nameOf(a), tr.summary, p.Name, tr.kind, ownerLine(owner), link, nameOf(a))
		return json.Marshal(map[string]string{"text": text})
	}
	pl := payload{Type: "play.fired", Timestamp: tr.at, Data: payloadData{
		Workspace: ws, FiringID: f.GetFiringId(), Play: payloadPlay{ID: p.ID, Name: p.Name}, Account: acct,
		Trigger: payloadTrigger{Kind: tr.kind, At: tr.at, Summary: tr.summary, Record: tr.record},
		Why:     why, Link: link,
	}}
	if owner.ID != "" {
		pl.Data.Owner = &owner
	}
	if act.Type == "content" {
		pl.Type = "play.content"
		pl.Data.Content = &payloadCont{ID: act.ContentID, URL: act.URL}
	}
	return json.Marshal(pl)
}

func nameOf(a *store.Account) string {
	if a.Name != "" {
		return a.Name + " (" + a.ID + ")"
	}
	return a.ID
}

// firstOwner is the account's owner to name in a message: the CSM, else
// the AE, else the SDR.
func firstOwner(a *store.Account) payloadOwner {
	for _, r := range []string{"csm", "ae", "sdr"} {
		if id := a.Owners[r]; id != "" {
			return payloadOwner{Role: r, ID: id}
		}
	}
	return payloadOwner{}
}

func ownerLine(o payloadOwner) string {
	if o.ID == "" {
		return "nobody assigned yet"
	}
	return fmt.Sprintf("%s (%s)", o.ID, strings.ToUpper(o.Role))
}
