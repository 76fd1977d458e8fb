package vocab

func str(name string, req bool, notes string) Property {
	return Property{Name: name, Kind: KindString, Required: req, Notes: notes}
}
func when(name string, req bool, notes string) Property {
	return Property{Name: name, Kind: KindTime, Required: req, Notes: notes}
}
func amount(name string, req bool, notes string) Property {
	return Property{Name: name, Kind: KindNumber, Required: req, HasMin: true, Notes: notes}
}
func positive(name string, req bool, notes string) Property {
	return Property{Name: name, Kind: KindNumber, Required: req, HasMin: true, ExclusiveMin: true, Notes: notes}
}

var priorities = []string{"p1", "p2", "p3", "p4"}

// build is the vocabulary. The reserved events are the contract for the
// journey's non-product sources (docs/events.md documents each); the
// product events are those the built-in journey templates, the default
// health model, routing's defaults and the demo give a meaning to.
func build() []Event {
	reserved := []Event{
		{Name: "crm.lead_created", Source: SourceCRM, Summary: "A lead was created in the CRM.",
			Properties: []Property{str("lead_id", true, "CRM lead id"), str("email", false, ""), str("lead_source", false, "e.g. webinar, inbound")}},
		{Name: "crm.mql", Source: SourceCRM, Summary: "Marketing qualified the lead: routing opens an MQL handoff.",
			Properties: []Property{str("lead_id", false, ""), amount("score", false, "lead score"), str("reason", false, "")}},
		{Name: "crm.sql_accepted", Source: SourceCRM, Summary: "Sales accepted the lead as a sales-qualified lead.",
			Properties: []Property{str("lead_id", false, ""), str("opportunity_id", false, ""), str("owner_id", false, "the accepting rep")}},
		{Name: "crm.contacted", Source: SourceCRM, Summary: "An owner contacted the lead or account: a touch of its open handoffs.",
			Properties: []Property{{Name: "channel", Kind: KindEnum, Enum: []string{"email", "call", "meeting", "social", "other"}}, str("owner_id", false, "")}},
		{Name: "crm.meeting_booked", Source: SourceCRM, Summary: "A meeting was booked with the lead or account: a touch.",
			Properties: []Property{when("meeting_at", false, ""), str("owner_id", false, "")}},
		{Name: "crm.opportunity_stage_changed", Source: SourceCRM, Summary: "An opportunity moved to another CRM stage.",
			Properties: []Property{str("opportunity_id", true, ""), str("stage", true, ""), str("previous_stage", false, ""), amount("amount", false, "")}},
		{Name: "crm.closed_won", Source: SourceCRM, Summary: "The deal was won: the account becomes a customer.",
			Properties: []Property{str("opportunity_id", false, ""), amount("amount", false, ""), str("plan", false, "")}},
		{Name: "crm.closed_lost", Source: SourceCRM, Summary: "The deal was lost: routing closes the lead's open handoffs.",
			Properties: []Property{str("opportunity_id", false, ""), str("reason", false, "")}},
		{Name: "crm.lead_disqualified", Source: SourceCRM, Summary: "Sales disqualified the lead: routing closes its open handoffs.",
			Properties: []Property{str("lead_id", false, ""), str("reason", false, "")}},
		{Name: "crm.renewal_won", Source: SourceCRM, Summary: "A renewal opportunity was won in the CRM (a renewal ahead of billing).",
			Properties: []Property{str("opportunity_id", false, ""), amount("amount", false, "")}},
		{Name: "billing.subscription_started", Source: SourceBilling, Summary: "A paid subscription started: the account becomes a customer.",
			Properties: []Property{str("plan", true, ""), positive("seats", false, ""), amount("arr", false, "annual recurring revenue")}},
		{Name: "billing.contract_updated", Source: SourceBilling, Summary: "The contract's plan, seats, ARR or dates changed.",
			Properties: []Property{str("plan", true, ""), positive("seats", true, ""), amount("arr", true, ""),
				when("contract_start", true, ""), when("contract_end", true, "after contract_start")}},
		{Name: "billing.product_added", Source: SourceBilling, Summary: "The customer bought another product or add-on: an expansion.",
			Properties: []Property{str("product", true, "the product or add-on"), amount("arr", false, "the ARR it adds")}},
		{Name: "billing.renewed", Source: SourceBilling, Summary: "The contract renewed.",
			Properties: []Property{amount("arr", false, ""), when("contract_end", false, "the new end")}},
		{Name: "billing.churned", Source: SourceBilling, Summary: "The customer left: the account is churned until a win-back.",
			Properties: []Property{str("reason", false, ""), amount("arr", false, "the ARR lost")}},
		{Name: "support.ticket_opened", Source: SourceSupport, Summary: "A support ticket was opened.",
			Properties: []Property{str("ticket_id", true, ""), {Name: "priority", Kind: KindEnum, Required: true, Enum: priorities}}},
		{Name: "support.ticket_resolved", Aliases: []string{"support.ticket_closed"}, Source: SourceSupport, Summary: "A support ticket was resolved (or closed).",
			Properties: []Property{str("ticket_id", true, ""), {Name: "priority", Kind: KindEnum, Enum: priorities}}},
		{Name: "survey.nps", Source: SourceSurvey, Summary: "A Net Promoter Score answer.",
			Properties: []Property{{Name: "score", Kind: KindInteger, Required: true, HasMin: true, HasMax: true, Min: 0, Max: 10}, str("comment", false, "")}},
		{Name: "meeting.qbr_held", Aliases: []string{"meeting.qbr"}, Source: SourceMeeting, Summary: "A quarterly business review was held.",
			Properties: []Property{when("held_at", false, ""), {Name: "attendees", Kind: KindInteger, HasMin: true, Min: 0}}},
	}
	milestone := func(name, summary string) Event {
		return Event{Name: name, Source: SourceProduct, Role: RoleMilestone, Summary: summary}
	}
	feature := func(name, summary string) Event {
		return Event{Name: name, Source: SourceProduct, Role: RoleFeature, Summary: summary}
	}
	engagement := func(name, summary string) Event {
		return Event{Name: name, Source: SourceProduct, Role: RoleEngagement, Summary: summary}
	}
	product := []Event{
		engagement("content_viewed", "Marketing content was viewed."),
		engagement("content_downloaded", "Marketing content was downloaded."),
		engagement("email_clicked", "A marketing email was clicked."),
		engagement("webinar_attended", "A webinar was attended."),
		milestone("demo_requested", "A demo was requested."),
		milestone("trial_started", "A free trial started: the account is in trial."),
		milestone("trial_converted", "The trial converted to paid."),
		milestone("poc_started", "A proof of concept started."),
		milestone("poc_completed", "The proof of concept completed."),
		milestone("security_review_approved", "The security review approved the purchase."),
		milestone("po_raised", "A purchase order was raised."),
		milestone("contract_signed", "The contract was signed."),
		milestone("setup_completed", "Onboarding setup was completed."),
		milestone("activated", "The account performed its activation event (first value)."),
		milestone("review_posted", "A customer posted a public review."),
		milestone("referral_sent", "A customer referred another company."),
		feature("report_created", "A report was created."),
		feature("dashboard_shared", "A dashboard was shared."),
		feature("export_run", "An export was run."),
		{Name: "alert_created", Aliases: []string{"alert_configured"}, Source: SourceProduct, Role: RoleFeature, Summary: "An alert was created (or configured)."},
		feature("workflow_created", "A workflow was created."),
		feature("api_key_created", "An API key was created."),
		{Name: IntegrationConnected, Aliases: []string{"integration_connected"}, Source: SourceProduct, Role: RoleIntegration,
			Summary:    "An integration was connected; its name is the integration property.",
			Properties: []Property{str("integration", false, "e.g. salesforce")}},
		{Name: "integration.disconnected", Aliases: []string{"integration_disconnected"}, Source: SourceProduct, Role: RoleIntegration,
			Summary:    "An integration was disconnected.",
			Properties: []Property{str("integration", false, "")}},
		{Name: "$seats_increased", Source: SourceProduct, Role: RoleSynthetic, Summary: "Recorded by Cairn when a contract update raises the seat count."},
		{Name: "$plan_changed", Source: SourceProduct, Role: RoleSynthetic, Summary: "Recorded by Cairn when the plan changes from one known plan to another."},
	}
	return append(reserved, product...)
}
