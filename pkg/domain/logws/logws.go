// Package logws gives the workspace of the records on Cairn's logs, and
// filters a batch to the workspaces one replica keeps. Services split by
// workspace (routing, plays) read every partition of every upstream and
// apply only their own workspaces' records.
package logws

import (
	healthv1 "github.com/cairn-dev/cairn/gen/cairn/health/v1"
	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	routingv1 "github.com/cairn-dev/cairn/gen/cairn/routing/v1"
	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
)

// Owned drops the records of workspaces another replica keeps; the
// cursor still moves past them. With owns nil (a single replica) recs is
// returned as is.
func Owned[T any](owns func(string) bool, recs []T, workspace func(T) string) []T {
	if owns == nil {
		return recs
	}
	out := recs[:0:0]
	for _, r := range recs {
		if owns(workspace(r)) {
			out = append(out, r)
		}
	}
	return out
}

// Ingestion is an event's or tombstone's workspace.
func Ingestion(r *ingestionv1.LogRecord) string {
	if ts := r.GetTombstone(); ts != nil {
		return ts.GetWorkspace()
	}
	return r.GetEvent().GetWorkspace()
}

// Stages is a transition's, signal's or tombstone's workspace.
func Stages(r *stagesv1.LogRecord) string {
	switch {
	case r.GetTransition() != nil:
		return r.GetTransition().GetWorkspace()
	case r.GetSignal() != nil:
		return r.GetSignal().GetWorkspace()
	}
	return r.GetTombstone().GetWorkspace()
}

// Health is a score change's, signal's or tombstone's workspace.
func Health(r *healthv1.LogRecord) string {
	switch {
	case r.GetScoreChange() != nil:
		return r.GetScoreChange().GetWorkspace()
	case r.GetSignal() != nil:
		return r.GetSignal().GetWorkspace()
	}
	return r.GetTombstone().GetWorkspace()
}

// Routing is an assignment's, SLA event's or tombstone's workspace.
func Routing(r *routingv1.LogRecord) string {
	switch {
	case r.GetAssignment() != nil:
		return r.GetAssignment().GetWorkspace()
	case r.GetSlaEvent() != nil:
		return r.GetSlaEvent().GetWorkspace()
	}
	return r.GetTombstone().GetWorkspace()
}
