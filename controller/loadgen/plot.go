package loadgen

import (
	"errors"
	"fmt"
	"image/color"
	"os"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"
)

// WriteTimeline draws r's Timeline to base.svg and base.png: the upcall
// delay of each slice (median, p99, greatest) over the run's p99 and the
// 10 ms target, and below it how many upcalls each slice committed. It
// returns the files written.
func WriteTimeline(base string, r Result) ([]string, error) {
	if len(r.Timeline) == 0 || r.Upcalls == 0 {
		return nil, errors.New("timeline plot: no upcalls were measured")
	}
	delay, counts, err := timelinePlots(r)
	if err != nil {
		return nil, err
	}
	return writeStacked(base, "timeline plot", 9*vg.Inch, 6*vg.Inch, delay, counts)
}

// writeStacked draws top over bottom to base.svg and base.png (w × h) and
// returns the files written; what names the plot in errors.
func writeStacked(base, what string, w, h vg.Length, top, bottom *plot.Plot) ([]string, error) {
	var files []string
	for _, f := range []struct {
		ext    string
		canvas func() (vg.CanvasWriterTo, draw.Canvas)
	}{
		{"svg", func() (vg.CanvasWriterTo, draw.Canvas) { c := vgsvg.New(w, h); return c, draw.New(c) }},
		{"png", func() (vg.CanvasWriterTo, draw.Canvas) {
			c := vgimg.New(w, h)
			return vgimg.PngCanvas{Canvas: c}, draw.New(c)
		}},
	} {
		path := base + "." + f.ext
		if err := drawTo(path, f.canvas, top, bottom); err != nil {
			return files, fmt.Errorf("%s %s: %w", what, path, err)
		}
		files = append(files, path)
	}
	return files, nil
}

// drawTo draws the two plots stacked and writes them; gonum's panics on
// degenerate axes come back as errors.
func drawTo(path string, canvas func() (vg.CanvasWriterTo, draw.Canvas), top, bottom *plot.Plot) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	out, dc := canvas()
	// Aligned: the two time axes line up.
	cs := plot.Align([][]*plot.Plot{{top}, {bottom}}, draw.Tiles{Rows: 2, Cols: 1, PadY: vg.Points(6)}, dc)
	top.Draw(cs[0][0])
	bottom.Draw(cs[1][0])
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := out.WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func timelinePlots(r Result) (delay, counts *plot.Plot, err error) {
	delay = plot.New()
	delay.Title.Text = fmt.Sprintf("Upcall delay by commit time (%.0f admissions/s, %d upcalls, p99 %.1f ms)", r.PerSecond, r.Upcalls, ms(r.UpcallP99))
	delay.Y.Label.Text = "delay (ms)"
	delay.Legend.Top = true
	delay.Legend.Left = true
	end := ms(r.Timeline[len(r.Timeline)-1].Start + TimelineWidth)
	for _, s := range []struct {
		name  string
		of    func(TimelineBin) time.Duration
		color color.Color
	}{
		{"median", func(b TimelineBin) time.Duration { return b.P50 }, color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}},
		{"p99", func(b TimelineBin) time.Duration { return b.P99 }, color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff}},
		{"greatest", func(b TimelineBin) time.Duration { return b.Max }, color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}},
	} {
		var pts plotter.XYs
		for _, b := range r.Timeline {
			if b.Committed > 0 {
				pts = append(pts, plotter.XY{X: ms(b.Start + TimelineWidth/2), Y: ms(s.of(b))})
			}
		}
		l, err := plotter.NewLine(pts)
		if err != nil {
			return nil, nil, err
		}
		l.Color = s.color
		l.Width = vg.Points(1.2)
		delay.Add(l)
		delay.Legend.Add(s.name+" of the slice", l)
	}
	for _, h := range []struct {
		name string
		y    float64
		dash []vg.Length
	}{{"run's p99", ms(r.UpcallP99), []vg.Length{vg.Points(4), vg.Points(3)}}, {"10 ms target", 10, []vg.Length{vg.Points(1), vg.Points(3)}}} {
		l, err := plotter.NewLine(plotter.XYs{{X: 0, Y: h.y}, {X: end, Y: h.y}})
		if err != nil {
			return nil, nil, err
		}
		l.Dashes = h.dash
		delay.Add(l)
		delay.Legend.Add(h.name, l)
	}
	delay.X.Min, delay.X.Max, delay.Y.Min = 0, end, 0

	counts = plot.New()
	counts.X.Label.Text = fmt.Sprintf("time from the start of timing (ms; slices of %v)", TimelineWidth)
	counts.Y.Label.Text = "upcalls committed"
	// A step per slice, on the delay plot's time axis.
	var pts plotter.XYs
	for _, b := range r.Timeline {
		x, v := ms(b.Start), float64(b.Committed)
		pts = append(pts, plotter.XY{X: x, Y: v}, plotter.XY{X: x + ms(TimelineWidth), Y: v})
	}
	steps, err := plotter.NewLine(pts)
	if err != nil {
		return nil, nil, err
	}
	steps.FillColor = color.RGBA{R: 0xbb, G: 0xbb, B: 0xbb, A: 0xff}
	steps.Color = color.RGBA{R: 0x55, G: 0x55, B: 0x55, A: 0xff}
	counts.Add(steps)
	counts.X.Min, counts.X.Max, counts.Y.Min = 0, end, 0
	return delay, counts, nil
}
