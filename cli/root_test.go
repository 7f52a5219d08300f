package cli

import (
	"errors"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/gidedge/gidedge/engine"
	"github.com/gidedge/gidedge/export"
	"github.com/gidedge/gidedge/geom"
)

// TestRunRecoversTypedPanics checks the one recover point: typed panics of
// programmer errors become the command's error, anything else still
// crashes with its stack trace.
func TestRunRecoversTypedPanics(t *testing.T) {
	panicking := func(v any) *cobra.Command {
		return &cobra.Command{Use: "x", SilenceErrors: true, SilenceUsage: true, RunE: func(*cobra.Command, []string) error { panic(v) }}
	}
	for _, c := range []struct {
		name  string
		value error
		want  string
	}{
		{"engine", &engine.OpError{Op: "Add", Shapes: [][]int{{2, 3}, {4, 3}}, Err: engine.ErrShape, Detail: "shapes differ"}, "engine: Add: shapes differ"},
		{"geom", &geom.LengthError{Func: "NMS", Detail: "3 scores for 2 boxes"}, "geom: NMS: 3 scores for 2 boxes"},
		{"export", &export.BuildError{Step: "reserve", Detail: `tensor name "boxes" emitted twice`}, "export: graph builder: reserve"},
	} {
		t.Run(c.name, func(t *testing.T) {
			root := panicking(c.value)
			root.SetArgs(nil)
			err := run(root)
			if !errors.Is(err, c.value) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("run = %v, want the panic value %q back as the error", err, c.want)
			}
		})
	}
	for _, c := range []struct {
		name string
		fire func()
	}{
		{"runtime error", func() { var m map[string]int; m["x"] = 1 }},
		{"string", func() { panic("not typed") }},
	} {
		t.Run(c.name, func(t *testing.T) {
			root := &cobra.Command{Use: "x", SilenceErrors: true, SilenceUsage: true, RunE: func(*cobra.Command, []string) error { c.fire(); return nil }}
			root.SetArgs(nil)
			defer func() {
				if recover() == nil {
					t.Fatal("run swallowed a panic that is not a typed programmer error")
				}
			}()
			run(root)
		})
	}
}
