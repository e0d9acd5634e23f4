package main

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/xlane/xlane/endhost/tune"
)

func run(args ...string) (string, error) {
	cmd := newRootCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), err
}

// TestTuneReportsThisHost runs the dry run on this machine's loopback:
// a report, no error, nothing changed.
func TestTuneReportsThisHost(t *testing.T) {
	out, err := run("tune", "--cpu", "0", "--interface", "lo")
	if err != nil || !strings.Contains(out, "lane CPU 0, interface lo") || !strings.Contains(out, "nmi_watchdog") {
		t.Fatalf("tune: %v\n%s", err, out)
	}
	out, err = run("tune", "--cpu", "0", "--interface", "lo", "--json")
	var v struct {
		Report  tune.Report
		Applied []tune.Write
	}
	if err != nil || json.Unmarshal([]byte(out), &v) != nil || len(v.Report.Findings) < 8 || v.Applied != nil {
		t.Fatalf("tune --json: %v\n%s", err, out)
	}
	if _, err := run("tune", "--cpu", "999", "--interface", "lo"); err == nil || !strings.Contains(err.Error(), "CPU 999 is not online") {
		t.Errorf("an offline CPU: %v", err)
	}
	if _, err := run("tune", "--interface", "lo"); err == nil || !strings.Contains(err.Error(), "cpu") {
		t.Errorf("no --cpu: %v", err)
	}
}

func TestRunRefusesBadConfig(t *testing.T) {
	dir := t.TempDir()
	bad := dir + "/endhost.yaml"
	if err := os.WriteFile(bad, []byte("service: fd\nlanes: [{name: hb, sender: 10.0.0.1, receiver: 10.0.0.2:7000, message_bytes: 64, period: 0s, apps: [{name: fd}]}]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := run("run", "--config", bad); err == nil || !strings.Contains(err.Error(), "lanes[0].period") {
		t.Errorf("bad period: %v", err)
	}
	if _, err := run("run", "--config", dir+"/missing.yaml"); err == nil {
		t.Error("a missing file was accepted")
	}
}
