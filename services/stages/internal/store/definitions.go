package store

import (
	"bytes"
	"slices"

	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
	"github.com/cairn-dev/cairn/pkg/store"
)

// journeys keeps the journey definitions of every workspace: kind
// "journey", one active slot per journey id (the slot is the id).
var journeys = store.NewVersions("journey", func() *stagesv1.JourneyDefinition { return &stagesv1.JourneyDefinition{} })

// --- definitions ---

// PutDefinition stores a definition version. A version is written once.
func PutDefinition(tx *store.Tx, ws string, def *stagesv1.JourneyDefinition) error {
	return journeys.Put(tx, ws, def.GetId(), def.GetVersion(), def)
}

// GetDefinition returns one version, or the active one when version is 0.
func GetDefinition(tx *store.Tx, ws, journey string, version uint32) (*stagesv1.JourneyDefinition, error) {
	if version == 0 {
		v, err := Active(tx, ws, journey)
		if err != nil {
			return nil, err
		}
		version = v
	}
	return journeys.Get(tx, ws, journey, version)
}

// LatestVersion returns the highest stored version of a journey, 0 if none.
func LatestVersion(tx *store.Tx, ws, journey string) (uint32, error) {
	return journeys.Latest(tx, ws, journey)
}

// Versions calls fn for each stored version of a journey, newest first,
// starting below before (0 = from the newest).
func Versions(tx *store.Tx, ws, journey string, before uint32, fn func(*stagesv1.JourneyDefinition) (bool, error)) error {
	return journeys.List(tx, ws, journey, before, func(_ uint32, def *stagesv1.JourneyDefinition) (bool, error) { return fn(def) })
}

// SetActive points a journey at a version.
func SetActive(tx *store.Tx, ws, journey string, version uint32) error {
	return journeys.SetActive(tx, ws, journey, journey, version)
}

// Active returns the active version of a journey.
func Active(tx *store.Tx, ws, journey string) (uint32, error) {
	p, err := journeys.Active(tx, ws, journey)
	if err != nil {
		return 0, err
	}
	return p.Version, nil
}

// ActiveJourney is a journey id with its active version.
type ActiveJourney struct {
	// ID is the journey id.
	ID string
	// Version is the active version.
	Version uint32
}

// ActiveJourneys lists a workspace's journeys that have an active version,
// in the order of their Key(ws, id) (shorter ids first), the order the
// journeys of a workspace have always been evaluated and resolved in.
func ActiveJourneys(tx *store.Tx, ws string) ([]ActiveJourney, error) {
	ps, err := journeys.Actives(tx, ws)
	if err != nil || len(ps) == 0 {
		return nil, err
	}
	out := make([]ActiveJourney, len(ps))
	for i, p := range ps {
		out[i] = ActiveJourney{ID: p.Slot, Version: p.Version}
	}
	if len(out) > 1 {
		slices.SortFunc(out, func(a, b ActiveJourney) int { return bytes.Compare(Key(a.ID), Key(b.ID)) })
	}
	return out, nil
}
