package latency

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"
)

// Table writes the Table 2 style comparison, with the ratios of each
// variant to the baseline.
func (r *Result) Table(w io.Writer) {
	fmt.Fprintf(w, "%d packets asked per variant, period %d µs, %d Mbit/s links, cross traffic 2 × %.0f %% into the receiver's port, %d CPU-load goroutines\n",
		r.Packets, r.PeriodUs, r.LinkBps/1_000_000, r.CrossShare*100, r.CPULoad)
	fmt.Fprintf(w, "the controller's bound for the tunnel: %.1f–%.1f µs (network only)\n\n", float64(r.BoundNs[0])/1000, float64(r.BoundNs[1])/1000)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "variant\tpackets\tλmin µs\tp50 µs\tp99 µs\tp99.9 µs\tmax µs\tδmax ns\trel. jitter\tP(10·p99 in 100k)\tlost\t")
	us := func(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d)/1000) }
	var base *Summary
	for i := range r.Variants {
		if r.Variants[i].Name == Baseline {
			base = &r.Variants[i].Summary
		}
	}
	for _, v := range r.Variants {
		s := v.Summary
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%d\t%.3f\t%.3g\t%d\t\n", v.Name, s.Packets, us(s.Min), us(s.P50), us(s.P99), us(s.P999), us(s.Max),
			s.JitterMax.Nanoseconds(), s.RelJitter, s.PViolate, v.Lost)
	}
	tw.Flush()
	for _, v := range r.Variants {
		if pushed := v.Summary.Packets + v.Lost; pushed < r.Packets { // lost ones were sent
			fmt.Fprintf(w, "%s: %d of %d packets sent before its time ran out (3 × packets × period + 5 s): its figures are over the %d that arrived\n",
				v.Name, pushed, r.Packets, v.Summary.Packets)
		}
		if v.Demoted {
			fmt.Fprintf(w, "%s: the controller demoted the tunnel during the run (its meter dropped packets); the packets after that went best effort\n", v.Name)
		}
	}
	if base != nil && base.P50 > 0 && base.JitterMax > 0 {
		fmt.Fprintln(w)
		for _, v := range r.Variants {
			if v.Name != Baseline && v.Summary.Packets > 0 {
				fmt.Fprintf(w, "%s vs baseline: p50 %.3g×, δmax %.3g×\n", v.Name, float64(v.Summary.P50)/float64(base.P50),
					float64(v.Summary.JitterMax)/float64(base.JitterMax))
			}
		}
	}
}
