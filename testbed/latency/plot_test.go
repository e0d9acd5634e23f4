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
