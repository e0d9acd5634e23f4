package latency

import (
	"strings"
	"testing"
	"time"
)

// The table gives each variant's packet count, and says which ran out of
// time before all had arrived.
func TestTableCountsEachVariantsPackets(t *testing.T) {
	lat := func(n int) []time.Duration {
		out := make([]time.Duration, n)
		for i := range out {
			out[i] = time.Duration(100+i) * time.Microsecond
		}
		return out
	}
	r := Result{Packets: 1000, PeriodUs: 1306, LinkBps: 20_000_000, Variants: []VariantResult{
		{Name: "X-Lane", Summary: Summarize(lat(420))},
		{Name: Baseline, Summary: Summarize(lat(1000)), Lost: 3},
	}}
	var b strings.Builder
	r.Table(&b)
	out := b.String()
	for _, want := range []string{"1000 packets asked per variant", " packets ", "X-Lane: 420 of 1000 packets arrived before its time ran out"} {
		if !strings.Contains(out, want) {
			t.Errorf("the table lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, Baseline+": 1000 of") {
		t.Errorf("a complete variant is reported short:\n%s", out)
	}
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 2 && f[0] == "X-Lane" && f[1] != "vs" && f[1] != "420" {
			t.Errorf("X-Lane's row: %q, want its 420 packets second", line)
		}
	}
}
