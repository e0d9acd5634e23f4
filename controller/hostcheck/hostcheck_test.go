package hostcheck

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func host(t *testing.T, thp string) string {
	t.Helper()
	root := t.TempDir()
	p := filepath.Join(root, THPPath)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(thp), 0o644); err != nil {
		t.Fatal(err)
	}
	return root
}

func TestHugePages(t *testing.T) {
	for _, c := range []struct{ file, mode, advice string }{
		{"[always] madvise never\n", "always", ""},
		{"always [madvise] never\n", "madvise", "echo always > /sys/kernel/mm/transparent_hugepage/enabled"},
		{"always madvise [never]\n", "never", `"never"`},
	} {
		mode, err := HugePages(host(t, c.file))
		if err != nil || mode != c.mode {
			t.Errorf("%q: mode %q, %v; want %q", c.file, mode, err, c.mode)
		}
		if a := HugePagesAdvice(mode); (c.advice == "") != (a == "") || !strings.Contains(a, c.advice) {
			t.Errorf("%q: advice %q, want one containing %q", c.file, a, c.advice)
		}
	}
	for _, bad := range []string{"always madvise never", "[]", ""} {
		if mode, err := HugePages(host(t, bad)); err == nil || !strings.Contains(err.Error(), "no selected mode") {
			t.Errorf("%q: %q, %v; want an error naming the missing mode", bad, mode, err)
		}
	}
	if _, err := HugePages(t.TempDir()); err == nil || !strings.Contains(err.Error(), "transparent huge pages") {
		t.Errorf("no such file: %v", err)
	}
}
