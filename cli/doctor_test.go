package cli

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
)

var errProbe = errors.New("probe failed")

func TestDoctorReportsEachMissingLibrary(t *testing.T) {
	checks := []doctorCheck{
		{"Present", true, func() (string, error) { return "1.0", nil }},
		{"LibA", true, func() (string, error) { return "", errProbe }},
		{"LibB", true, func() (string, error) { return "", errProbe }},
		{"Optional", false, func() (string, error) { return "", errProbe }},
	}
	var out bytes.Buffer
	err := runDoctor(context.Background(), doctorOptions{}, &out, checks)
	var exit *ExitError
	if !errors.As(err, &exit) || exit.Code != 2 {
		t.Fatalf("want exit code 2, got %v", err)
	}
	if !strings.Contains(err.Error(), "LibA, LibB") {
		t.Errorf("error %q does not name both missing libraries", err)
	}
	for _, want := range []string{"ok       Present", "MISSING  LibA", "MISSING  LibB", "absent   Optional"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
}

func TestDoctorOnThisMachine(t *testing.T) {
	var out bytes.Buffer
	if err := runDoctor(context.Background(), doctorOptions{}, &out, doctorChecks()); err != nil {
		t.Fatalf("doctor failed on a set-up machine: %v\n%s", err, out.String())
	}
	for _, want := range []string{"OpenBLAS", "ONNX Runtime  1.30.0", "OpenCV        4.6.0", "CUDA driver"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
}

func TestVersionCommand(t *testing.T) {
	var out, errb bytes.Buffer
	root := NewRoot(&out, &errb)
	root.SetArgs([]string{"version"})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "gidedge ") {
		t.Fatalf("version printed %q", out.String())
	}
}
