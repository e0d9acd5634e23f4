// Command xlane-deb builds the xlane .deb (make package) with nfpm: the
// binaries, systemd units for xlane-endhost and xlane-controller, and
// their default configurations.
package main

import (
	"embed"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"github.com/goreleaser/nfpm/v2"
	"github.com/goreleaser/nfpm/v2/deb"
	"github.com/goreleaser/nfpm/v2/files"
	"github.com/spf13/cobra"
)

// unitFiles are the package's systemd units and configurations, by where
// they go; the configurations are conffiles (an edited one stays).
var unitFiles = []struct {
	dest   string
	config bool
}{
	{"/lib/systemd/system/xlane-endhost.service", false},
	{"/etc/xlane/endhost.yaml", true},
	{"/lib/systemd/system/xlane-controller.service", false},
	{"/etc/xlane/controller.yaml", true},
}

//go:embed files
var packaged embed.FS

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
	var contents files.Contents
	for _, u := range unitFiles {
		data, err := packaged.ReadFile("files/" + filepath.Base(u.dest))
		if err != nil {
			return err
		}
		src := filepath.Join(tmp, filepath.Base(u.dest))
		if err := os.WriteFile(src, data, 0o644); err != nil {
			return err
		}
		c := &files.Content{Source: src, Destination: u.dest, FileInfo: &files.ContentFileInfo{Mode: 0o644}}
		if u.config {
			c.Type = files.TypeConfigNoReplace
		}
		contents = append(contents, c)
	}
	for _, b := range binaries {
		src := filepath.Join(bin, b)
		if st, err := os.Stat(src); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
			return fmt.Errorf("%s: not a built binary (make build first)", src)
		}
		contents = append(contents, &files.Content{Source: src, Destination: "/usr/bin/" + b, FileInfo: &files.ContentFileInfo{Mode: 0o755}})
	}
	contents = append(contents, &files.Content{Destination: "/var/lib/xlane", Type: files.TypeDir, FileInfo: &files.ContentFileInfo{Mode: 0o755}})
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
