package latency

import (
	"strings"
	"testing"
	"time"
)

// The table gives each variant's packet count, and says which ran out of
// time before it had sent them all (lost ones were sent).
func TestTableCountsEachVariantsPackets(t *testing.T) {
	lat := func(n int) []time.Duration {
		out := make([]time.Duration, n)
		for i := range out {
			out[i] = time.Duration(100+i) * time.Microsecond
		}
		return out
	}
	r := Result{Packets: 1000, PeriodUs: 1306, LinkBps: 20_000_000, Variants: []VariantResult{
		{Name: "X-Lane", Summary: Summarize(lat(420)), Lost: 1},
		{Name: Baseline, Summary: Summarize(lat(997)), Lost: 3}, // all sent
	}}
	var b strings.Builder
	r.Table(&b)
	out := b.String()
	for _, want := range []string{"1000 packets asked per variant", " packets ", "X-Lane: 421 of 1000 packets sent before its time ran out (3 × packets × period + 5 s): its figures are over the 420 that arrived"} {
		if !strings.Contains(out, want) {
			t.Errorf("the table lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "\n"+Baseline+": ") {
		t.Errorf("a variant that sent every packet (some lost) is reported short:\n%s", out)
	}
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 2 && f[0] == "X-Lane" && f[1] != "vs" && f[1] != "420" {
			t.Errorf("X-Lane's row: %q, want its 420 packets second", line)
		}
	}
}
