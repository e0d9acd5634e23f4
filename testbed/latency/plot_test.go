package latency

import (
	"bytes"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestWritePlots(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var series []Series
	for i, name := range []string{"X-Lane", "X-Lane0", "baseline"} {
		lat := make([]time.Duration, 5000)
		for k := range lat {
			lat[k] = time.Duration(20_000*(i+1)) + time.Duration(rng.ExpFloat64()*float64(10_000*(i+1)))
		}
		slices.Sort(lat)
		series = append(series, Series{Name: name, Latency: lat})
	}
	dir := t.TempDir()
	files, err := WritePlots(dir, series)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 4 {
		t.Fatalf("files %v", files)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil || len(b) < 1000 {
			t.Fatalf("%s: %d bytes, %v", f, len(b), err)
		}
		if strings.HasSuffix(f, ".png") && !bytes.HasPrefix(b, []byte("\x89PNG")) {
			t.Errorf("%s is not a PNG", f)
		}
		if strings.HasSuffix(f, ".svg") && !bytes.Contains(b, []byte("X-Lane0")) {
			t.Errorf("%s lacks the legend", f)
		}
	}
}

// A run in which no variant delivered a packet says so instead of
// panicking in the plotting library; one empty variant among others is
// left out of the plots.
func TestWritePlotsWithoutSamples(t *testing.T) {
	dir := t.TempDir()
	if _, err := WritePlots(dir, []Series{{Name: "X-Lane"}, {Name: "baseline"}}); err == nil || !strings.Contains(err.Error(), "no variant delivered") {
		t.Fatalf("no samples: %v", err)
	}
	files, err := WritePlots(dir, []Series{{Name: "X-Lane"}, {Name: "baseline", Latency: []time.Duration{time.Millisecond, 2 * time.Millisecond}}})
	if err != nil || len(files) != 4 {
		t.Fatalf("one empty variant: %v %v", files, err)
	}
}
