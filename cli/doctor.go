package cli

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"strings"

	"github.com/spf13/cobra"
	"gocv.io/x/gocv"

	"github.com/gidedge/gidedge/engine/cpu"
	"github.com/gidedge/gidedge/internal/buildinfo"
	"github.com/gidedge/gidedge/internal/dynlib"
	"github.com/gidedge/gidedge/ort"
)

func init() { register(newDoctorCmd) }

type doctorOptions struct{}

// doctorCheck is one line of the report; Required checks fail the command.
type doctorCheck struct {
	Name     string
	Required bool
	Probe    func() (string, error)
}

func doctorChecks() []doctorCheck {
	return []doctorCheck{
		{"gidedge", true, func() (string, error) { return buildinfo.Version + " (commit " + buildinfo.Commit() + ")", nil }},
		{"Go", true, func() (string, error) { return runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH, nil }},
		{"OpenBLAS", true, func() (string, error) { return cpu.OpenBLASConfig(), nil }},
		{"ONNX Runtime", true, func() (string, error) {
			if err := ort.Init(); err != nil {
				return "", err
			}
			return ort.Version() + " (" + ort.LibraryPath() + ")", nil
		}},
		{"OpenCV", true, func() (string, error) { return gocv.OpenCVVersion() + " (gocv " + gocv.Version() + ")", nil }},
		{"CUDA driver", false, dynlib.CUDADriverVersion},
	}
}

func newDoctorCmd() *cobra.Command {
	var o doctorOptions
	return &cobra.Command{
		Use:   "doctor",
		Short: "Check the native libraries gidedge needs and report their versions",
		Long: `doctor reports the Go toolchain, OpenBLAS, ONNX Runtime and OpenCV versions and
whether a CUDA driver can be loaded. It exits non-zero with one line for each
required library that is missing; a missing CUDA driver is reported but optional.`,
		Example: `  gidedge doctor
  GIDEDGE_ORT_LIB=/opt/ort/lib/libonnxruntime.so.1 gidedge doctor`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDoctor(cmd.Context(), o, cmd.OutOrStdout(), doctorChecks())
		},
	}
}

func runDoctor(_ context.Context, _ doctorOptions, w io.Writer, checks []doctorCheck) error {
	var missing []string
	for _, c := range checks {
		v, err := c.Probe()
		switch {
		case err == nil:
			fmt.Fprintf(w, "ok       %-13s %s\n", c.Name, v)
		case c.Required:
			fmt.Fprintf(w, "MISSING  %-13s %v\n", c.Name, err)
			missing = append(missing, c.Name)
		default:
			fmt.Fprintf(w, "absent   %-13s %v (optional)\n", c.Name, err)
		}
	}
	if len(missing) > 0 {
		return &ExitError{Code: 2, Err: fmt.Errorf("doctor: missing %s; run scripts/setup.sh", strings.Join(missing, ", "))}
	}
	return nil
}
