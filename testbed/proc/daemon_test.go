package proc

import (
	"context"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestDaemonLogWaitCountStop(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command("sh", "-c", `echo "msg=ready addr=here"; echo demoted; echo other; echo demoted; exec sleep 60`)
	d, err := Start("sleeper", cmd, filepath.Join(dir, "log"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := d.Wait(context.Background(), regexp.MustCompile(`msg=ready addr=(\S+)`), 5*time.Second)
	if err != nil || m[1] != "here" {
		t.Fatalf("Wait = %q, %v", m, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	n := 0
	for n < 2 && time.Now().Before(deadline) {
		n += d.Count(regexp.MustCompile(`^demoted$`))
		time.Sleep(10 * time.Millisecond)
	}
	if n != 2 {
		t.Fatalf("Count = %d, want 2", n)
	}
	if err := d.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if Alive(d.Pid()) {
		t.Fatal("still running after Stop")
	}
	if !strings.Contains(d.Tail(), "other") {
		t.Fatalf("log tail %q lacks the output", d.Tail())
	}
}

func TestDaemonExitBeforeLine(t *testing.T) {
	d, err := Start("quitter", exec.Command("sh", "-c", "echo bye; exit 3"), filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = d.Wait(context.Background(), regexp.MustCompile("never"), 5*time.Second)
	if err == nil || !strings.Contains(err.Error(), "exited") || !strings.Contains(err.Error(), "bye") {
		t.Fatalf("Wait on an exited daemon: %v", err)
	}
}

func TestFind(t *testing.T) {
	if _, err := Find(t.TempDir(), "sh"); err != nil {
		t.Fatalf("sh from PATH: %v", err)
	}
	if _, err := Find(t.TempDir(), "no-such-xlane-binary"); err == nil || !strings.Contains(err.Error(), "no-such-xlane-binary") {
		t.Fatalf("missing binary: %v", err)
	}
}
