package tunnels

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/xlane/xlane/southbound"
)

// plan collects the switch changes of one operation and their inverses.
type plan struct {
	do, undo map[string]*southbound.Batch
}

func newPlan() *plan {
	return &plan{do: map[string]*southbound.Batch{}, undo: map[string]*southbound.Batch{}}
}

func batch(m map[string]*southbound.Batch, sw string) *southbound.Batch {
	b, ok := m[sw]
	if !ok {
		b = &southbound.Batch{}
		m[sw] = b
	}
	return b
}

// diff adds what turns tunnel id's installed rules (have) into want.
func (p *plan) diff(id uint64, have, want map[string]southbound.TunnelRule) {
	for sw, r := range want {
		o, ok := have[sw]
		if ok && o.Equal(r) {
			continue
		}
		batch(p.do, sw).Put = append(batch(p.do, sw).Put, r)
		if ok {
			batch(p.undo, sw).Put = append(batch(p.undo, sw).Put, o)
		} else {
			batch(p.undo, sw).Delete = append(batch(p.undo, sw).Delete, id)
		}
	}
	for sw, o := range have {
		if _, ok := want[sw]; !ok {
			batch(p.do, sw).Delete = append(batch(p.do, sw).Delete, id)
			batch(p.undo, sw).Put = append(batch(p.undo, sw).Put, o)
		}
	}
}

// apply programs every switch of the plan, in name order, as one unit: if
// a switch fails, the switches already programmed are put back.
func (c *Controller) apply(ctx context.Context, p *plan) error {
	switches := make([]string, 0, len(p.do))
	for sw, b := range p.do {
		if !b.Empty() {
			switches = append(switches, sw)
		}
	}
	slices.Sort(switches)
	for i, sw := range switches {
		if err := c.drv.Apply(ctx, sw, *p.do[sw]); err != nil {
			var undoErrs []error
			for j := i - 1; j >= 0; j-- {
				if uerr := c.drv.Apply(context.WithoutCancel(ctx), switches[j], *p.undo[switches[j]]); uerr != nil {
					undoErrs = append(undoErrs, uerr)
					c.needsReconcile[switches[j]] = true
				}
			}
			if len(undoErrs) > 0 {
				c.log.Error("rollback failed; switches will be reconciled", "err", errors.Join(undoErrs...))
			}
			return fmt.Errorf("%w: programming %s: %w", ErrUnavailable, sw, err)
		}
	}
	return nil
}
