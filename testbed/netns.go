package testbed

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// netnsDir is where named namespaces live (as `ip netns` keeps them), so
// `ip netns exec` works on a testbed's hosts too.
const netnsDir = "/var/run/netns"

// createNetns creates the named network namespace (a bind mount under
// /var/run/netns) without moving the caller into it.
func createNetns(name string) error {
	if _, err := os.Stat(filepath.Join(netnsDir, name)); err == nil {
		return fmt.Errorf("network namespace %s exists already (a testbed of the same name is up; run `xlane testbed down`)", name)
	}
	// netns.NewNamed switches the calling thread into the new namespace:
	// do it on a locked thread and switch back.
	runtime.LockOSThread()
	back := true // false: the thread is stuck in the new namespace; it dies with this goroutine
	defer func() {
		if back {
			runtime.UnlockOSThread()
		}
	}()
	orig, err := netns.Get()
	if err != nil {
		return fmt.Errorf("current network namespace: %w", err)
	}
	defer orig.Close()
	h, err := netns.NewNamed(name)
	if err != nil {
		return fmt.Errorf("create network namespace %s: %w", name, err)
	}
	h.Close()
	if err := netns.Set(orig); err != nil {
		back = false
		return fmt.Errorf("return from network namespace %s: %w", name, err)
	}
	return nil
}

// deleteNetns removes a named namespace; a missing one is not an error.
func deleteNetns(name string) error {
	if _, err := os.Stat(filepath.Join(netnsDir, name)); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err := netns.DeleteNamed(name); err != nil {
		return fmt.Errorf("delete network namespace %s: %w", name, err)
	}
	return nil
}

// inNetns runs fn inside the named namespace (on a locked thread).
func inNetns(name string, fn func() error) error {
	n, err := ns.GetNS(filepath.Join(netnsDir, name))
	if err != nil {
		return fmt.Errorf("network namespace %s: %w", name, err)
	}
	defer n.Close()
	return n.Do(func(ns.NetNS) error { return fn() })
}

// handleAt returns a netlink handle operating in the named namespace.
func handleAt(name string) (*netlink.Handle, error) {
	h, err := netns.GetFromName(name)
	if err != nil {
		return nil, fmt.Errorf("network namespace %s: %w", name, err)
	}
	defer h.Close()
	nh, err := netlink.NewHandleAt(h)
	if err != nil {
		return nil, fmt.Errorf("netlink in %s: %w", name, err)
	}
	return nh, nil
}

// nsFd opens the named namespace's file (to move links into it).
func nsFd(name string) (*os.File, error) {
	f, err := os.Open(filepath.Join(netnsDir, name))
	if err != nil {
		return nil, fmt.Errorf("network namespace %s: %w", name, err)
	}
	return f, nil
}
