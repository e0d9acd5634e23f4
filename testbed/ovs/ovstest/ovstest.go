// Package ovstest starts a private Open vSwitch instance for a test, or
// skips the test with the reason it cannot run here.
package ovstest

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/xlane/xlane/testbed/ovs"
)

// Start runs a private instance in a fresh directory and stops it when
// the test ends. It skips the test when not root or without Open vSwitch.
func Start(t testing.TB) *ovs.Instance {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces, Open vSwitch)")
	}
	if err := ovs.Available(); err != nil {
		t.Skip(err.Error())
	}
	// OVS socket paths must stay short (unix sockets: 108 bytes).
	dir, err := os.MkdirTemp("", "xlovs")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	inst, err := ovs.Start(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := inst.Stop(ctx); err != nil {
			t.Errorf("stopping open vswitch: %v", err)
		}
		if t.Failed() {
			for _, f := range []string{"vswitchd.log"} {
				if b, err := os.ReadFile(filepath.Join(dir, f)); err == nil {
					t.Logf("%s:\n%s", f, tail(b, 4000))
				}
			}
		}
		os.RemoveAll(dir)
	})
	return inst
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
