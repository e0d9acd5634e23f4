package latency

import (
	"errors"
	"fmt"
	"image/color"
	"math"
	"path/filepath"
	"slices"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// Series is one variant's sorted latencies, for plotting.
type Series struct {
	Name    string
	Latency []time.Duration // sorted
}

var colors = []color.Color{
	color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff},
	color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff},
	color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff},
	color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff},
}

// WritePlots writes, as SVG and PNG under dir, the latency distributions
// (CDF, log latency axis) and the tail percentiles (like the paper's Fig. 5
// and Fig. 6). It returns the files written.
func WritePlots(dir string, series []Series) ([]string, error) {
	if !slices.ContainsFunc(series, func(s Series) bool { return len(s.Latency) > 0 }) {
		return nil, errors.New("latency plot: no variant delivered a packet, nothing to plot")
	}
	cdf, err := cdfPlot(series)
	if err != nil {
		return nil, err
	}
	tail, err := tailPlot(series)
	if err != nil {
		return nil, err
	}
	var files []string
	for name, p := range map[string]*plot.Plot{"latency-cdf": cdf, "latency-tail": tail} {
		for _, ext := range []string{"svg", "png"} {
			f := filepath.Join(dir, name+"."+ext)
			if err := save(p, f); err != nil {
				return files, fmt.Errorf("latency plot %s: %w", f, err)
			}
			files = append(files, f)
		}
	}
	slices.Sort(files)
	return files, nil
}

// save is p.Save, with gonum's panics (it panics on some degenerate axes)
// returned as errors: a plot never takes the run's results down with it.
func save(p *plot.Plot, f string) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	return p.Save(8*vg.Inch, 4.5*vg.Inch, f)
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

func cdfPlot(series []Series) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = "One-way latency distribution"
	p.X.Label.Text = "latency (µs, log scale)"
	p.Y.Label.Text = "fraction of packets"
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Legend.Top = true
	p.Legend.Left = true
	for i, s := range series {
		if len(s.Latency) == 0 {
			continue
		}
		// At most 2,000 points: evenly spaced ranks, plus the last.
		step := max(1, len(s.Latency)/2000)
		var pts plotter.XYs
		for k := 0; k < len(s.Latency); k += step {
			pts = append(pts, plotter.XY{X: math.Max(us(s.Latency[k]), 0.001), Y: float64(k+1) / float64(len(s.Latency))})
		}
		pts = append(pts, plotter.XY{X: math.Max(us(s.Latency[len(s.Latency)-1]), 0.001), Y: 1})
		l, err := plotter.NewLine(pts)
		if err != nil {
			return nil, fmt.Errorf("latency plot: %w", err)
		}
		l.Color = colors[i%len(colors)]
		l.Width = vg.Points(1.5)
		p.Add(l)
		p.Legend.Add(s.Name, l)
	}
	p.Add(plotter.NewGrid())
	return p, nil
}

func tailPlot(series []Series) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = "Latency beyond the median, by percentile"
	p.X.Label.Text = "percentile"
	p.Y.Label.Text = "latency (µs, log scale)"
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	var names []string
	for _, q := range Percentiles {
		names = append(names, fmt.Sprint(q))
	}
	p.NominalX(names...)
	p.Legend.Top = true
	p.Legend.Left = true
	for i, s := range series {
		if len(s.Latency) == 0 {
			continue
		}
		var pts plotter.XYs
		for k, q := range Percentiles {
			pts = append(pts, plotter.XY{X: float64(k), Y: math.Max(us(At(s.Latency, q)), 0.001)})
		}
		l, sc, err := plotter.NewLinePoints(pts)
		if err != nil {
			return nil, fmt.Errorf("latency plot: %w", err)
		}
		l.Color, sc.Color = colors[i%len(colors)], colors[i%len(colors)]
		p.Add(l, sc)
		p.Legend.Add(s.Name, l, sc)
	}
	p.Add(plotter.NewGrid())
	return p, nil
}
