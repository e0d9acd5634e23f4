package lane

import (
	"math/rand/v2"
	"testing"

	"github.com/xlane/xlane/endhost/wire"
)

const us = int64(1000)

func TestParams(t *testing.T) {
	if n := (Params{PeriodNs: 1, Loadsize: 1472}).Chunks(wire.HD6); n != 55 {
		t.Errorf("a 1472-byte load holds %d HD6 chunks, want 55", n)
	}
	if n := (Params{PeriodNs: 1, Loadsize: 100}).Chunks(wire.HD8); n != 2 {
		t.Errorf("a 100-byte load holds %d HD8 chunks, want 2", n)
	}
	if n := (Params{PeriodNs: 1, Loadsize: 9000}).Chunks(wire.HD8); n != 40 {
		t.Errorf("a jumbo load holds %d HD8 chunks, want the MTU's 40", n)
	}
	for _, p := range []Params{{PeriodNs: 0, Loadsize: 100}, {PeriodNs: 10, Loadsize: 45}} {
		if err := p.Check(wire.HD6); err == nil {
			t.Errorf("%+v accepted", p)
		}
	}
	if err := (Params{PeriodNs: 10, Loadsize: 46}).Check(wire.HD6); err != nil {
		t.Errorf("one chunk's load refused: %v", err)
	}
}

func TestNotBeforeAndPeriod(t *testing.T) {
	s := NewSchedule(Params{PeriodNs: 100 * us, Loadsize: 200}, 50*us)
	if _, due := s.Due(49 * us); due {
		t.Fatal("due before not_before")
	}
	if _, due := s.Due(50 * us); !due {
		t.Fatal("not due at not_before")
	}
	s.Sent(60 * us) // late: the schedule moves
	if _, due := s.Due(159 * us); due {
		t.Fatal("due less than a period after the last packet")
	}
	if _, due := s.Due(160 * us); !due || s.Next() != 160*us {
		t.Fatalf("not due a period after the last packet (next %d)", s.Next())
	}
}

// TestChangeAtGraceDeadline: a shorter period holds only from the
// deadline; a longer one from the deadline too, counted from the last
// packet.
func TestChangeAtGraceDeadline(t *testing.T) {
	s := NewSchedule(Params{PeriodNs: 100 * us, Loadsize: 200}, 0)
	s.Sent(0)
	s.Change(Params{PeriodNs: 30 * us, Loadsize: 300}, 50*us)
	if p, due := s.Due(40 * us); due || p.Loadsize != 200 {
		t.Fatalf("before the deadline: due %v with %+v", due, p)
	}
	if s.Next() != 50*us {
		t.Fatalf("wake at %d, want the deadline", s.Next())
	}
	if p, due := s.Due(50 * us); !due || p.PeriodNs != 30*us || p.Loadsize != 300 {
		t.Fatalf("at the deadline: due %v with %+v", due, p)
	}
	s.Sent(50 * us)
	s.Change(Params{PeriodNs: 500 * us, Loadsize: 300}, 90*us)
	if _, due := s.Due(80 * us); !due {
		t.Fatal("the old (short) period holds until the deadline")
	}
	s.Sent(80 * us)
	if _, due := s.Due(579 * us); due {
		t.Fatal("after the deadline the long period counts from the last packet")
	}
	if _, due := s.Due(580 * us); !due {
		t.Fatal("not due a long period after the last packet")
	}
	s.Stop()
	if _, due := s.Due(10_000 * us); due || !s.Stopped() {
		t.Fatal("due after Stop")
	}
}

// TestNeverTwoPacketsInOnePeriod drives schedules with random polling
// times, changes and deadlines: between two packets there is always at
// least the period in force when the second one goes, and none goes
// before its start or while stopped.
func TestNeverTwoPacketsInOnePeriod(t *testing.T) {
	for seed := range uint64(200) {
		rng := rand.New(rand.NewPCG(seed, 9))
		start := int64(rng.IntN(1000)) * us
		s := NewSchedule(Params{PeriodNs: int64(1+rng.IntN(500)) * us, Loadsize: 100}, start)
		type change struct {
			p  Params
			at int64
		}
		var changes []change
		last, sent := int64(0), false
		now := int64(0)
		for range 2000 {
			now += int64(rng.IntN(300)) * us / 3
			if rng.IntN(50) == 0 {
				c := change{Params{PeriodNs: int64(1+rng.IntN(500)) * us, Loadsize: 100}, now + int64(rng.IntN(400))*us}
				changes = append(changes, c)
				s.Change(c.p, c.at)
			}
			p, due := s.Due(now)
			if !due {
				continue
			}
			if now < start {
				t.Fatalf("seed %d: due at %d before the start %d", seed, now, start)
			}
			if sent && now-last < p.PeriodNs {
				t.Fatalf("seed %d: packets at %d and %d, %d apart, under the period %d", seed, last, now, now-last, p.PeriodNs)
			}
			// The parameters in force are the latest change whose deadline
			// has passed (or the first ones).
			for i := len(changes) - 1; i >= 0; i-- {
				if changes[i].at <= now {
					if p != changes[i].p && i == len(changes)-1 {
						t.Fatalf("seed %d: at %d the schedule obeys %+v, the change in force is %+v", seed, now, p, changes[i].p)
					}
					break
				}
			}
			s.Sent(now)
			last, sent = now, true
		}
	}
}
