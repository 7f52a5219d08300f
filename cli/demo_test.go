package cli

import (
	"io"
	"strings"
	"testing"

	"github.com/gidedge/gidedge/demo"
)

// TestDemoCommandsParse checks that every command the demo report gives for
// reproducing a stage by hand names a real subcommand with real flags.
func TestDemoCommandsParse(t *testing.T) {
	for _, quick := range []bool{false, true} {
		stages, err := demo.Commands(demo.Options{Quick: quick})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, st := range stages {
			for _, line := range st.Commands {
				if !strings.HasPrefix(line, "gidedge ") {
					continue
				}
				n++
				line = strings.TrimSuffix(line, " & sleep 2")
				args := strings.Fields(line)[1:]
				root := NewRoot(io.Discard, io.Discard)
				cmd, rest, err := root.Find(args)
				if err != nil || cmd == root {
					t.Errorf("stage %s: %q: no such command (%v)", st.ID, line, err)
					continue
				}
				if err := cmd.ParseFlags(rest); err != nil {
					t.Errorf("stage %s: %q: %v", st.ID, line, err)
					continue
				}
				if err := cmd.ValidateArgs(cmd.Flags().Args()); err != nil {
					t.Errorf("stage %s: %q: %v", st.ID, line, err)
				}
			}
		}
		if n < 10 {
			t.Errorf("quick %v: only %d gidedge commands in the report, want one or more per stage", quick, n)
		}
	}
}
