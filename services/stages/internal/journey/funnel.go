package journey

import (
	"time"

	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
)

// FunnelQuery selects the stays a funnel counts and what else it answers
// (docs/journeys.md, "Funnel").
type FunnelQuery struct {
	// Journey id; "" is the workspace's default journey.
	Journey string
	// Cohort, Segment and Plan filter stays; "" matches all.
	Cohort, Segment, Plan string
	// From and To bound the stays counted by when they began: From <=
	// entered < To; a zero bound is open.
	From, To time.Time
	// Window is the conversion window: a stay converts only if it moved on
	// within Window of entering (inclusive). Zero: no window.
	Window time.Duration
	// Breakdown and Trend ask for the funnel split by a dimension or by
	// period.
	Breakdown stagesv1.FunnelBreakdown
	Trend     stagesv1.FunnelInterval
	// Figure, FigureStage and FigureBucket ask for the accounts one figure
	// counts (FigureBucket: 1-based time-to-convert bucket, with
	// FUNNEL_FIGURE_CONVERTED; 0: any).
	Figure       stagesv1.FunnelFigure
	FigureStage  string
	FigureBucket int
}
