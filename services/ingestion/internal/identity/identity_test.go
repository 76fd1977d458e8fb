package identity

import (
	"fmt"
	"testing"

	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	"github.com/cairn-dev/cairn/pkg/stream"
	"google.golang.org/protobuf/types/known/structpb"
)

func props(m map[string]any) *structpb.Struct {
	s, err := structpb.NewStruct(m)
	if err != nil {
		panic(err)
	}
	return s
}

func TestContextGroup(t *testing.T) {
	tests := []struct {
		name string
		ev   *ingestionv1.Event
		want string
	}{
		{"context wins", &ingestionv1.Event{Type: ingestionv1.EventType_EVENT_TYPE_GROUP, GroupId: "g", Context: props(map[string]any{"groupId": "c"})}, "c"},
		{"group call", &ingestionv1.Event{Type: ingestionv1.EventType_EVENT_TYPE_GROUP, GroupId: "g"}, "g"},
		{"track has none", &ingestionv1.Event{Type: ingestionv1.EventType_EVENT_TYPE_TRACK, GroupId: "ignored"}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := ContextGroup(tc.ev); got != tc.want {
				t.Errorf("ContextGroup() = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestSubject(t *testing.T) {
	for _, tc := range []struct {
		ev   *ingestionv1.Event
		want string
	}{
		{&ingestionv1.Event{UserId: "u", AnonymousId: "a"}, "u"},
		{&ingestionv1.Event{AnonymousId: "a"}, "a"},
		{&ingestionv1.Event{}, ""},
	} {
		if got := Subject(tc.ev); got != tc.want {
			t.Errorf("Subject(%v) = %q, want %q", tc.ev, got, tc.want)
		}
	}
}

func TestPartition(t *testing.T) {
	if got, want := Partition("w", "acme", "u", 8), stream.Partition("w", "acme", 8); got != want {
		t.Errorf("attributed: partition %d, want the account's %d", got, want)
	}
	if got, want := Partition("w", "", "u", 8), stream.Partition("w", "user:u", 8); got != want {
		t.Errorf("unattributed: partition %d, want the user's %d", got, want)
	}
	// A user named like an account does not share its partition key.
	if Partition("w", "", "acme", 1<<20) == Partition("w", "acme", "", 1<<20) {
		t.Error("user acme and account acme share a partition key")
	}
}

func TestReattribute(t *testing.T) {
	ev := &ingestionv1.Event{MessageId: "m", UserId: "u"}
	Reattribute(ev, "acme")
	if ev.GetAccountId() != "acme" || !ev.GetReattributed() {
		t.Errorf("Reattribute() = %v", ev)
	}
}

func TestChanges(t *testing.T) {
	group := func(subject, account string) *ingestionv1.Event {
		return &ingestionv1.Event{Type: ingestionv1.EventType_EVENT_TYPE_GROUP, UserId: subject, GroupId: account}
	}
	alias := func(subject, previous string) *ingestionv1.Event {
		return &ingestionv1.Event{Type: ingestionv1.EventType_EVENT_TYPE_ALIAS, UserId: subject, PreviousId: previous}
	}
	tests := []struct {
		name  string
		ev    *ingestionv1.Event
		users map[string]string // subject -> account
		want  []Step
	}{
		{name: "track changes nothing", ev: &ingestionv1.Event{Type: ingestionv1.EventType_EVENT_TYPE_TRACK, UserId: "u", Event: "x"}},
		{name: "no subject changes nothing", ev: &ingestionv1.Event{Type: ingestionv1.EventType_EVENT_TYPE_GROUP, GroupId: "acme"}},
		{name: "group maps and re-attributes", ev: group("u", "acme"), want: []Step{
			{Kind: MapUser, Subject: "u", Account: "acme"},
			{Kind: ReattributePending, From: "u", Subject: "u", Account: "acme"},
		}},
		{name: "regroup maps again", ev: group("u", "globex"), users: map[string]string{"u": "acme"}, want: []Step{
			{Kind: MapUser, Subject: "u", Account: "globex"},
			{Kind: ReattributePending, From: "u", Subject: "u", Account: "globex"},
		}},
		{name: "alias to itself changes nothing", ev: alias("u", "u"), users: map[string]string{"u": "acme"}},
		{name: "alias of a grouped user re-attributes the previous id's events", ev: alias("u", "anon"),
			users: map[string]string{"u": "acme"}, want: []Step{
				{Kind: ReattributePending, From: "anon", Subject: "u", Account: "acme"},
			}},
		{name: "alias inherits the previous identity's account", ev: alias("u", "anon"),
			users: map[string]string{"anon": "acme"}, want: []Step{
				{Kind: MapUser, Subject: "u", Account: "acme"},
				{Kind: ReattributePending, From: "u", Subject: "u", Account: "acme"},
				{Kind: ReattributePending, From: "anon", Subject: "u", Account: "acme"},
			}},
		{name: "the user's own account wins over the previous one", ev: alias("u", "anon"),
			users: map[string]string{"u": "acme", "anon": "globex"}, want: []Step{
				{Kind: ReattributePending, From: "anon", Subject: "u", Account: "acme"},
			}},
		{name: "alias before any group moves pending events", ev: alias("u", "anon"), want: []Step{
			{Kind: MovePending, From: "anon", Subject: "u"},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			users := func(s string) (string, bool) {
				a, ok := tc.users[s]
				return a, ok
			}
			got := Changes(tc.ev, Subject(tc.ev), users)
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("Changes() = %v, want %v", got, tc.want)
			}
		})
	}
}
