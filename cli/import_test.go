package cli

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gidedge/gidedge/internal/sharedtest"
	"github.com/gidedge/gidedge/models"
	"github.com/gidedge/gidedge/onnximport"
)

func runCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	root := NewRoot(&stdout, &stderr)
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	return stdout.String() + stderr.String(), err
}

// TestImportCommand imports NanoDet-m's backbone and neck with its BGR
// normalisation, lists its feature maps, and checks the files and the
// report; then the errors a user meets.
func TestImportCommand(t *testing.T) {
	model := sharedtest.Dir(t, "models", "nanodet_m_320.onnx")
	list, err := runCLI(t, "import", "--onnx", model, "--list", "--threads", "1")
	if err != nil {
		t.Fatalf("%v\n%s", err, list)
	}
	for _, want := range []string{"stride", "528", "Concat", "861"} {
		if !strings.Contains(list, want) {
			t.Errorf("--list output lacks %q:\n%s", want, list)
		}
	}
	dir := t.TempDir()
	weights := filepath.Join(dir, "nd.safetensors")
	out, err := runCLI(t, "import", "--onnx", model, "--take", "all", "--outputs", "528,743,846,861,867,873",
		"--bgr", "--mean", "103.53,116.28,123.675", "--std", "57.375,57.12,58.395", "--config", "fcos-student",
		"--name", "nanodet-fcos", "--out", weights, "--threads", "1")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []string{"backbone C3  528", "neck P5", "relative", "batch 2", "nd.json"} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	cfg, err := models.Resolve(filepath.Join(dir, "nd.json"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Name != "nanodet-fcos" || cfg.Family != models.FamilyFCOS || cfg.Pretrained != weights || cfg.FPN.Channels != 96 {
		t.Errorf("config %s %s pretrained %s fpn %+v", cfg.Name, cfg.Family, cfg.Pretrained, cfg.FPN)
	}

	cases := []struct {
		args []string
		want string
	}{
		{[]string{"import", "--out", weights}, "--onnx is required"},
		{[]string{"import", "--onnx", model}, "--out is required"},
		{[]string{"import", "--onnx", model, "--out", weights, "--outputs", "528,743"}, "needs 3 output tensors"},
		{[]string{"import", "--onnx", model, "--out", weights, "--take", "head", "--outputs", "528,743,846"}, `take "head"`},
		{[]string{"import", "--onnx", model, "--out", weights, "--outputs", "743,528,846"}, "outputs go finest first"},
		{[]string{"import", "--onnx", model, "--out", weights, "--outputs", "528,743,nope"}, `no node computes tensor "nope"`},
		{[]string{"import", "--onnx", model, "--out", weights, "--outputs", "528,743,846", "--mean", "1,2"}, "want three"},
		{[]string{"import", "--onnx", model, "--out", weights, "--outputs", "cls_pred_stride_8,cls_pred_stride_16,cls_pred_stride_32"}, "should be [1, C, 40, 40]"},
	}
	for _, tc := range cases {
		out, err := runCLI(t, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want it to say %q\n%s", tc.args[1:], err, tc.want, out)
		}
	}
}

// TestImportRefusesUnsupportedOps imports UltraFace, whose graph has ops
// outside the table: the error names node, op type and opset, and nothing
// is written.
func TestImportRefusesUnsupportedOps(t *testing.T) {
	model := sharedtest.Dir(t, "models", "ultraface_rfb_320.onnx")
	weights := filepath.Join(t.TempDir(), "u.safetensors")
	_, err := runCLI(t, "import", "--onnx", model, "--out", weights, "--outputs", "scores,boxes,scores")
	var ue *onnximport.UnsupportedError
	if !errors.As(err, &ue) || ue.Opset != 9 || ue.OpType == "" || !strings.Contains(err.Error(), "opset 9") {
		t.Fatalf("error %v, want an *onnximport.UnsupportedError naming node, op type and opset 9", err)
	}
	t.Log(err)
	if _, statErr := os.Stat(weights); statErr == nil {
		t.Fatal("a refused import wrote its weights")
	}
}
