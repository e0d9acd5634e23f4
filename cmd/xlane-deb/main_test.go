package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xlane/xlane/controller/config"
	"github.com/xlane/xlane/endhost/agent"
)

// TestPackageInstallsIntoAScratchRoot builds the binaries and the .deb,
// unpacks it with dpkg into a scratch root, and checks what a host would
// get: the binaries (that run), the unit, the configuration (marked as
// one, and valid).
func TestPackageInstallsIntoAScratchRoot(t *testing.T) {
	if _, err := exec.LookPath("dpkg-deb"); err != nil {
		t.Skip("dpkg-deb is not installed")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	args := append([]string{"build", "-o", bin + "/"}, "github.com/xlane/xlane/cmd/xlane", "github.com/xlane/xlane/cmd/xlane-controller", "github.com/xlane/xlane/cmd/xlane-endhost")
	if out, err := exec.Command("go", args...).CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	deb := filepath.Join(dir, "xlane.deb")
	if err := build(bin, deb, "1.2.3"); err != nil {
		t.Fatal(err)
	}
	info, err := exec.Command("dpkg-deb", "-f", deb, "Package", "Version", "Architecture").Output()
	if err != nil || !strings.Contains(string(info), "Package: xlane") || !strings.Contains(string(info), "Version: 1.2.3") {
		t.Fatalf("control fields: %v\n%s", err, info)
	}
	root := filepath.Join(dir, "root")
	if out, err := exec.Command("dpkg-deb", "-x", deb, root).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb -x: %v\n%s", err, out)
	}
	for _, b := range binaries {
		st, err := os.Stat(filepath.Join(root, "usr/bin", b))
		if err != nil || st.Mode()&0o111 == 0 {
			t.Fatalf("/usr/bin/%s: %v", b, err)
		}
	}
	help, err := exec.Command(filepath.Join(root, "usr/bin/xlane-endhost"), "run", "--help").CombinedOutput()
	if err != nil || !bytes.Contains(help, []byte("lane_cpu")) {
		t.Fatalf("xlane-endhost run --help from the package: %v\n%s", err, help)
	}
	for unit, exec := range map[string]string{
		"xlane-endhost.service":    "ExecStart=/usr/bin/xlane-endhost run --config /etc/xlane/endhost.yaml",
		"xlane-controller.service": "ExecStart=/usr/bin/xlane-controller --config /etc/xlane/controller.yaml",
	} {
		u, err := os.ReadFile(filepath.Join(root, "lib/systemd/system", unit))
		if err != nil || !bytes.Contains(u, []byte(exec)) {
			t.Fatalf("unit %s: %v\n%s", unit, err, u)
		}
	}
	help, err = exec.Command(filepath.Join(root, "usr/bin/xlane-controller"), "--help").CombinedOutput()
	if err != nil || !bytes.Contains(help, []byte("--realtime-priority")) {
		t.Fatalf("xlane-controller --help from the package: %v\n%s", err, help)
	}
	cf, err := os.Open(filepath.Join(root, "etc/xlane/controller.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	defer cf.Close()
	if c, err := config.Parse(cf); err != nil || c.RealtimePriority != 1 || c.Driver != "openflow" || c.Topology != "/etc/xlane/topology.json" {
		t.Errorf("the packaged controller configuration: %+v, %v", c, err)
	}
	f, err := os.Open(filepath.Join(root, "etc/xlane/endhost.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := agent.Parse(f); err != nil {
		t.Errorf("the packaged configuration does not parse: %v", err)
	}
	ctl := filepath.Join(dir, "ctl")
	if out, err := exec.Command("dpkg-deb", "-e", deb, ctl).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb -e: %v\n%s", err, out)
	}
	if c, _ := os.ReadFile(filepath.Join(ctl, "conffiles")); !bytes.Contains(c, []byte("/etc/xlane/endhost.yaml")) || !bytes.Contains(c, []byte("/etc/xlane/controller.yaml")) {
		t.Errorf("conffiles: %q", c)
	}
	if err := build(filepath.Join(dir, "nothing"), filepath.Join(dir, "x.deb"), "1"); err == nil || !strings.Contains(err.Error(), "make build first") {
		t.Errorf("without binaries: %v", err)
	}
}
