// Package simtest runs fault scenarios against the CUDA driver simulator
// for the tests of the driver binding and of the CUDA backend. The CUDA
// libraries load once per process, so each fault runs in a child process of
// the test binary: the parent (Run) starts it and checks it passed without
// crashing, the child (Helper) runs the fault's own checks.
package simtest

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/gidedge/gidedge/engine/cuda/sim"
)

// Fault is one scenario: the simulator told to fail through Env
// (GIDEDGE_CUDASIM_*), with only the simulator libraries Libs in its folder
// (nil: all of them), and Check run in the child on that folder.
type Fault struct {
	Name  string
	Env   []string
	Libs  []string
	Check func(t *testing.T, dir string)
}

// Faults is any struct type laid out as Fault, so a test package can
// declare its table with a local type and unkeyed literals.
type Faults interface {
	~struct {
		Name  string
		Env   []string
		Libs  []string
		Check func(t *testing.T, dir string)
	}
}

const (
	envFault = "GIDEDGE_TEST_FAULT"
	envDir   = "GIDEDGE_TEST_FAULT_DIR"
)

// Helper is the body of the test named in Run's helper argument: in a
// child started by Run it runs the chosen fault's check; otherwise it
// does nothing.
func Helper[F Faults](t *testing.T, faults []F) {
	name, dir := os.Getenv(envFault), os.Getenv(envDir)
	if name == "" {
		return
	}
	for _, ff := range faults {
		if f := Fault(ff); f.Name == name {
			f.Check(t, dir)
			return
		}
	}
	t.Fatalf("no fault %q", name)
}

// Run builds the simulator and runs every fault as a subtest, each in a
// child process that runs only the test named helper (which calls Helper).
func Run[F Faults](t *testing.T, faults []F, helper string) {
	simDir, err := sim.Build()
	if err != nil {
		t.Fatal(err)
	}
	for _, ff := range faults {
		f := Fault(ff)
		t.Run(f.Name, func(t *testing.T) {
			dir := simDir
			if f.Libs != nil {
				dir = t.TempDir()
				if err := sim.LinkLibraries(dir, simDir, f.Libs...); err != nil {
					t.Fatal(err)
				}
			}
			cmd := exec.Command(os.Args[0], "-test.run=^"+helper+"$", "-test.count=1", "-test.v")
			cmd.Env = append(os.Environ(), envFault+"="+f.Name, envDir+"="+dir)
			cmd.Env = append(cmd.Env, f.Env...)
			out, err := cmd.CombinedOutput()
			if err != nil || !strings.Contains(string(out), "--- PASS: "+helper) {
				t.Fatalf("%v\n%s", err, out)
			}
		})
	}
}
