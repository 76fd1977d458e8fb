package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/cairn-dev/cairn/pkg/store"
)

// Outcome is how a stage visit ended.
type Outcome uint8

// Visit outcomes.
const (
	// OutcomeOpen: the account is still in the stage.
	OutcomeOpen Outcome = iota
	// OutcomeConverted: moved to a later stage (or looped on by the definition).
	OutcomeConverted
	// OutcomeRegressed: moved back to an earlier stage.
	OutcomeRegressed
	// OutcomeRemoved: the stage is gone from a new definition.
	OutcomeRemoved
	// OutcomeChurned: the account churned while in the stage and left the
	// journey.
	OutcomeChurned
)

// outcomeMask selects the outcome in a visit's flags byte; the bits above
// it are the flags.
const outcomeMask = 0x1f

// Visit is one stay of an account in a stage; funnels are computed from them.
type Visit struct {
	// Stage id.
	Stage string
	// Account id.
	Account string
	// Entered and Left bound the stay; Left is zero while open.
	Entered, Left time.Time
	// Outcome says how it ended.
	Outcome Outcome
	// Dropoff is set when a drop-off signal opened during the stay, and stays
	// set: it counts stays that were ever flagged.
	Dropoff bool
	// DropoffOpen is set while a drop-off signal of the stay is open: an
	// account that recovered (its signals closed) is no longer dropping off.
	DropoffOpen bool
	// Cohort is the month the account entered the journey, "2026-03".
	Cohort string
	// Segment is the account's segment when it entered the stage.
	Segment string
	// Placed is set when the stay began with a placement (the account's
	// first, a win-back, or after its stage was removed) rather than a move
	// from another stage.
	Placed bool
	// Plan is the account's plan (its "plan" trait) when it entered the
	// stage. Stored after the segment only when set, so visits written
	// before it existed decode with no plan.
	Plan string
}

// visitFields lists the Visit fields the codec below (visitKey, marshal,
// unmarshalVisit and Visits) stores; TestVisitCodecKnowsEveryField fails
// when Visit gains a field missing here.
var visitFields = []string{"Stage", "Account", "Entered", "Left", "Outcome", "Dropoff", "DropoffOpen", "Cohort", "Segment", "Placed", "Plan"}

func (v *Visit) marshal() []byte {
	b := make([]byte, 0, 32+len(v.Cohort)+len(v.Segment))
	var left int64
	if !v.Left.IsZero() {
		left = v.Left.UnixNano()
	}
	b = binary.AppendVarint(b, left)
	flags := byte(v.Outcome)
	if v.Dropoff {
		flags |= 0x80
	}
	if v.DropoffOpen {
		flags |= 0x40
	}
	if v.Placed {
		flags |= 0x20
	}
	b = append(b, flags)
	b = binary.AppendUvarint(b, uint64(len(v.Cohort)))
	b = append(b, v.Cohort...)
	b = binary.AppendUvarint(b, uint64(len(v.Segment)))
	b = append(b, v.Segment...)
	if v.Plan != "" {
		b = binary.AppendUvarint(b, uint64(len(v.Plan)))
		b = append(b, v.Plan...)
	}
	return b
}

func unmarshalVisit(b []byte, v *Visit) error {
	left, n := binary.Varint(b)
	if n <= 0 || len(b) < n+1 {
		return fmt.Errorf("decode visit: %w", errCorruptKey)
	}
	if left != 0 {
		v.Left = time.Unix(0, left).UTC()
	} else {
		v.Left = time.Time{}
	}
	b = b[n:]
	v.Outcome = Outcome(b[0] & outcomeMask)
	v.Placed = b[0]&0x20 != 0
	v.Dropoff = b[0]&0x80 != 0
	v.DropoffOpen = b[0]&0x40 != 0
	b = b[1:]
	v.Plan = ""
	for i, dst := range []*string{&v.Cohort, &v.Segment, &v.Plan} {
		if i == 2 && len(b) == 0 {
			break // written before visits had a plan, or without one
		}
		l, n := binary.Uvarint(b)
		if n <= 0 || uint64(len(b)-n) < l {
			return fmt.Errorf("decode visit: %w", errCorruptKey)
		}
		*dst = string(b[n : n+int(l)])
		b = b[n+int(l):]
	}
	return nil
}

func visitKey(ws, journey string, v *Visit) []byte {
	k := Key(ws, journey, v.Account)
	k = append(k, store.U64(uint64(v.Entered.UnixNano()))...)
	return append(k, v.Stage...)
}

// PutVisit stores or updates a visit.
func (ns Namespace) PutVisit(tx *store.Tx, ws, journey string, v *Visit) error {
	b, err := ns.bucket(tx, bucketVisits)
	if err != nil {
		return fmt.Errorf("put visit: %w", err)
	}
	return b.Put(visitKey(ws, journey, v), v.marshal())
}

// GetVisit loads the visit of an account to a stage entered at entered.
func (ns Namespace) GetVisit(tx *store.Tx, ws, journey, acct, stage string, entered time.Time) (*Visit, error) {
	v := &Visit{Stage: stage, Account: acct, Entered: entered}
	b, err := ns.bucket(tx, bucketVisits)
	if err != nil || b == nil {
		return nil, fmt.Errorf("get visit: %w", ErrNotFound)
	}
	raw := b.Get(visitKey(ws, journey, v))
	if raw == nil {
		return nil, fmt.Errorf("get visit: %w", ErrNotFound)
	}
	if err := unmarshalVisit(raw, v); err != nil {
		return nil, err
	}
	return v, nil
}

// Visits calls fn for every visit of a journey. The Visit is reused between
// calls; copy it to keep it.
func (ns Namespace) Visits(tx *store.Tx, ws, journey string, fn func(v *Visit) error) error {
	b, err := ns.bucket(tx, bucketVisits)
	if err != nil || b == nil {
		return err
	}
	prefix := Key(ws, journey)
	var v Visit
	c := b.Cursor()
	for k, raw := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, raw = c.Next() {
		rest := k[len(prefix):]
		l, n := binary.Uvarint(rest)
		if n <= 0 || uint64(len(rest)-n) < l+8 {
			continue
		}
		v.Account = string(rest[n : n+int(l)])
		rest = rest[n+int(l):]
		v.Entered = time.Unix(0, int64(store.ParseU64(rest[:8]))).UTC()
		v.Stage = string(rest[8:])
		if err := unmarshalVisit(raw, &v); err != nil {
			return err
		}
		if err := fn(&v); err != nil {
			return err
		}
	}
	return nil
}
