package lane

import "context"

// Inbound is a receive path: a socket (Receiver) or a packet ring
// (RingReceiver).
type Inbound interface {
	// Poll takes what waits, without waiting.
	Poll() error
	// Run takes packets until ctx ends.
	Run(ctx context.Context) error
	// Snapshot returns the statistics, from any goroutine.
	Snapshot() RecvStats
}

var (
	_ Inbound = (*Receiver)(nil)
	_ Inbound = (*RingReceiver)(nil)
)

// RunCore is a host's lane core: one goroutine, pinned by core when set,
// busy-polling every sender and receiver in turn until ctx ends or all
// senders stopped and there is no receiver. It is how a host with one
// dedicated CPU serves all its tunnels in both directions.
func RunCore(ctx context.Context, core *Core, senders []*Sender, receivers []Inbound) error {
	return RunCoreAdding(ctx, core, senders, receivers, nil)
}

// RunCoreAdding is RunCore taking further senders from add while it runs
// (lanes started after the core).
func RunCoreAdding(ctx context.Context, core *Core, senders []*Sender, receivers []Inbound, add <-chan *Sender) error {
	if core != nil {
		if err := core.Pin(); err != nil {
			return err
		}
	}
	live := make([]bool, len(senders))
	for i := range live {
		live[i] = true
	}
	for spins := 0; ; spins++ {
		if spins&1023 == 0 {
			if ctx.Err() != nil {
				return nil
			}
			select {
			case s := <-add:
				senders, live = append(senders, s), append(live, true)
			default:
			}
		}
		active := len(receivers) > 0 || add != nil
		for i, s := range senders {
			if !live[i] {
				continue
			}
			stopped, err := s.Poll()
			if err != nil {
				return err
			}
			live[i] = !stopped
			active = active || !stopped
		}
		for _, r := range receivers {
			if err := r.Poll(); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
		}
		if !active {
			return nil
		}
	}
}
