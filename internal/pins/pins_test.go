package pins_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/gidedge/gidedge/internal/pins"
	"github.com/gidedge/gidedge/ort"
)

func load(t *testing.T) (string, pins.Versions) {
	t.Helper()
	root, v, err := pins.LoadRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root, v
}

func read(t *testing.T, root, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// match returns the first submatch of pattern in text, failing when absent.
func match(t *testing.T, file, text, pattern string) string {
	t.Helper()
	m := regexp.MustCompile(pattern).FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("%s: no line matches %q", file, pattern)
	}
	return m[1]
}

// TestNoDrift is the one check that every file repeating a pinned version
// agrees with versions.env.
func TestNoDrift(t *testing.T) {
	root, v := load(t)
	gomod := read(t, root, "go.mod")
	docker := read(t, root, "Dockerfile.jetson")
	jetson := read(t, root, "docs/jetson.md")
	setup := read(t, root, "scripts/setup.sh")
	readme := read(t, root, "README.md")

	checks := []struct{ where, got, want string }{
		{"go.mod go line", match(t, "go.mod", gomod, `(?m)^go (\S+)$`), v.Go},
		{"go.mod gocv.io/x/gocv", match(t, "go.mod", gomod, `(?m)^\s*gocv\.io/x/gocv (\S+)`), v.GoCV},
		{"ort.ExpectedVersion", ort.ExpectedVersion, v.ORT},
		{"Dockerfile.jetson ARG GO_VERSION", match(t, "Dockerfile.jetson", docker, `(?m)^ARG GO_VERSION=(\S+)$`), v.Go},
		{"Dockerfile.jetson ARG ORT_VERSION", match(t, "Dockerfile.jetson", docker, `(?m)^ARG ORT_VERSION=(\S+)$`), v.ORT},
		{"Dockerfile.jetson ARG OPENCV_VERSION", match(t, "Dockerfile.jetson", docker, `(?m)^ARG OPENCV_VERSION=(\S+)$`), v.OpenCVJetPack},
		{"Dockerfile.jetson ARG L4T_IMAGE", match(t, "Dockerfile.jetson", docker, `(?m)^ARG L4T_IMAGE=nvcr\.io/nvidia/l4t-jetpack:(\S+)$`), v.L4T},
		{"Dockerfile.jetson ARG RUNTIME_IMAGE", match(t, "Dockerfile.jetson", docker, `(?m)^ARG RUNTIME_IMAGE=nvcr\.io/nvidia/l4t-jetpack:(\S+)$`), v.L4T},
		{"docs/jetson.md versions table, OpenCV", match(t, "docs/jetson.md", jetson, `(?m)^\| OpenCV \| (\S+) \|`), v.OpenCVJetPack},
		{"docs/jetson.md versions table, gocv", match(t, "docs/jetson.md", jetson, `(?m)^\| gocv \| (\S+) \|`), v.GoCV},
		{"docs/jetson.md versions table, ONNX Runtime", match(t, "docs/jetson.md", jetson, `(?m)^\| ONNX Runtime \| (\S+),`), v.ORT},
		{"docs/jetson.md versions table, Go", match(t, "docs/jetson.md", jetson, `(?m)^\| Go \| (\S+) \|`), v.Go},
		{"docs/jetson.md versions table, L4T", match(t, "docs/jetson.md", jetson, "(?m)^\\| L4T / JetPack \\| .*`nvcr\\.io/nvidia/l4t-jetpack:(\\S+)`"), v.L4T},
		{"README ONNX Runtime", match(t, "README.md", readme, `ONNX\s+Runtime (\d+\.\d+\.\d+) shared library`), v.ORT},
		{"README gocv pin", match(t, "README.md", readme, "`gocv\\.io/x/gocv` (v\\S+)"), v.GoCV},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s is %q, versions.env says %q", c.where, c.got, c.want)
		}
	}

	// The image builds gocv as go.mod pins it: no second gocv in the Dockerfile.
	if strings.Contains(docker, "go get") || strings.Contains(docker, "GOCV_VERSION") {
		t.Error("Dockerfile.jetson switches gocv away from go.mod's pin; the pairing table says one release serves both OpenCVs")
	}
	// setup.sh takes its versions from the file instead of repeating them.
	if !strings.Contains(setup, `. "$root/versions.env"`) || regexp.MustCompile(`(?m)^ort_version="\d`).MatchString(setup) {
		t.Error("scripts/setup.sh must source versions.env and not hard-code the ONNX Runtime version")
	}
}

// TestPairingTable checks docs/jetson.md's gocv/OpenCV table: the pinned gocv
// must be listed against both OpenCV releases the builds use.
func TestPairingTable(t *testing.T) {
	root, v := load(t)
	jetson := read(t, root, "docs/jetson.md")
	rows := regexp.MustCompile(`(?m)^\| (v\d+\.\d+\.\d+) \| (\d+\.\d+\.\d+) \| ([^|]+) \|`).FindAllStringSubmatch(jetson, -1)
	paired := map[string]string{}
	for _, r := range rows {
		if r[1] == v.GoCV {
			paired[r[2]] = strings.TrimSpace(r[3])
		}
	}
	for _, opencv := range []string{v.OpenCVDebian, v.OpenCVJetPack} {
		verdict, ok := paired[opencv]
		if !ok {
			t.Errorf("docs/jetson.md pairing table has no row for gocv %s with OpenCV %s", v.GoCV, opencv)
			continue
		}
		if !strings.HasPrefix(verdict, "builds") {
			t.Errorf("docs/jetson.md says gocv %s with OpenCV %s %q; the pinned pair must build", v.GoCV, opencv, verdict)
		}
	}
}

func TestParse(t *testing.T) {
	good := "# c\nGO_VERSION=1.26.8\nGOCV_VERSION=v0.31.0\nOPENCV_DEBIAN_VERSION=4.6.0\nOPENCV_JETPACK_VERSION=4.8.0\nORT_VERSION=1.30.0\nL4T_VERSION=r36.4.0\nDEBIAN_SUITE=bookworm\n"
	v, err := pins.Parse("versions.env", good)
	if err != nil || v.GoCV != "v0.31.0" || v.L4T != "r36.4.0" || v.DebianSuite != "bookworm" {
		t.Fatalf("Parse = %+v, %v", v, err)
	}
	for name, tc := range map[string]struct{ text, want string }{
		"unknown key":  {good + "CUDA=12\n", "versions.env:9: unknown key CUDA"},
		"twice":        {good + "GO_VERSION=1.27\n", "GO_VERSION given twice"},
		"missing":      {"GO_VERSION=1\n", "lacks"},
		"not a pair":   {"GO_VERSION\n", `"GO_VERSION" is not KEY=VALUE`},
		"quoted value": {strings.Replace(good, "=bookworm", `="bookworm"`, 1), "must be a plain word"},
		"empty value":  {strings.Replace(good, "=bookworm", "=", 1), "must be a plain word"},
	} {
		if _, err := pins.Parse("versions.env", tc.text); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", name, err, tc.want)
		}
	}
}
