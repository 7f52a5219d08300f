package distill

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	onnxruntime "github.com/yalue/onnxruntime_go"

	"github.com/gidedge/gidedge/engine"
	"github.com/gidedge/gidedge/engine/cuda/driver"
	"github.com/gidedge/gidedge/infer"
	"github.com/gidedge/gidedge/models"
	"github.com/gidedge/gidedge/ort"
)

// MetaConfig is the ONNX metadata_props key under which `gidedge export`
// stores the models.Config JSON of the exported detector.
const MetaConfig = "gidedge.config"

// OutputMap says where an ONNX teacher keeps what distillation needs. A
// model written by `gidedge export --with-features` needs none: its config
// is in the metadata and its tensors have the default names. A teacher
// trained elsewhere needs a mapping file (JSON with these fields) whose
// config describes its pyramid and head in gidedge terms.
type OutputMap struct {
	// Config is an embedded config name or a config file (relative paths
	// are taken from the mapping file's folder); empty: the model's
	// "gidedge.config" metadata. A config with num_classes 0 takes the
	// student's class count.
	Config string `json:"config,omitempty"`
	// Input is the image input [N, 3, H, W] (default "images").
	Input string `json:"input,omitempty"`
	// Per pyramid level, finest first (defaults feature_<i>, cls_logits_<i>,
	// box_reg_<i>, centerness_<i>): FPN features [N, C, H, W], class logits
	// [N, A·K, H, W], box regression [N, A·4, H, W], FCOS centerness logits
	// [N, 1, H, W].
	Features   []string `json:"features,omitempty"`
	ClsLogits  []string `json:"cls_logits,omitempty"`
	BoxRegs    []string `json:"box_regs,omitempty"`
	Centerness []string `json:"centerness,omitempty"`
}

// ReadOutputMap reads a mapping file; unknown fields are errors.
func ReadOutputMap(path string) (OutputMap, error) {
	var m OutputMap
	data, err := os.ReadFile(path)
	if err != nil {
		return m, fmt.Errorf("distill: teacher mapping: %w", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return m, fmt.Errorf("distill: teacher mapping %s: %w", path, err)
	}
	if m.Config != "" && !slices.Contains(models.Names(), m.Config) && !filepath.IsAbs(m.Config) {
		m.Config = filepath.Join(filepath.Dir(path), m.Config)
	}
	return m, nil
}

// withDefaults fills the default tensor names for the config's levels.
func (m OutputMap) withDefaults(cfg models.Config) OutputMap {
	n := len(cfg.FPN.Levels)
	names := func(given []string, prefix string) []string {
		if len(given) > 0 {
			return given
		}
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("%s_%d", prefix, i)
		}
		return out
	}
	if m.Input == "" {
		m.Input = "images"
	}
	m.Features = names(m.Features, "feature")
	m.ClsLogits = names(m.ClsLogits, "cls_logits")
	m.BoxRegs = names(m.BoxRegs, "box_reg")
	if cfg.Family == models.FamilyFCOS {
		m.Centerness = names(m.Centerness, "centerness")
	} else {
		m.Centerness = nil
	}
	return m
}

// onnxTeacher runs an ONNX model through ONNX Runtime.
type onnxTeacher struct {
	path    string
	cfg     models.Config
	names   OutputMap
	outputs []string // Features, ClsLogits, BoxRegs, Centerness, concatenated
	batch   int      // static batch size of the input, 0 when dynamic
	// height and width of the input when fixed, 0 when dynamic.
	height, width int
	session       *onnxruntime.DynamicAdvancedSession
}

