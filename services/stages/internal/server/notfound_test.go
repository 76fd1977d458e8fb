package server_test

import (
	"fmt"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
)

// TestClientFacingErrors: a NotFound names what was asked for, not the
// store's error chain, and an unknown stage filter is refused naming the
// stage instead of answering an empty list.
func TestClientFacingErrors(t *testing.T) {
	r := newRig(t)
	c, ctx := r.client("reader")
	r.send(event("acme", "u1", "demo_requested", t0, nil))
	tests := []struct {
		name  string
		call  func() error
		code  codes.Code
		msg   string
		field string
	}{
		{"unknown journey", func() error {
			_, err := c.GetJourney(ctx, &stagesv1.GetJourneyRequest{JourneyId: "nope"})
			return err
		}, codes.NotFound, `journey "nope" not found, or it has no active version`, ""},
		{"unknown version", func() error {
			_, err := c.GetJourney(ctx, &stagesv1.GetJourneyRequest{JourneyId: "default", Version: 9})
			return err
		}, codes.NotFound, `journey "default" v9 not found`, ""},
		{"unknown account", func() error {
			_, err := c.GetAccountJourney(ctx, &stagesv1.GetAccountJourneyRequest{AccountId: "nope"})
			return err
		}, codes.NotFound, `account "nope" not found in the workspace's journey (unknown, or not placed yet)`, ""},
		{"unknown stage filter", func() error {
			_, err := c.ListAccounts(ctx, &stagesv1.ListAccountsRequest{Stage: "onbording"})
			return err
		}, codes.InvalidArgument, `stage: unknown stage "onbording" in journey "default"`, "stage"},
		{"known stage filter", func() error {
			_, err := c.ListAccounts(ctx, &stagesv1.ListAccountsRequest{Stage: "evaluation"})
			return err
		}, codes.OK, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			st := status.Convert(err)
			if st.Code() != tc.code || !strings.HasPrefix(st.Message(), tc.msg) {
				t.Fatalf("error = %v %q, want %v %q", st.Code(), st.Message(), tc.code, tc.msg)
			}
			for _, leak := range []string{"get ", "active journey", ": not found"} {
				if err != nil && strings.Contains(st.Message(), leak) {
					t.Errorf("message %q holds the internal chain (%q)", st.Message(), leak)
				}
			}
			if got := fmt.Sprint(violations(err)); tc.field != "" && got != "["+tc.field+"]" {
				t.Errorf("violations = %s, want [%s]", got, tc.field)
			}
		})
	}
}
