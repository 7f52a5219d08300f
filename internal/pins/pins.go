// Package pins reads versions.env, the one file that names the versions
// gidedge's builds pin: Go, gocv and the OpenCV releases it is paired with,
// ONNX Runtime, the Jetson base image and the Debian release the arm64
// sysroot comes from. scripts/setup.sh and scripts/build_arm64.sh source the
// file; the package's tests fail when go.mod, ort.ExpectedVersion,
// Dockerfile.jetson or docs/jetson.md drift from it.
//
// Errors name the file and line and say what was expected.
package pins

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// FileName is the versions file at the repository root.
const FileName = "versions.env"

// Versions are the pinned versions, one field per key of versions.env.
type Versions struct {
	Go            string // GO_VERSION, e.g. 1.26.8
	GoCV          string // GOCV_VERSION, e.g. v0.31.0
	OpenCVDebian  string // OPENCV_DEBIAN_VERSION: Debian 12 and the arm64 sysroot
	OpenCVJetPack string // OPENCV_JETPACK_VERSION: the Jetson image
	ORT           string // ORT_VERSION
	L4T           string // L4T_VERSION, the l4t-jetpack image tag
	DebianSuite   string // DEBIAN_SUITE
}

var keyPattern = regexp.MustCompile(`^[A-Z][A-Z0-9_]*$`)

// Parse reads KEY=VALUE lines (comments and blank lines allowed, no quoting
// or expansion, so the file means the same to sh, make and Go). Every key of
// Versions must appear exactly once and no other key may.
func Parse(name string, text string) (Versions, error) {
	var v Versions
	fields := map[string]*string{
		"GO_VERSION": &v.Go, "GOCV_VERSION": &v.GoCV,
		"OPENCV_DEBIAN_VERSION": &v.OpenCVDebian, "OPENCV_JETPACK_VERSION": &v.OpenCVJetPack,
		"ORT_VERSION": &v.ORT, "L4T_VERSION": &v.L4T, "DEBIAN_SUITE": &v.DebianSuite,
	}
	seen := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(text))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		if !ok || !keyPattern.MatchString(key) {
			return Versions{}, fmt.Errorf("pins: %s:%d: %q is not KEY=VALUE", name, n, line)
		}
		dst, known := fields[key]
		if !known {
			return Versions{}, fmt.Errorf("pins: %s:%d: unknown key %s", name, n, key)
		}
		if seen[key] {
			return Versions{}, fmt.Errorf("pins: %s:%d: %s given twice", name, n, key)
		}
		if value == "" || strings.ContainsAny(value, " \t\"'$`\\") {
			return Versions{}, fmt.Errorf("pins: %s:%d: %s=%q must be a plain word", name, n, key, value)
		}
		seen[key], *dst = true, value
	}
	if err := sc.Err(); err != nil {
		return Versions{}, fmt.Errorf("pins: %s: %w", name, err)
	}
	var missing []string
	for key := range fields {
		if !seen[key] {
			missing = append(missing, key)
		}
	}
	if len(missing) > 0 {
		return Versions{}, fmt.Errorf("pins: %s lacks %s", name, strings.Join(missing, ", "))
	}
	return v, nil
}

// Load reads a versions file.
func Load(path string) (Versions, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Versions{}, fmt.Errorf("pins: %w", err)
	}
	return Parse(path, string(b))
}

// ErrNoRepository reports that no folder above the working directory holds
// both go.mod and versions.env.
var ErrNoRepository = errors.New("pins: no repository root with " + FileName + " above the working directory")

// Root walks up from the working directory to the repository root, the
// folder holding go.mod and versions.env.
func Root() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("pins: %w", err)
	}
	for {
		_, errMod := os.Stat(filepath.Join(dir, "go.mod"))
		_, errPins := os.Stat(filepath.Join(dir, FileName))
		if errMod == nil && errPins == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", ErrNoRepository
		}
		dir = parent
	}
}

// LoadRoot finds the repository root and reads its versions file.
func LoadRoot() (root string, v Versions, err error) {
	if root, err = Root(); err != nil {
		return "", Versions{}, err
	}
	v, err = Load(filepath.Join(root, FileName))
	return root, v, err
}
