package memory

import (
	"context"
	"errors"
	"testing"

	"github.com/xlane/xlane/southbound"
)

func TestApplyIsAllOrNothing(t *testing.T) {
	d := New("s1")
	ctx := context.Background()
	r1 := southbound.TunnelRule{Tunnel: 1, Out: []southbound.Port{2}}
	if err := d.Apply(ctx, "s1", southbound.Batch{Put: []southbound.TunnelRule{r1}}); err != nil {
		t.Fatal(err)
	}
	// A batch that deletes a missing rule changes nothing, not even its puts.
	err := d.Apply(ctx, "s1", southbound.Batch{Put: []southbound.TunnelRule{{Tunnel: 2}}, Delete: []uint64{9}})
	var se *southbound.SwitchError
	if !errors.As(err, &se) || se.Switch != "s1" {
		t.Fatalf("err = %v", err)
	}
	if rs := d.Rules("s1"); len(rs) != 1 || !rs[0].Equal(r1) {
		t.Fatalf("rules = %+v", rs)
	}
	if err := d.Apply(ctx, "s9", southbound.Batch{}); err == nil {
		t.Fatal("unknown switch accepted")
	}
}

func TestInjectedFailuresAndStats(t *testing.T) {
	d := New("s1", "s2")
	ctx := context.Background()
	d.FailAt("s1", 2)
	if err := d.Apply(ctx, "s1", southbound.Batch{}); err != nil {
		t.Fatalf("first call failed: %v", err)
	}
	if err := d.Apply(ctx, "s1", southbound.Batch{}); !errors.Is(err, ErrInjected) {
		t.Fatalf("second call: %v", err)
	}
	d.FailNext("", 1)
	if _, err := d.Stats(ctx, "s2"); !errors.Is(err, ErrInjected) {
		t.Fatalf("any-switch failure: %v", err)
	}
	d.SetStats("s2", southbound.TunnelStats{Tunnel: 3, Packets: 5, MeterDrops: 1})
	st, err := d.Stats(ctx, "s2")
	if err != nil || len(st) != 1 || st[0].MeterDrops != 1 {
		t.Fatalf("stats = %+v, %v", st, err)
	}
	want := southbound.SwitchState{Rules: []southbound.TunnelRule{{Tunnel: 4}}}
	if err := d.Reconcile(ctx, "s2", want); err != nil {
		t.Fatal(err)
	}
	if rs := d.Rules("s2"); len(rs) != 1 || rs[0].Tunnel != 4 {
		t.Fatalf("after reconcile: %+v", rs)
	}
	if n := len(d.Calls()); n != 5 {
		t.Fatalf("%d calls recorded, want 5 (2 applies, 2 stats, 1 reconcile)", n)
	}
}

func TestRecordOff(t *testing.T) {
	d := New("s1")
	ctx := context.Background()
	put := southbound.Batch{Put: []southbound.TunnelRule{{Tunnel: 1, Out: []southbound.Port{2}}}}
	if err := d.Apply(ctx, "s1", put); err != nil {
		t.Fatal(err)
	}
	if n := len(d.Calls()); n != 1 {
		t.Fatalf("%d calls recorded, want 1", n)
	}
	d.Record(false)
	if n := len(d.Calls()); n != 0 {
		t.Fatalf("%d calls kept after Record(false)", n)
	}
	if err := d.Apply(ctx, "s1", southbound.Batch{Delete: []uint64{1}}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Stats(ctx, "s1"); err != nil {
		t.Fatal(err)
	}
	if n := len(d.Calls()); n != 0 {
		t.Fatalf("%d calls recorded while off", n)
	}
	if rs := d.Rules("s1"); len(rs) != 0 {
		t.Fatalf("the unrecorded delete was not applied: %+v", rs)
	}
	d.Record(true)
	if _, err := d.Stats(ctx, "s1"); err != nil {
		t.Fatal(err)
	}
	if n := len(d.Calls()); n != 1 {
		t.Fatalf("%d calls recorded after Record(true), want 1", n)
	}
}

// BenchmarkApplyFilling puts one rule per call into one switch, as
// admissions fill an edge switch: the cost of the rule table growing.
func BenchmarkApplyFilling(b *testing.B) {
	d := New("s1")
	d.Record(false)
	ctx := context.Background()
	r := southbound.TunnelRule{Out: []southbound.Port{2}, Meter: &southbound.Meter{RateBps: 1e6, BurstBytes: 200}}
	b.ReportAllocs()
	for i := range b.N {
		r.Tunnel = uint64(i + 1)
		if err := d.Apply(ctx, "s1", southbound.Batch{Put: []southbound.TunnelRule{r}}); err != nil {
			b.Fatal(err)
		}
	}
}
