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
	"github.com/gidedge/gidedge/engine/cuda/driver"
	"github.com/gidedge/gidedge/internal/buildinfo"
	"github.com/gidedge/gidedge/ort"
)

func init() { register(newDoctorCmd) }

type doctorOptions struct {
	// CUDA says where to look for the CUDA libraries (GIDEDGE_CUDA_LIBS
	// and the standard places by default).
	CUDA driver.Config
}

// doctorCheck is one line of the report; Required checks fail the command.
type doctorCheck struct {
	Name     string
	Required bool
	Probe    func() (string, error)
}

func doctorChecks(o doctorOptions) []doctorCheck {
	checks := []doctorCheck{
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
	}
	return append(checks, cudaChecks(driver.Probe(o.CUDA))...)
}

// cudaChecks turns the CUDA probe into optional lines: the driver with the
// CUDA and driver versions, each GPU, and each library found (version and
// path) or missing (why, and what to install).
func cudaChecks(r driver.Report) []doctorCheck {
	line := func(name string, fn func() (string, error)) doctorCheck { return doctorCheck{name, false, fn} }
	var checks []doctorCheck
	for _, lib := range r.Libraries {
		lib := lib
		if lib.Name == "CUDA driver" {
			checks = append(checks, line("CUDA driver", func() (string, error) {
				switch {
				case !lib.Found():
					return "", fmt.Errorf("%v; to install: %s", lib.Err, lib.Install)
				case r.CUDA == "" || r.Err != nil && len(r.Devices) == 0:
					return "", fmt.Errorf("%s loads but fails: %w", lib.Path, r.Err)
				}
				v := "CUDA " + r.CUDA
				if r.DriverVersion != "" {
					v += ", driver " + r.DriverVersion
				}
				return v + " (" + lib.Path + ")", nil
			}))
			for _, dev := range r.Devices {
				dev := dev
				checks = append(checks, line(fmt.Sprintf("GPU %d", dev.Ordinal), func() (string, error) {
					if dev.ComputeCapability() < driver.MinComputeCapability {
						return "", fmt.Errorf("%s: gidedge's CUDA kernels need compute capability %d.%d or newer", dev, driver.MinComputeCapability/10, driver.MinComputeCapability%10)
					}
					return dev.String(), nil
				}))
			}
			continue
		}
		checks = append(checks, line(lib.Name, func() (string, error) {
			if !lib.Found() {
				if lib.Install == "" {
					return "", lib.Err
				}
				return "", fmt.Errorf("%v; to install: %s", lib.Err, lib.Install)
			}
			v := lib.Version
			if v != "" {
				v += " "
			}
			return v + "(" + lib.Path + ")", nil
		}))
	}
	return checks
}

func newDoctorCmd() *cobra.Command {
	var o doctorOptions
	return &cobra.Command{
		Use:   "doctor",
		Short: "Check the native libraries gidedge needs and report their versions",
		Long: `doctor reports the Go toolchain, OpenBLAS, ONNX Runtime and OpenCV versions, and
for CUDA: the driver (CUDA and driver versions), each GPU, and cuBLAS, cuBLASLt,
cuDNN and NVML, each found (version and path) or missing (where it looked and what
to install). It exits non-zero with one line for each required library that is
missing; the CUDA libraries are optional.

CUDA libraries are searched in the folders of GIDEDGE_CUDA_LIBS (colon-separated),
then the site-packages/nvidia/*/lib folders of Python environments (PyTorch's and
JAX's pip wheels), /usr/local/cuda, the driver folders of NVIDIA's container
runtime and JetPack, and the loader's path.`,
		Example: `  gidedge doctor
  GIDEDGE_ORT_LIB=/opt/ort/lib/libonnxruntime.so.1 gidedge doctor
  GIDEDGE_CUDA_LIBS=/opt/venv/lib/python3.12/site-packages/nvidia/cu13/lib gidedge doctor`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.CUDA = driver.DefaultConfig()
			return runDoctor(cmd.Context(), o, cmd.OutOrStdout(), doctorChecks(o))
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
