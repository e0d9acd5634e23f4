// Command xlane-deb builds the xlane .deb (make package) with nfpm: the
// binaries, a systemd unit for xlane-endhost, and its default
// configuration.
package main

import (
	_ "embed"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"github.com/goreleaser/nfpm/v2"
	"github.com/goreleaser/nfpm/v2/deb"
	"github.com/goreleaser/nfpm/v2/files"
	"github.com/spf13/cobra"
)

//go:embed files/xlane-endhost.service
var unit []byte

//go:embed files/endhost.yaml
var defaultConfig []byte

// binaries the package installs into /usr/bin.
var binaries = []string{"xlane", "xlane-controller", "xlane-endhost"}

func main() {
	if err := newRootCmd().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "xlane-deb:", err)
		os.Exit(1)
	}
}

func newRootCmd() *cobra.Command {
	var bin, out, version string
	cmd := &cobra.Command{
		Use:           "xlane-deb --bin DIR --out FILE.deb",
		Short:         "Build the xlane Debian package from built binaries",
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := build(bin, out, version); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), out)
			return nil
		},
	}
	cmd.Flags().StringVar(&bin, "bin", "bin", "directory with the built binaries")
	cmd.Flags().StringVar(&out, "out", "out/xlane.deb", "the package to write")
	cmd.Flags().StringVar(&version, "version", "0.1.0", "package version")
	return cmd
}

func build(bin, out, version string) error {
	tmp, err := os.MkdirTemp("", "xlane-deb-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	unitPath, confPath := filepath.Join(tmp, "xlane-endhost.service"), filepath.Join(tmp, "endhost.yaml")
	if err := errors.Join(os.WriteFile(unitPath, unit, 0o644), os.WriteFile(confPath, defaultConfig, 0o644)); err != nil {
		return err
	}
	var contents files.Contents
	for _, b := range binaries {
		src := filepath.Join(bin, b)
		if st, err := os.Stat(src); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
			return fmt.Errorf("%s: not a built binary (make build first)", src)
		}
		contents = append(contents, &files.Content{Source: src, Destination: "/usr/bin/" + b, FileInfo: &files.ContentFileInfo{Mode: 0o755}})
	}
	contents = append(contents,
		&files.Content{Source: unitPath, Destination: "/lib/systemd/system/xlane-endhost.service", FileInfo: &files.ContentFileInfo{Mode: 0o644}},
		&files.Content{Source: confPath, Destination: "/etc/xlane/endhost.yaml", Type: files.TypeConfigNoReplace, FileInfo: &files.ContentFileInfo{Mode: 0o644}},
		&files.Content{Destination: "/var/lib/xlane", Type: files.TypeDir, FileInfo: &files.ContentFileInfo{Mode: 0o755}},
	)
	info := &nfpm.Info{
		Name: "xlane", Arch: runtime.GOARCH, Platform: "linux", Version: version, Section: "net", Priority: "optional",
		Maintainer:  "xlane developers <xlane@users.noreply.github.com>",
		Description: "X-Lane: an express lane for data-center coordination traffic (controller, endhost lane daemon, operator CLI and testbed)",
		Homepage:    "https://github.com/xlane/xlane", License: "Apache-2.0",
		Overridables: nfpm.Overridables{Contents: contents, Recommends: []string{"openvswitch-switch", "ethtool", "iproute2"}},
	}
	info = nfpm.WithDefaults(info)
	if err := nfpm.PrepareForPackager(info, "deb"); err != nil {
		return fmt.Errorf("package: %w", err)
	}
	if err := nfpm.Validate(info); err != nil {
		return fmt.Errorf("package: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	if err := deb.Default.Package(info, f); err != nil {
		f.Close()
		os.Remove(out)
		return fmt.Errorf("package: %w", err)
	}
	return f.Close()
}
