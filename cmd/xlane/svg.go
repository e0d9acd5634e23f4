package main

import (
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/xlane/xlane/controller/te/sim"
)

// writeTightnessSVG plots, per tunnel sorted by bound, the latency bound
// [min, max] as a bar and the observed [min, max] inside it.
func writeTightnessSVG(path string, rep *sim.Report) error {
	ts := slices.Clone(rep.Tunnels)
	slices.SortFunc(ts, func(a, b sim.TunnelReport) int { return int(a.BoundMax - b.BoundMax) })
	const W, H, left, bottom, top = 900, 420, 70, 40, 30
	var maxY int64 = 1
	for _, t := range ts {
		maxY = max(maxY, t.BoundMax)
	}
	y := func(v int64) float64 { return float64(H-bottom) - float64(v)/float64(maxY)*float64(H-bottom-top) }
	bw := float64(W-left-20) / float64(max(1, len(ts)))
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`+"\n", W, H)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", W, H)
	fmt.Fprintf(&b, `<text x="%d" y="18">Latency bound (grey) vs. observed under the adversary (blue), per tunnel</text>`+"\n", left)
	for i := 0; i <= 4; i++ {
		v := maxY * int64(i) / 4
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#ddd"/><text x="5" y="%.1f">%.1f µs</text>`+"\n", left, W-20, y(v), y(v), y(v)+4, float64(v)/1000)
	}
	for i, t := range ts {
		x := float64(left) + float64(i)*bw
		fmt.Fprintf(&b, `<rect x="%.2f" y="%.2f" width="%.2f" height="%.2f" fill="#ccc"/>`+"\n", x, y(t.BoundMax), max(bw*0.9, 0.5), y(t.BoundMin)-y(t.BoundMax))
		if t.Delivered > 0 {
			color := "#1f77b4"
			if t.Violations > 0 {
				color = "#d62728"
			}
			fmt.Fprintf(&b, `<rect x="%.2f" y="%.2f" width="%.2f" height="%.2f" fill="%s"/>`+"\n", x, y(t.MaxObserved), max(bw*0.9, 0.5), max(y(t.MinObserved)-y(t.MaxObserved), 0.5), color)
		}
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d">tunnels, sorted by latency bound</text>`+"\n", left, H-10)
	b.WriteString("</svg>\n")
	return os.WriteFile(path, []byte(b.String()), 0o644)
}
