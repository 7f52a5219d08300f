// Package synthtest makes the tiny synthetic detection set that training
// tests run on: 8 images of 64×64 pixels with one or two objects each
// (package dataset/synth, seed 3), generated once per test binary in a
// temporary folder.
package synthtest

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/gidedge/gidedge/dataset/synth"
)

var (
	once sync.Once
	dir  string
	err  error
)

// Tiny returns the set's folder, making it on first use.
func Tiny(t testing.TB) string {
	t.Helper()
	once.Do(func() {
		var tmp string
		if tmp, err = os.MkdirTemp("", "gidedge-synthtest-"); err != nil {
			return
		}
		dir = filepath.Join(tmp, "synth")
		_, err = synth.Generate(context.Background(), dir, synth.Options{Images: 8, Size: 64, Seed: 3, MinObjects: 1, MaxObjects: 2})
	})
	if err != nil {
		t.Fatalf("synthtest: %v", err)
	}
	return dir
}

// Cleanup removes the set; a package's TestMain calls it after m.Run.
func Cleanup() {
	if dir != "" {
		os.RemoveAll(filepath.Dir(dir))
	}
}
