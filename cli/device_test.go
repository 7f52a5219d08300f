package cli

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/gidedge/gidedge/engine/backend"
)

// TestDeviceFlag runs an engine command with --device: an unknown device
// is an error naming the devices of this build, and every engine command
// has the flag. (A device that cannot be opened, cuda without a driver,
// is TestCUDAErrors's first case.)
func TestDeviceFlag(t *testing.T) {
	defer func() {
		if _, err := backend.Use(backend.DefaultName()); err != nil {
			t.Fatal(err)
		}
	}()
	for _, tc := range []struct {
		device string
		want   []string
	}{
		{"nope", []string{`unknown device "nope"`, "available: cpu, "}},
	} {
		var out, errOut bytes.Buffer
		root := NewRoot(&out, &errOut)
		root.SetArgs([]string{"bench", "engine", "--device", tc.device})
		err := root.Execute()
		if !errors.Is(err, backend.ErrDevice) {
			t.Fatalf("--device %s: got %v, want ErrDevice", tc.device, err)
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("--device %s: error %q lacks %q", tc.device, err, w)
			}
		}
	}
	for _, cmd := range []string{"train", "distill", "eval", "predict", "export", "demo"} {
		root := NewRoot(new(bytes.Buffer), new(bytes.Buffer))
		c, _, err := root.Find([]string{cmd})
		if err != nil || c.Flags().Lookup("device") == nil {
			t.Errorf("gidedge %s has no --device flag (%v)", cmd, err)
		}
	}
}
