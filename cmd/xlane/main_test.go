package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xlane/xlane/controller/te"
)

// run executes the CLI in-process.
func run(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := newRootCmd()
	var out, errb bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errb)
	cmd.SetArgs(args)
	err = cmd.ExecuteContext(context.Background())
	return out.String(), errb.String(), err
}

func write(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func exitCode(err error) int {
	var ee exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	if err != nil {
		return 1
	}
	return 0
}

func TestGenAllocateAdjustSimulate(t *testing.T) {
	dir := t.TempDir()
	out, _, err := run(t, "te", "gen", "fattree", "--k", "4")
	if err != nil {
		t.Fatal(err)
	}
	topoPath := write(t, dir, "ft.json", out)
	if _, err := te.ParseTopology(strings.NewReader(out)); err != nil {
		t.Fatalf("generated topology does not parse: %v", err)
	}
	reqs := `[{"sender":"h1","receivers":["h16"],"loadsize_bytes":64,"period_ns":100000,"sublane":0},
	          {"sender":"h2","receivers":["h99"],"loadsize_bytes":64,"period_ns":100000,"sublane":0},
	          {"sender":"h3","receivers":["h5","h9","h13"],"loadsize_bytes":128,"period_ns":50000,"sublane":1}]`
	reqPath := write(t, dir, "reqs.json", reqs)
	tunnelsJSON, stderr, err := run(t, "te", "allocate", "--topology", topoPath, "--requests", reqPath)
	if exitCode(err) != 2 {
		t.Fatalf("allocate with a bad request: exit %d (%v), want 2", exitCode(err), err)
	}
	if !strings.Contains(stderr, "requests[1]: rejected: receivers[0]: unknown node (got h99)") {
		t.Fatalf("stderr = %q", stderr)
	}
	var ts []te.Tunnel
	if err := json.Unmarshal([]byte(tunnelsJSON), &ts); err != nil || len(ts) != 2 {
		t.Fatalf("tunnels = %q (%v)", tunnelsJSON, err)
	}
	tunPath := write(t, dir, "tunnels.json", tunnelsJSON)

	// adjust recomputes the same parameters from the edges alone.
	adj, _, err := run(t, "te", "adjust", "--topology", topoPath, "--tunnels", tunPath)
	if err != nil {
		t.Fatal(err)
	}
	var again []te.Tunnel
	if err := json.Unmarshal([]byte(adj), &again); err != nil {
		t.Fatal(err)
	}
	for i := range ts {
		if again[i].Resources() != ts[i].Resources() {
			t.Fatalf("adjust changed tunnel %d: %+v -> %+v", ts[i].ID, ts[i].Resources(), again[i].Resources())
		}
	}

	rep, _, err := run(t, "te", "simulate", "--topology", topoPath, "--tunnels", tunPath, "--adversarial", "--progress=false", "--json")
	if err != nil {
		t.Fatalf("simulate: %v", err)
	}
	if !strings.Contains(rep, `"violations": 0`) {
		t.Fatalf("report = %s", rep)
	}

	// A tunnel claiming an impossible bound makes simulate fail with 3.
	ts[0].MaxJitterNs = 1
	bad, _ := json.Marshal(ts)
	badPath := write(t, dir, "bad.json", string(bad))
	text, stderr, err := run(t, "te", "simulate", "--topology", topoPath, "--tunnels", badPath, "--progress=false")
	if exitCode(err) != 3 || !strings.Contains(stderr, "bounds violated") || !strings.Contains(text, "tightness") {
		t.Fatalf("exit %d, stderr %q, stdout %q", exitCode(err), stderr, text)
	}
}

func TestBadFilesGiveOneClearError(t *testing.T) {
	dir := t.TempDir()
	topo := write(t, dir, "t.json", `{"nodes":[{"name":"h1","kind":"host","ipv4":"10.0.0.1"}],"links":[{"from":"h1","to":"h1","bandwidth_bps":1,"queue_bytes":1}]}`)
	reqs := write(t, dir, "r.json", `[]`)
	_, _, err := run(t, "te", "allocate", "--topology", topo, "--requests", reqs)
	if err == nil || !strings.Contains(err.Error(), "links[0].to: link from a node to itself (got h1)") {
		t.Fatalf("err = %v", err)
	}
	_, _, err = run(t, "te", "allocate", "--topology", filepath.Join(dir, "missing.json"), "--requests", reqs)
	if err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Fatalf("err = %v", err)
	}
	if _, _, err := run(t, "te", "gen", "fattree", "--k", "5"); err == nil {
		t.Fatal("odd k accepted")
	}
}

func TestDemoSmall(t *testing.T) {
	dir := t.TempDir()
	out, _, err := run(t, "demo", "--out", dir, "--requests", "40", "--restarts", "4")
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out)
	}
	for _, want := range []string{"tunnels admitted", "violations", "tightness"} {
		if !strings.Contains(out, want) {
			t.Fatalf("summary lacks %q:\n%s", want, out)
		}
	}
	for _, f := range []string{"topology.json", "requests.json", "tunnels.json", "report.json", "tightness.svg"} {
		if st, err := os.Stat(filepath.Join(dir, f)); err != nil || st.Size() == 0 {
			t.Fatalf("%s: %v", f, err)
		}
	}
}
