package app

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	healthv1 "github.com/cairn-dev/cairn/gen/cairn/health/v1"
	"github.com/cairn-dev/cairn/pkg/apierr"
	kv "github.com/cairn-dev/cairn/pkg/store"

	"github.com/cairn-dev/cairn/services/health/internal/model"
	"github.com/cairn-dev/cairn/services/health/internal/store"
)

// ValidateModel compiles m without storing it and lists its problems (none
// when it is valid).
func (a *App) ValidateModel(m *healthv1.Model) []*commonv1.ValidationError {
	c, err := a.comp.For(m)
	if err != nil {
		return []*commonv1.ValidationError{{Path: "features", Message: err.Error()}}
	}
	return model.Validate(m, c)
}

// compile compiles m with the compiler of its features (measure.Features).
func (a *App) compile(m *healthv1.Model) (*model.Compiled, error) {
	c, err := a.comp.For(m)
	if err != nil {
		return nil, err
	}
	return model.Compile(m, c)
}

// checkModel refuses a model that does not compile. The server validates
// models before it hands them over (ValidateModel), with a field violation
// per problem; this only guards the use cases against other callers.
func (a *App) checkModel(m *healthv1.Model) error {
	if _, err := a.compile(m); err != nil {
		return fmt.Errorf("%w: model: %v", apierr.ErrInvalid, err)
	}
	return nil
}

// ApplyModel stores m, a valid model (ValidateModel), as the next version
// of its id ("default" when empty) and, with activate, makes it the
// workspace's scoring model. It sets m's id, version and creation time and
// returns m and whether it is active. A model equal to the latest version of
// its id but for those is not stored again: that version is returned, with
// unchanged set (and activated when asked).
func (a *App) ApplyModel(_ context.Context, ws string, m *healthv1.Model, activate bool) (_ *healthv1.Model, active, unchanged bool, err error) {
	if m.GetId() == "" {
		m.Id = "default"
	}
	if err := a.checkModel(m); err != nil {
		return nil, false, false, err
	}
	m.CreatedAt = timestamppb.New(a.clk.Now())
	err = a.db.Update(func(tx *kv.Tx) error {
		latest, err := store.ListModels(tx, ws, m.GetId(), 0, 1)
		if err != nil {
			return err
		}
		// Applying the same file again must not make a version that
		// differs from the latest only by its number and time.
		if len(latest) == 1 && kv.SameContent(latest[0], m) {
			m, unchanged = latest[0], true
			activeID, activeVer, err := store.Active(tx, ws)
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
			active = activate || (err == nil && activeID == m.GetId() && activeVer == m.GetVersion())
			if activate {
				return store.SetActive(tx, ws, m.GetId(), m.GetVersion())
			}
			return nil
		}
		active = activate
		if err := store.PutModel(tx, ws, m); err != nil {
			return err
		}
		if activate {
			return store.SetActive(tx, ws, m.GetId(), m.GetVersion())
		}
		return nil
	})
	if err != nil {
		return nil, false, false, fmt.Errorf("apply model %q: %w", m.GetId(), err)
	}
	return m, active, unchanged, nil
}

// GetModel returns a stored version, the active one when id and version
// are both empty, or the built-in default model (version 0 of "default")
// when the workspace never applied one; active says whether it is the
// active model. Without a version, an id gets its active version if it is
// the active model, else its newest.
func (a *App) GetModel(_ context.Context, ws, id string, version uint32) (m *healthv1.Model, active bool, err error) {
	err = a.db.View(func(tx *kv.Tx) error {
		activeID, activeVer, err := store.Active(tx, ws)
		if errors.Is(err, store.ErrNotFound) {
			activeID, activeVer = "default", 0
		} else if err != nil {
			return err
		}
		ver := version
		wantActive := id == "" && ver == 0
		if id == "" {
			id = activeID
		}
		if wantActive {
			ver = activeVer
		} else if ver == 0 {
			// No version: the active one if this id is active, else the
			// newest stored; the built-in default is version 0 of "default".
			if id == activeID && activeVer != 0 {
				ver = activeVer
			} else {
				ms, err := store.ListModels(tx, ws, id, 0, 1)
				if err != nil {
					return err
				}
				switch {
				case len(ms) > 0:
					ver = ms[0].GetVersion()
				case id != "default":
					return fmt.Errorf("model %q: %w", id, store.ErrNotFound)
				}
			}
		}
		if ver == 0 { // the built-in default, never stored
			m = proto.Clone(a.def.Model).(*healthv1.Model)
		} else if m, err = store.GetModel(tx, ws, id, ver); err != nil {
			return err
		}
		active = id == activeID && ver == activeVer
		return nil
	})
	if err != nil {
		return nil, false, err
	}
	return m, active, nil
}

// ListModelVersions returns up to n versions of model id ("default" when
// empty), newest first, below version before (0: from the newest), and the
// version of id that is active (0 when another model is).
func (a *App) ListModelVersions(_ context.Context, ws, id string, before uint32, n int) (ms []*healthv1.Model, activeVersion uint32, err error) {
	if id == "" {
		id = "default"
	}
	err = a.db.View(func(tx *kv.Tx) error {
		aid, aver, err := store.Active(tx, ws)
		if err == nil && aid == id {
			activeVersion = aver
		}
		ms, err = store.ListModels(tx, ws, id, before, n)
		return err
	})
	if err != nil {
		return nil, 0, err
	}
	return ms, activeVersion, nil
}