// OpenONNXTeacher loads an ONNX teacher. mapping is an optional OutputMap
// file ("" for a gidedge export).
func OpenONNXTeacher(path, mapping string) (Teacher, error) {
	if err := ort.Init(); err != nil {
		return nil, fmt.Errorf("distill: teacher %s: %w", path, err)
	}
	var m OutputMap
	if mapping != "" {
		var err error
		if m, err = ReadOutputMap(mapping); err != nil {
			return nil, err
		}
	}
	ins, outs, err := onnxruntime.GetInputOutputInfo(path)
	if err != nil {
		return nil, fmt.Errorf("distill: teacher %s: read inputs and outputs: %w", path, err)
	}
	meta, err := readMetadata(path)
	if err != nil {
		return nil, err
	}
	var cfg models.Config
	switch {
	case m.Config != "":
		if cfg, err = models.Resolve(m.Config); err != nil {
			return nil, fmt.Errorf("distill: teacher mapping %s: config: %w", mapping, err)
		}
	case meta[MetaConfig] != "":
		if cfg, err = models.ParseConfig([]byte(meta[MetaConfig]), "teacher "+path+" metadata \""+MetaConfig+"\""); err != nil {
			return nil, fmt.Errorf("distill: %w", err)
		}
	default:
		return nil, fmt.Errorf("distill: teacher %s has no %q metadata (not a `gidedge export --with-features` model?): give a mapping file whose \"config\" describes its pyramid and head", path, MetaConfig)
	}
	if info, ok, err := infer.ReadModelInfo(meta); err == nil && ok && len(cfg.ClassNames) == 0 && len(info.ClassNames) == cfg.NumClasses {
		cfg.ClassNames = info.ClassNames
	}
	m = m.withDefaults(cfg)
	n := len(cfg.FPN.Levels)
	for _, list := range []struct {
		what  string
		names []string
	}{{"features", m.Features}, {"cls_logits", m.ClsLogits}, {"box_regs", m.BoxRegs}} {
		if len(list.names) != n {
			return nil, fmt.Errorf("distill: teacher %s: %d %s outputs named, its config %q has %d pyramid levels", path, len(list.names), list.what, cfg.Name, n)
		}
	}
	if cfg.Family == models.FamilyFCOS && len(m.Centerness) != n {
		return nil, fmt.Errorf("distill: teacher %s: %d centerness outputs named, its FCOS config %q has %d pyramid levels", path, len(m.Centerness), cfg.Name, n)
	}
	t := &onnxTeacher{path: path, cfg: cfg, names: m}
	t.outputs = slices.Concat(m.Features, m.ClsLogits, m.BoxRegs, m.Centerness)
	available := map[string]bool{}
	var listed []string
	for _, o := range outs {
		available[o.Name] = true
		listed = append(listed, fmt.Sprintf("%s %v", o.Name, o.Dimensions))
	}
	for _, name := range t.outputs {
		if !available[name] {
			return nil, fmt.Errorf("distill: teacher %s has no output %q (outputs: %s); export it with --with-features or name its tensors in a mapping file", path, name, strings.Join(listed, ", "))
		}
	}
	inputOK := false
	for _, in := range ins {
		if in.Name == m.Input {
			inputOK = true
			if len(in.Dimensions) != 4 {
				return nil, fmt.Errorf("distill: teacher %s input %q has shape %v, want [N, 3, H, W]", path, in.Name, in.Dimensions)
			}
			if in.Dimensions[0] > 0 {
				t.batch = int(in.Dimensions[0])
			}
			t.height, t.width = int(max(in.Dimensions[2], 0)), int(max(in.Dimensions[3], 0))
		}
	}
	if !inputOK || len(ins) != 1 {
		var names []string
		for _, in := range ins {
			names = append(names, fmt.Sprintf("%s %v", in.Name, in.Dimensions))
		}
		return nil, fmt.Errorf("distill: teacher %s: want exactly one input named %q, the model has %s", path, m.Input, strings.Join(names, ", "))
	}
	so, err := teacherSessionOptions(path)
	if err != nil {
		return nil, err
	}
	if so != nil {
		defer so.Destroy()
	}
	t.session, err = onnxruntime.NewDynamicAdvancedSession(path, []string{m.Input}, t.outputs, so)
	if err != nil {
		return nil, fmt.Errorf("distill: teacher %s: create session: %w", path, err)
	}
	return t, nil
}

// gpuDevice is a device on an NVIDIA GPU (the cuda backend).
type gpuDevice interface{ Device() driver.DeviceInfo }

// teacherSessionOptions puts an ONNX teacher on the engine's GPU when the
// engine runs on one (ONNX Runtime's CUDA execution provider, same GPU);
// nil options (ONNX Runtime's CPU) otherwise.
func teacherSessionOptions(path string) (*onnxruntime.SessionOptions, error) {
	gpu, ok := engine.Device().(gpuDevice)
	if !ok {
		return nil, nil
	}
	so, err := onnxruntime.NewSessionOptions()
	if err != nil {
		return nil, fmt.Errorf("distill: teacher %s: session options: %w", path, err)
	}
	if err := infer.AppendCUDA(so, gpu.Device().Ordinal); err != nil {
		so.Destroy()
		return nil, fmt.Errorf("distill: teacher %s: with --device cuda an ONNX teacher runs on ONNX Runtime's CUDA execution provider: %w; "+
			"install ONNX Runtime's GPU release for your CUDA version (onnxruntime-linux-x64-gpu-1.30.0 from github.com/microsoft/onnxruntime/releases: lib/libonnxruntime.so.1 with libonnxruntime_providers_cuda.so beside it) "+
			"and set GIDEDGE_ORT_LIB to that libonnxruntime.so.1, or give the teacher's checkpoint (.safetensors), which runs in gidedge's engine on the GPU", path, err)
	}
	return so, nil
}

