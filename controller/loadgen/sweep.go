package loadgen

import (
	"errors"
	"fmt"
	"image/color"
	"io"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// SweepPoint is one offered rate of a sweep and the runs measured at it.
type SweepPoint struct {
	Rate    float64  `json:"offered_per_second"`
	Summary Summary  `json:"summary"`
	Runs    []Result `json:"runs"`
}

// SweepTable writes one row per offered rate: what was achieved, the
// upcall delay's p99 as services saw it and in the controller (each over
// all of the rate's runs pooled), the share later than the target, and
// the CPU each side spent per admission (medians over the runs).
func SweepTable(w io.Writer, pts []SweepPoint) {
	fmt.Fprintf(w, "%9s %9s %11s %7s %13s %11s %11s %9s\n", "offered/s", "achieved", "upcall p99", "late", "in controller", "ctl CPU/adm", "gen CPU/adm", "per batch")
	for _, p := range pts {
		s := p.Summary
		late := 0.0
		if s.Pooled.Upcalls > 0 {
			late = 100 * float64(s.Pooled.Late) / float64(s.Pooled.Upcalls)
		}
		ctl := "-"
		if s.ControllerWaitPooled > 0 {
			ctl = s.ControllerWaitPooled.Round(10 * time.Microsecond).String()
		}
		fmt.Fprintf(w, "%9.0f %9.0f %11v %6.2f%% %13s %11v %11v %9.1f\n", p.Rate, s.PerSecond.Median,
			s.Pooled.P99.Round(10*time.Microsecond), late, ctl,
			time.Duration(s.ControllerCPU.Median).Round(time.Microsecond), time.Duration(s.ClientCPU.Median).Round(time.Microsecond),
			median(p.Runs, func(r Result) float64 { return r.ControllerBatch }))
	}
	if len(pts) > 0 && len(pts[0].Runs) > 0 {
		fmt.Fprintf(w, "(%d run(s) a rate; p99 and late share over each rate's runs pooled; CPU and batch size their medians%s)\n", len(pts[0].Runs), scheduling(pts))
	}
}

// scheduling names the real-time policy the sweep ran under, if any.
func scheduling(pts []SweepPoint) string {
	if len(pts) == 0 || len(pts[0].Runs) == 0 || pts[0].Runs[0].RealtimePriority == 0 {
		return ""
	}
	return fmt.Sprintf("; SCHED_RR priority %d", pts[0].Runs[0].RealtimePriority)
}

func median(rs []Result, f func(Result) float64) float64 {
	if len(rs) == 0 {
		return 0
	}
	return spread(rs, f).Median
}

// WriteSweep draws pts to base.svg and base.png: above, the upcall delay's
// p99 by offered rate, as services saw it and in the controller, with the
// 10 ms target; below, the CPU per admission of the controller and of the
// load generator. It returns the files written.
func WriteSweep(base string, pts []SweepPoint) ([]string, error) {
	if len(pts) < 2 {
		return nil, errors.New("sweep plot: fewer than two rates")
	}
	delay, cpu, err := sweepPlots(pts)
	if err != nil {
		return nil, err
	}
	return writeStacked(base, "sweep plot", 8*vg.Inch, 7*vg.Inch, delay, cpu)
}

func sweepPlots(pts []SweepPoint) (delay, cpu *plot.Plot, err error) {
	line := func(p *plot.Plot, name string, c color.Color, dash []vg.Length, y func(SweepPoint) float64) error {
		var xy plotter.XYs
		for _, pt := range pts {
			if v := y(pt); v > 0 {
				xy = append(xy, plotter.XY{X: pt.Rate, Y: v})
			}
		}
		if len(xy) == 0 {
			return nil // not measured (a controller without the histogram)
		}
		l, s, err := plotter.NewLinePoints(xy)
		if err != nil {
			return err
		}
		l.Color, s.Color, l.Width, l.Dashes = c, c, vg.Points(1.4), dash
		p.Add(l, s)
		p.Legend.Add(name, l, s)
		return nil
	}
	blue, orange := color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}, color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff}
	grey := color.RGBA{R: 0x55, G: 0x55, B: 0x55, A: 0xff}
	runs := len(pts[0].Runs)

	delay = plot.New()
	delay.Title.Text = fmt.Sprintf("Upcall delay p99 by offered admissions (%d run(s) a rate, pooled%s)", runs, scheduling(pts))
	delay.Y.Label.Text = "p99 delay (ms)"
	delay.Legend.Top, delay.Legend.Left = true, true
	for _, l := range []struct {
		name string
		c    color.Color
		dash []vg.Length
		y    func(SweepPoint) float64
	}{
		{"as services saw it", blue, nil, func(p SweepPoint) float64 { return ms(p.Summary.Pooled.P99) }},
		{"in the controller (commit to gRPC)", orange, nil, func(p SweepPoint) float64 { return ms(p.Summary.ControllerWaitPooled) }},
		{"10 ms target", grey, []vg.Length{vg.Points(1), vg.Points(3)}, func(SweepPoint) float64 { return 10 }},
	} {
		if err := line(delay, l.name, l.c, l.dash, l.y); err != nil {
			return nil, nil, err
		}
	}
	delay.Y.Min = 0

	cpu = plot.New()
	cpu.X.Label.Text = "offered admissions per second"
	cpu.Y.Label.Text = "CPU per admission (µs)"
	cpu.Legend.Top = true
	us := func(d float64) float64 { return d / 1e3 }
	for _, l := range []struct {
		name string
		c    color.Color
		y    func(SweepPoint) float64
	}{
		{"controller", orange, func(p SweepPoint) float64 { return us(p.Summary.ControllerCPU.Median) }},
		{"load generator (the services)", blue, func(p SweepPoint) float64 { return us(p.Summary.ClientCPU.Median) }},
	} {
		if err := line(cpu, l.name, l.c, nil, l.y); err != nil {
			return nil, nil, err
		}
	}
	cpu.Y.Min = 0
	// One rate axis for both.
	lo, hi := pts[0].Rate, pts[0].Rate
	for _, p := range pts {
		lo, hi = min(lo, p.Rate), max(hi, p.Rate)
	}
	pad := (hi - lo) / 20
	delay.X.Min, delay.X.Max, cpu.X.Min, cpu.X.Max = lo-pad, hi+pad, lo-pad, hi+pad
	return delay, cpu, nil
}
