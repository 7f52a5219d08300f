package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/gidedge/gidedge/dataset/synth"
)

// TestDataSynthDefaultsAreTheBenchmarkSet: `gidedge data synth` with no
// flag beyond --out and --images writes the same bytes as synth.Generate
// with the options whose digest dataset/synth's TestBenchmarkSetGolden
// pins, so the command's defaults still make the benchmark set.
func TestDataSynthDefaultsAreTheBenchmarkSet(t *testing.T) {
	base := t.TempDir()
	cliDir, apiDir := filepath.Join(base, "cli"), filepath.Join(base, "api")
	root := NewRoot(&bytes.Buffer{}, &bytes.Buffer{})
	root.SetArgs([]string{"data", "synth", "--out", cliDir, "--images", "4"})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	if _, err := synth.Generate(context.Background(), apiDir, synth.Options{Images: 4, Seed: 1, ValFrac: 0.1, TestFrac: 0.1}); err != nil {
		t.Fatal(err)
	}
	n := 0
	err := filepath.Walk(apiDir, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(apiDir, p)
		want, _ := os.ReadFile(p)
		got, err := os.ReadFile(filepath.Join(cliDir, rel))
		if err != nil {
			return err
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs between the command's defaults and the golden options", rel)
		}
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 8 { // 4 images, 3 annotation files, synth.json
		t.Fatalf("compared %d files", n)
	}
}
