// Package sharedtest locates the read-only ../shared folder (real data sets
// and third-party models) from any test, wherever in the module it runs.
//
// Outside CI a missing folder skips the test; under CI (CI set in the
// environment), where the folder is always laid beside the clone, it fails
// the test so a real-data check can never pass by being skipped.
package sharedtest

import (
	"os"
	"path/filepath"
	"testing"
)

// Dir returns the absolute path of ../shared joined with parts.
func Dir(t testing.TB, parts ...string) string {
	t.Helper()
	root, err := moduleRoot()
	if err != nil {
		t.Fatalf("sharedtest: %v", err)
	}
	dir := filepath.Join(filepath.Dir(root), "shared")
	if _, err := os.Stat(dir); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("sharedtest: shared data folder %s is missing under CI: %v", dir, err)
		}
		t.Skipf("shared data folder %s not present", dir)
	}
	return filepath.Join(append([]string{dir}, parts...)...)
}

// moduleRoot walks up from the working directory to the folder holding go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", os.ErrNotExist
		}
		dir = parent
	}
}