func readMetadata(path string) (map[string]string, error) {
	md, err := onnxruntime.GetModelMetadata(path)
	if err != nil {
		return nil, fmt.Errorf("distill: teacher %s: read metadata: %w", path, err)
	}
	defer md.Destroy()
	keys, err := md.GetCustomMetadataMapKeys()
	if err != nil {
		return nil, fmt.Errorf("distill: teacher %s: read metadata keys: %w", path, err)
	}
	out := map[string]string{}
	for _, k := range keys {
		v, _, err := md.LookupCustomMetadataMap(k)
		if err != nil {
			return nil, fmt.Errorf("distill: teacher %s: read metadata %q: %w", path, k, err)
		}
		out[k] = v
	}
	return out, nil
}

func (t *onnxTeacher) Config() models.Config { return t.cfg }

func (t *onnxTeacher) Describe() string {
	return fmt.Sprintf("ONNX %s (%s, %d classes)", t.path, t.cfg.Name, t.cfg.NumClasses)
}

func (t *onnxTeacher) Close() error {
	if t.session == nil {
		return nil
	}
	err := t.session.Destroy()
	t.session = nil
	return err
}

// Forward runs the model on x in chunks of its static batch size (the whole
// batch when the batch dimension is dynamic) and joins the results.
func (t *onnxTeacher) Forward(ctx context.Context, x *engine.Tensor) (*models.Outputs, error) {
	if x.Rank() != 4 || x.Dim(1) != 3 {
		return nil, fmt.Errorf("distill: teacher %s: input %v, want [N, 3, H, W]", t.path, x.Shape())
	}
	n, h, w := x.Dim(0), x.Dim(2), x.Dim(3)
	if (t.height > 0 && t.height != h) || (t.width > 0 && t.width != w) {
		return nil, fmt.Errorf("%w: teacher %s takes %dx%d inputs, the batch is %dx%d: train the student at --img-size %d or export the teacher at the student's size", ErrLayout, t.path, t.width, t.height, w, h, t.width)
	}
	chunk := n
	if t.batch > 0 {
		chunk = t.batch
		if n%chunk != 0 {
			return nil, fmt.Errorf("distill: teacher %s has a fixed batch size %d, the batch has %d images", t.path, chunk, n)
		}
	}
	per := 3 * h * w
	images := x.ToHost() // ONNX Runtime reads host memory
	results := make([][]*engine.Tensor, len(t.outputs))
	for start := 0; start < n; start += chunk {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		parts, err := t.run(images[start*per:(start+chunk)*per], chunk, h, w)
		if err != nil {
			return nil, err
		}
		for i, p := range parts {
			results[i] = append(results[i], p)
		}
	}
	joined := make([]*engine.Tensor, len(results))
	for i, r := range results {
		if len(r) == 1 {
			joined[i] = r[0]
			continue
		}
		engine.NoGrad(func() { joined[i] = engine.Concat(0, r...) })
	}
	levels := len(t.names.Features)
	o := &models.Outputs{InputH: h, InputW: w}
	o.Features = joined[:levels]
	o.ClsLogits = joined[levels : 2*levels]
	o.BoxRegs = joined[2*levels : 3*levels]
	if len(t.names.Centerness) > 0 {
		o.Centerness = joined[3*levels:]
	}
	return o, nil
}

func (t *onnxTeacher) run(data []float32, n, h, w int) ([]*engine.Tensor, error) {
	in, err := onnxruntime.NewTensor(onnxruntime.NewShape(int64(n), 3, int64(h), int64(w)), data)
	if err != nil {
		return nil, fmt.Errorf("distill: teacher %s: input tensor: %w", t.path, err)
	}
	defer in.Destroy()
	outs := make([]onnxruntime.Value, len(t.outputs))
	defer func() {
		for _, v := range outs {
			if v != nil {
				_ = v.Destroy()
			}
		}
	}()
	if err := t.session.Run([]onnxruntime.Value{in}, outs); err != nil {
		return nil, fmt.Errorf("distill: teacher %s: run on %dx3x%dx%d: %w", t.path, n, h, w, err)
	}
	res := make([]*engine.Tensor, len(outs))
	for i, v := range outs {
		f, ok := v.(*onnxruntime.Tensor[float32])
		if !ok {
			return nil, fmt.Errorf("distill: teacher %s output %q is %T, want float32", t.path, t.outputs[i], v)
		}
		shape := f.GetShape()
		if len(shape) != 4 {
			return nil, fmt.Errorf("distill: teacher %s output %q has shape %v, want [N, C, H, W]", t.path, t.outputs[i], shape)
		}
		dims := make([]int, 4)
		for j, d := range shape {
			dims[j] = int(d)
		}
		res[i] = engine.FromHost(f.GetData(), dims...)
	}
	return res, nil
}
