package tunnels

import (
	"sync"
)

// committer writes the store changes of concurrent admissions in one
// transaction: a synced write costs about a millisecond here whatever it
// holds, so admissions that arrive while one is being written share the
// next. Each submission learns whether its writes are durable.
type committer struct {
	store Store
	mu    sync.Mutex
	queue []submission
	wake  chan struct{}
	stop  chan struct{}
	done  chan struct{}
	once  sync.Once
}

type submission struct {
	w   Writes
	res *written
}

// written is the outcome of a submission: done closes once err is set, so
// any number of goroutines may wait for it.
type written struct {
	done chan struct{}
	err  error
}

func newCommitter(s Store) *committer {
	c := &committer{store: s, wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go c.run()
	return c
}

// submit queues w; its outcome is set once w is written.
func (c *committer) submit(w Writes) *written {
	res := &written{done: make(chan struct{})}
	c.mu.Lock()
	c.queue = append(c.queue, submission{w: w, res: res})
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	return res
}

func (c *committer) run() {
	defer close(c.done)
	for {
		select {
		case <-c.wake:
		case <-c.stop:
			c.flush() // nothing queued is left waiting
			return
		}
		c.flush()
	}
}

func (c *committer) flush() {
	for {
		c.mu.Lock()
		batch := c.queue
		c.queue = nil
		c.mu.Unlock()
		if len(batch) == 0 {
			return
		}
		var all Writes
		for _, s := range batch {
			all.Put = append(all.Put, s.w.Put...)
			all.Delete = append(all.Delete, s.w.Delete...)
			all.Services = append(all.Services, s.w.Services...)
		}
		err := c.store.Save(all)
		for _, s := range batch {
			s.res.err = err
			close(s.res.done)
		}
	}
}

// close writes what is queued and stops; later calls wait for that.
func (c *committer) close() {
	c.once.Do(func() { close(c.stop) })
	<-c.done
}
