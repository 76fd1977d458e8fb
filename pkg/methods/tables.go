package methods

import "github.com/cairn-dev/cairn/pkg/auth"

// The roles: reads need RoleRead; sending data (events, qualifications,
// hand-offs, touches, SLA pauses) needs RoleWrite, which is what CRM syncs
// and product backends hold; changing definitions, configuration and the
// routing directory, and deleting data, needs RoleAdmin; the logs
// (Subscribe) are for internal peers (RoleService).

// Ingestion is cairn.ingestion.v1.IngestionService, split by workspace:
// attribution and message-id dedup are workspace-wide.
var Ingestion = table("cairn.ingestion.v1.IngestionService", true,
	m("Ingest", auth.RoleWrite, ByWorkspace, post("/v1/events:batch", "*")),
	// A stream's messages are not known when it opens: it goes to the
	// replica of the caller key's workspace.
	m("IngestStream", auth.RoleWrite, ByWorkspace, grpcOnly),
	m("Subscribe", auth.RoleService, NotRouted, grpcOnly),
	m("ListAccountEvents", auth.RoleRead, ByWorkspace, get("/v1/accounts/{account_id}/events")),
	m("DeleteSubject", auth.RoleAdmin, ByWorkspace, post("/v1/subjects:delete", "*")),
	m("GetLogInfo", auth.RoleRead, ByWorkspace, get("/v1/log")),
)

// Stages is cairn.stages.v1.StagesService, split by account partition.
var Stages = table("cairn.stages.v1.StagesService", false,
	m("ValidateJourney", auth.RoleRead, AnyReplica, post("/v1/journeys:validate", "*")),
	m("ApplyJourney", auth.RoleAdmin, Broadcast, post("/v1/journeys", "*")),
	m("GetJourney", auth.RoleRead, AnyReplica, get("/v1/journeys/{journey_id}")),
	m("ListJourneyVersions", auth.RoleRead, AnyReplica, get("/v1/journeys/{journey_id}/versions")),
	m("ListJourneyTemplates", auth.RoleRead, AnyReplica, get("/v1/journey-templates")),
	// Replica 0 names the replay, then every other replica starts it
	// under that name over its own partitions.
	m("StartReplay", auth.RoleAdmin, Aggregate, post("/v1/journeys/{journey_id}/versions/{version}:replay", "*")),
	m("GetReplay", auth.RoleRead, Aggregate, get("/v1/replays/{replay_id}")),
	m("ActivateJourney", auth.RoleAdmin, Broadcast, post("/v1/journeys/{journey_id}/versions/{version}:activate", "*")),
	m("GetAccountJourney", auth.RoleRead, ByAccount, get("/v1/accounts/{account_id}/journey")),
	m("ListAccounts", auth.RoleRead, ConcatPages, get("/v1/journey/accounts")),
	// With account_id set, the account's owner answers (see Route).
	m("ListSignals", auth.RoleRead, ConcatPages, get("/v1/journey/signals")),
	m("GetFunnel", auth.RoleRead, Aggregate, get("/v1/funnel")),
	// Definitions are broadcast on apply, so every replica knows them all.
	m("ListJourneys", auth.RoleRead, AnyReplica, get("/v1/journeys")),
	m("GetMomentsOfTruth", auth.RoleRead, Aggregate, get("/v1/moments-of-truth")),
	m("GetBuyingCommittee", auth.RoleRead, ByAccount, get("/v1/accounts/{account_id}/committee")),
	// Every replica reports its own consumers' lag; the gateway joins them
	// (its /v1/dashboard/status adds them up).
	m("GetStatus", auth.RoleRead, Broadcast, grpcOnly),
	m("Subscribe", auth.RoleService, NotRouted, grpcOnly),
)

// Health is cairn.health.v1.HealthService (account health scores, not the
// gRPC health check: see HealthCheck), split by account partition.
var Health = table("cairn.health.v1.HealthService", false,
	m("ValidateModel", auth.RoleRead, AnyReplica, post("/v1/health-models:validate", "*")),
	m("ApplyModel", auth.RoleAdmin, Broadcast, post("/v1/health-models", "*")),
	m("GetModel", auth.RoleRead, AnyReplica, get("/v1/health-models/{model_id}")),
	m("ListModelVersions", auth.RoleRead, AnyReplica, get("/v1/health-models/{model_id}/versions")),
	m("GetAccountHealth", auth.RoleRead, ByAccount, get("/v1/accounts/{account_id}/health")),
	m("ListHealthHistory", auth.RoleRead, ByAccount, get("/v1/accounts/{account_id}/health/history")),
	m("ListAccounts", auth.RoleRead, ConcatPages, get("/v1/health/accounts")),
	// With account_id set, the account's owner answers (see Route).
	m("ListSignals", auth.RoleRead, ConcatPages, get("/v1/signals")),
	m("Backtest", auth.RoleRead, Aggregate, post("/v1/health:backtest", "*")),
	// Every replica rescores its own accounts.
	m("Rescore", auth.RoleAdmin, Broadcast, post("/v1/health:rescore", "*")),
	m("GetStatus", auth.RoleRead, Broadcast, grpcOnly),
	m("Subscribe", auth.RoleService, NotRouted, grpcOnly),
)

