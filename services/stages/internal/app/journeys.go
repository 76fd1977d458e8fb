package app

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"google.golang.org/protobuf/types/known/timestamppb"

	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
	pstore "github.com/cairn-dev/cairn/pkg/store"
	"github.com/cairn-dev/cairn/services/stages/internal/journey"
	"github.com/cairn-dev/cairn/services/stages/internal/store"
)

// ApplyJourney stores def as the next version of its journey, stamped with
// its version and creation time, and activates it when activate is set or
// when the journey has no active version. def must be valid (the server
// refuses what journey.Validate reports); ApplyJourney fills in its
// Version and CreatedAt. It returns def and whether it is active. A
// definition equal to the latest version but for those is not stored again:
// that version is returned, with unchanged set (and activated when asked or
// when none is active).
func (a *App) ApplyJourney(_ context.Context, ws string, def *stagesv1.JourneyDefinition, activate bool) (_ *stagesv1.JourneyDefinition, active, unchanged bool, err error) {
	err = a.db.Update(func(tx *pstore.Tx) error {
		latest, err := store.LatestVersion(tx, ws, def.GetId())
		if err != nil {
			return err
		}
		if latest > 0 {
			prev, err := store.GetDefinition(tx, ws, def.GetId(), latest)
			if err != nil {
				return err
			}
			// Applying the same file again must not make a version that
			// differs from the latest only by its number and time.
			if pstore.SameContent(prev, def) {
				def, unchanged = prev, true
				act, err := store.Active(tx, ws, def.GetId())
				switch {
				case err == nil && act == latest:
					active = true
				case err != nil && !errors.Is(err, store.ErrNotFound):
					return err
				case activate || errors.Is(err, store.ErrNotFound):
					active = true
					return store.SetActive(tx, ws, def.GetId(), latest)
				}
				return nil
			}
		}
		def.Version = latest + 1
		def.CreatedAt = timestamppb.New(a.clock.Now())
		if err := store.PutDefinition(tx, ws, def); err != nil {
			return err
		}
		if _, err := store.Active(tx, ws, def.GetId()); errors.Is(err, store.ErrNotFound) || activate {
			active = true
			return store.SetActive(tx, ws, def.GetId(), def.GetVersion())
		}
		return nil
	})
	if err != nil {
		return nil, false, false, fmt.Errorf("apply journey %q: %w", def.GetId(), err)
	}
	return def, active, unchanged, nil
}

// resolveJourney returns the journey id a request means: the named one, else
// "default" when it exists, else the workspace's first active journey.
func resolveJourney(tx *pstore.Tx, ws, id string) (string, error) {
	if id != "" {
		return id, nil
	}
	active, err := store.ActiveJourneys(tx, ws)
	if err != nil {
		return "", err
	}
	if id := defaultOf(active); id != "" {
		return id, nil
	}
	return "", fmt.Errorf("workspace has no active journey: %w", store.ErrNotFound)
}

// defaultOf is the default journey among a workspace's active ones:
// "default" when it is active, else the first in store order (shorter ids
// first, the order ListJourneys lists them); "" when none is active.
func defaultOf(active []store.ActiveJourney) string {
	for _, a := range active {
		if a.ID == journey.DefaultJourney {
			return a.ID
		}
	}
	if len(active) > 0 {
		return active[0].ID
	}
	return ""
}

// ListJourneys lists the workspace's journeys that have an active version,
// at that version: the default journey (the one resolveJourney picks for
// no id) first, then by id.
func (a *App) ListJourneys(_ context.Context, ws string) ([]*stagesv1.JourneySummary, error) {
	var out []*stagesv1.JourneySummary
	err := a.db.View(func(tx *pstore.Tx) error {
		active, err := store.ActiveJourneys(tx, ws)
		if err != nil || len(active) == 0 {
			return err
		}
		def, err := resolveJourney(tx, ws, "")
		if err != nil {
			return err
		}
		for _, j := range active {
			d, err := store.GetDefinition(tx, ws, j.ID, j.Version)
			if err != nil {
				return err
			}
			out = append(out, &stagesv1.JourneySummary{Id: j.ID, Name: d.GetName(), Description: d.GetDescription(),
				ActiveVersion: j.Version, Stages: int32(len(d.GetStages())), IsDefault: j.ID == def})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list journeys: %w", err)
	}
	slices.SortStableFunc(out, func(x, y *stagesv1.JourneySummary) int {
		if x.IsDefault != y.IsDefault {
			if x.IsDefault {
				return -1
			}
			return 1
		}
		return strings.Compare(x.Id, y.Id)
	})
	return out, nil
}

// GetJourney returns one version of a journey (version 0: the active one;
// id "": the workspace's default journey) and whether it is active.
func (a *App) GetJourney(_ context.Context, ws, id string, version uint32) (*stagesv1.JourneyDefinition, bool, error) {
	var def *stagesv1.JourneyDefinition
	active := false
	err := a.db.View(func(tx *pstore.Tx) error {
		id, err := resolveJourney(tx, ws, id)
		if err != nil {
			return err
		}
		if def, err = store.GetDefinition(tx, ws, id, version); err != nil {
			return err
		}
		act, err := store.Active(tx, ws, id)
		active = err == nil && act == def.GetVersion()
		return nil
	})
	if err != nil {
		return nil, false, err
	}
	return def, active, nil
}

// ListJourneyVersions lists up to size versions of a journey (id "": the
// workspace's default journey), newest first, below before (0: from the
// newest). It also returns the active version (0 when none is) and
// whether older versions follow.
func (a *App) ListJourneyVersions(_ context.Context, ws, id string, before uint32, size int) (defs []*stagesv1.JourneyDefinition, active uint32, more bool, err error) {
	err = a.db.View(func(tx *pstore.Tx) error {
		id, err := resolveJourney(tx, ws, id)
		if err != nil {
			return err
		}
		if v, err := store.Active(tx, ws, id); err == nil {
			active = v
		}
		return store.Versions(tx, ws, id, before, func(d *stagesv1.JourneyDefinition) (bool, error) {
			if len(defs) == size {
				more = true
				return false, nil
			}
			defs = append(defs, d)
			return true, nil
		})
	})
	if err != nil {
		return nil, 0, false, err
	}
	return defs, active, more, nil
}
