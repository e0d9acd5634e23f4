package latency

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/xlane/xlane/testbed/ovs"
)

// TestRunShort runs the comparison end to end on a real testbed with few
// packets, with the real xlane-controller and xlane-endhost processes:
// every variant delivers nearly all of them, the express variants beat the
// best-effort baseline under cross traffic, and the files are written.
func TestRunShort(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces, Open vSwitch)")
	}
	if err := ovs.Available(); err != nil {
		t.Skip(err.Error())
	}
	// The job runs the daemons: build them.
	bin := t.TempDir()
	if out, err := exec.Command("go", "build", "-o", bin+"/", "../../cmd/xlane-controller", "../../cmd/xlane-endhost").CombinedOutput(); err != nil {
		t.Fatalf("building the daemons: %v\n%s", err, out)
	}
	out := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	r, err := Run(ctx, Config{Out: out, Packets: 500, Name: "latt", Bin: bin})
	if err != nil {
		t.Fatal(err)
	}
	by := map[string]VariantResult{}
	for _, v := range r.Variants {
		by[v.Name] = v
		t.Logf("%-8s p50 %v p99 %v max %v lost %d", v.Name, v.Summary.P50, v.Summary.P99, v.Summary.Max, v.Lost)
		if v.Lost > 25 {
			t.Errorf("%s lost %d of 500", v.Name, v.Lost)
		}
	}
	if len(by) != 3 {
		t.Fatalf("variants %v", r.Variants)
	}
	for _, v := range []string{XLane, XLane0} {
		if by[v].Summary.P50 >= by[Baseline].Summary.P50 {
			t.Errorf("%s p50 %v not below the best-effort baseline's %v under cross traffic", v, by[v].Summary.P50, by[Baseline].Summary.P50)
		}
	}
	var back Result
	b, err := os.ReadFile(filepath.Join(out, "latency.json"))
	if err != nil || json.Unmarshal(b, &back) != nil || len(back.Variants) != 3 {
		t.Fatalf("latency.json: %v", err)
	}
	for _, f := range []string{"latency.txt", "latency-cdf.svg", "latency-cdf.png", "latency-tail.svg", "latency-tail.png"} {
		if st, err := os.Stat(filepath.Join(out, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}
}

func TestBadConfig(t *testing.T) {
	for _, c := range []Config{{Packets: 10}, {Period: time.Nanosecond}, {MessageBytes: 5000}, {CrossShare: 2}, {Variants: []string{"fast"}}} {
		if _, err := Run(context.Background(), c); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
}