// Routing is cairn.routing.v1.RoutingService, split by workspace: owners,
// pools, rules and assignments are workspace-wide.
var Routing = table("cairn.routing.v1.RoutingService", true,
	m("UpsertOwner", auth.RoleAdmin, ByWorkspace, put("/v1/owners/{owner.owner_id}", "owner")),
	m("GetOwner", auth.RoleRead, ByWorkspace, get("/v1/owners/{owner_id}")),
	m("ListOwners", auth.RoleRead, ByWorkspace, get("/v1/owners")),
	m("DeleteOwner", auth.RoleAdmin, ByWorkspace, del("/v1/owners/{owner_id}")),
	m("UpsertPool", auth.RoleAdmin, ByWorkspace, put("/v1/pools/{pool.pool_id}", "pool")),
	m("GetPool", auth.RoleRead, ByWorkspace, get("/v1/pools/{pool_id}")),
	m("ListPools", auth.RoleRead, ByWorkspace, get("/v1/pools")),
	m("DeletePool", auth.RoleAdmin, ByWorkspace, del("/v1/pools/{pool_id}")),
	m("ValidateConfig", auth.RoleRead, ByWorkspace, post("/v1/routing-config:validate", "*")),
	m("ApplyConfig", auth.RoleAdmin, ByWorkspace, put("/v1/routing-config", "*")),
	m("GetConfig", auth.RoleRead, ByWorkspace, get("/v1/routing-config")),
	m("Qualify", auth.RoleWrite, ByWorkspace, post("/v1/qualifications", "*")),
	m("Handoff", auth.RoleWrite, ByWorkspace, post("/v1/handoffs", "*")),
	m("GetAssignment", auth.RoleRead, ByWorkspace, get("/v1/assignments/{assignment_id}")),
	m("ListAssignments", auth.RoleRead, ByWorkspace, get("/v1/assignments")),
	m("RecordTouch", auth.RoleWrite, ByWorkspace, post("/v1/assignments/{assignment_id}/touches", "*")),
	m("PauseSla", auth.RoleWrite, ByWorkspace, post("/v1/assignments/{assignment_id}:pause", "*")),
	m("ResumeSla", auth.RoleWrite, ByWorkspace, post("/v1/assignments/{assignment_id}:resume", "*")),
	m("Reassign", auth.RoleAdmin, ByWorkspace, post("/v1/assignments/{assignment_id}:reassign", "*")),
	m("GetReport", auth.RoleRead, ByWorkspace, get("/v1/routing/report")),
	m("ListOwnerLoad", auth.RoleRead, ByWorkspace, get("/v1/routing/load")),
	m("GetAccountFit", auth.RoleRead, ByWorkspace, get("/v1/accounts/{account_id}/fit")),
	// The replica of the caller's workspace answers: every replica reads
	// every upstream record, and that replica's lag is what delays the
	// workspace's answers.
	m("GetStatus", auth.RoleRead, ByWorkspace, grpcOnly),
	m("Subscribe", auth.RoleService, NotRouted, grpcOnly),
)

// Plays is cairn.plays.v1.PlaysService, split by workspace like routing:
// plays files, cooldowns, tasks and the delivery outbox are kept per
// workspace.
var Plays = table("cairn.plays.v1.PlaysService", true,
	m("ApplyPlays", auth.RoleAdmin, ByWorkspace, put("/v1/plays", "*")),
	m("GetPlays", auth.RoleRead, ByWorkspace, get("/v1/plays")),
	m("ListTasks", auth.RoleRead, ByWorkspace, get("/v1/tasks")),
	m("UpdateTask", auth.RoleWrite, ByWorkspace, patch("/v1/tasks/{task_id}", "*")),
	m("ListFirings", auth.RoleRead, ByWorkspace, get("/v1/plays/firings")),
	m("ListDeliveries", auth.RoleRead, ByWorkspace, get("/v1/deliveries")),
	m("Redeliver", auth.RoleWrite, ByWorkspace, post("/v1/deliveries:redeliver", "*")),
	m("ListDestinations", auth.RoleRead, ByWorkspace, get("/v1/destinations")),
	m("StartReplay", auth.RoleAdmin, ByWorkspace, post("/v1/plays:replay", "*")),
	m("GetReplay", auth.RoleRead, ByWorkspace, get("/v1/plays/replays/{replay_id}")),
	m("GetStatus", auth.RoleRead, ByWorkspace, grpcOnly),
)
