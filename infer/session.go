package infer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	onnxruntime "github.com/yalue/onnxruntime_go"

	"github.com/gidedge/gidedge/ort"
)

// Execution providers a session can ask ONNX Runtime for.
const (
	ProviderCPU      = "cpu"
	ProviderCUDA     = "cuda"
	ProviderTensorRT = "tensorrt"
)

// ErrProviderUnavailable reports an execution provider the loaded ONNX
// Runtime library was not built with (the npm CPU build has only "cpu").
var ErrProviderUnavailable = errors.New("infer: execution provider unavailable")

// SessionOptions configures one ONNX Runtime session.
type SessionOptions struct {
	Provider       string // "cpu" (default), "cuda" or "tensorrt"
	DeviceID       int    // GPU index for cuda and tensorrt
	IntraOpThreads int    // 0 lets ONNX Runtime choose
	// TensorRTCacheDir, when set, stores built TensorRT engines so later starts
	// skip the minutes-long engine build on a Jetson.
	TensorRTCacheDir string
	TensorRTFP16     bool
}

// TensorInfo describes a model input or output. Unknown dimensions are -1.
type TensorInfo struct {
	Name     string  `json:"name"`
	Datatype string  `json:"datatype"` // KServe v2 names: FP32, INT64, UINT8, ...
	Shape    []int64 `json:"shape"`
}

// Signature is what a model file declares: its tensors and metadata_props.
type Signature struct {
	Path     string
	Inputs   []TensorInfo
	Outputs  []TensorInfo
	Metadata map[string]string
}

// Output returns the named output and whether it exists.
func (s Signature) Output(name string) (TensorInfo, bool) {
	for _, o := range s.Outputs {
		if o.Name == name {
			return o, true
		}
	}
	return TensorInfo{}, false
}

// model is a loaded ONNX file: its bytes and signature.
type model struct {
	data []byte
	sig  Signature
}

// loadModel reads an ONNX file and its signature. ort.Init must have run.
func loadModel(path string) (*model, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("infer: read model: %w", err)
	}
	ins, outs, err := onnxruntime.GetInputOutputInfoWithONNXData(data)
	if err != nil {
		return nil, fmt.Errorf("infer: model %s: read inputs and outputs: %w", path, err)
	}
	sig := Signature{Path: path, Metadata: map[string]string{}}
	for _, in := range ins {
		sig.Inputs = append(sig.Inputs, tensorInfo(in))
	}
	for _, out := range outs {
		sig.Outputs = append(sig.Outputs, tensorInfo(out))
	}
	meta, err := onnxruntime.GetModelMetadataWithONNXData(data)
	if err != nil {
		return nil, fmt.Errorf("infer: model %s: read metadata: %w", path, err)
	}
	defer meta.Destroy()
	keys, err := meta.GetCustomMetadataMapKeys()
	if err != nil {
		return nil, fmt.Errorf("infer: model %s: read metadata keys: %w", path, err)
	}
	for _, k := range keys {
		v, _, err := meta.LookupCustomMetadataMap(k)
		if err != nil {
			return nil, fmt.Errorf("infer: model %s: read metadata %q: %w", path, k, err)
		}
		sig.Metadata[k] = v
	}
	return &model{data: data, sig: sig}, nil
}

func tensorInfo(in onnxruntime.InputOutputInfo) TensorInfo {
	return TensorInfo{Name: in.Name, Datatype: datatypeName(in.DataType), Shape: append([]int64(nil), in.Dimensions...)}
}

// datatypeName maps ONNX element types to KServe v2 datatype names.
func datatypeName(t onnxruntime.TensorElementDataType) string {
	switch t {
	case onnxruntime.TensorElementDataTypeFloat:
		return "FP32"
	case onnxruntime.TensorElementDataTypeDouble:
		return "FP64"
	case onnxruntime.TensorElementDataTypeFloat16:
		return "FP16"
	case onnxruntime.TensorElementDataTypeUint8:
		return "UINT8"
	case onnxruntime.TensorElementDataTypeInt8:
		return "INT8"
	case onnxruntime.TensorElementDataTypeInt16:
		return "INT16"
	case onnxruntime.TensorElementDataTypeInt32:
		return "INT32"
	case onnxruntime.TensorElementDataTypeInt64:
		return "INT64"
	case onnxruntime.TensorElementDataTypeBool:
		return "BOOL"
	case onnxruntime.TensorElementDataTypeString:
		return "BYTES"
	}
	return strings.TrimPrefix(t.String(), "ONNX_TENSOR_ELEMENT_DATA_TYPE_")
}

// session is one ONNX Runtime session with its run options; it is used by
// one goroutine at a time (the Detector's pool guarantees that).
type session struct {
	s       *onnxruntime.DynamicAdvancedSession
	runOpts *onnxruntime.RunOptions
}

func newSession(m *model, opts SessionOptions) (*session, error) {
	so, err := onnxruntime.NewSessionOptions()
	if err != nil {
		return nil, fmt.Errorf("infer: session options: %w", err)
	}
	defer so.Destroy()
	if opts.IntraOpThreads > 0 {
		if err := so.SetIntraOpNumThreads(opts.IntraOpThreads); err != nil {
			return nil, fmt.Errorf("infer: intra-op threads %d: %w", opts.IntraOpThreads, err)
		}
	}
	if err := appendProvider(so, opts); err != nil {
		return nil, err
	}
	var inNames, outNames []string
	for _, in := range m.sig.Inputs {
		inNames = append(inNames, in.Name)
	}
	for _, out := range m.sig.Outputs {
		outNames = append(outNames, out.Name)
	}
	s, err := onnxruntime.NewDynamicAdvancedSessionWithONNXData(m.data, inNames, outNames, so)
	if err != nil {
		return nil, fmt.Errorf("infer: model %s: create session: %w", m.sig.Path, err)
	}
	ro, err := onnxruntime.NewRunOptions()
	if err != nil {
		s.Destroy()
		return nil, fmt.Errorf("infer: run options: %w", err)
	}
	return &session{s: s, runOpts: ro}, nil
}

func appendProvider(so *onnxruntime.SessionOptions, opts SessionOptions) error {
	unavailable := func(name string, err error) error {
		return fmt.Errorf("%w: %s: ONNX Runtime %s at %s could not add it (%v): the library was built without it, or libonnxruntime_providers_%s.so or the CUDA libraries it loads are missing beside it or on LD_LIBRARY_PATH; the library scripts/setup.sh installs is CPU-only: on Jetson use the image's build (see docs/jetson.md) or --provider cpu",
			ErrProviderUnavailable, name, ort.Version(), ort.LibraryPath(), err, name)
	}
	device := fmt.Sprint(opts.DeviceID)
	switch opts.Provider {
	case "", ProviderCPU:
		return nil
	case ProviderCUDA:
		return appendCUDA(so, device, unavailable)
	case ProviderTensorRT:
		trt, err := onnxruntime.NewTensorRTProviderOptions()
		if err != nil {
			return unavailable(ProviderTensorRT, err)
		}
		defer trt.Destroy()
		settings := map[string]string{"device_id": device}
		if opts.TensorRTCacheDir != "" {
			settings["trt_engine_cache_enable"] = "1"
			settings["trt_engine_cache_path"] = opts.TensorRTCacheDir
		}
		if opts.TensorRTFP16 {
			settings["trt_fp16_enable"] = "1"
		}
		if err := trt.Update(settings); err != nil {
			return unavailable(ProviderTensorRT, err)
		}
		if err := so.AppendExecutionProviderTensorRT(trt); err != nil {
			return unavailable(ProviderTensorRT, err)
		}
		// Nodes TensorRT cannot take fall back to CUDA rather than the CPU.
		return appendCUDA(so, device, unavailable)
	}
	return fmt.Errorf("infer: provider %q, want %q, %q or %q", opts.Provider, ProviderCPU, ProviderCUDA, ProviderTensorRT)
}

func appendCUDA(so *onnxruntime.SessionOptions, device string, unavailable func(string, error) error) error {
	cuda, err := onnxruntime.NewCUDAProviderOptions()
	if err != nil {
		return unavailable(ProviderCUDA, err)
	}
	defer cuda.Destroy()
	if err := cuda.Update(map[string]string{"device_id": device}); err != nil {
		return unavailable(ProviderCUDA, err)
	}
	if err := so.AppendExecutionProviderCUDA(cuda); err != nil {
		return unavailable(ProviderCUDA, err)
	}
	return nil
}

// run executes the session; cancelling ctx terminates a run in progress.
func (s *session) run(ctx context.Context, inputs, outputs []onnxruntime.Value) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	terminated := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		_ = s.runOpts.Terminate()
		close(terminated)
	})
	err := s.s.RunWithOptions(inputs, outputs, s.runOpts)
	if !stop() {
		// The terminate flag is (or is about to be) set; clear it once it is,
		// so the next run on this session proceeds.
		<-terminated
		_ = s.runOpts.UnsetTerminate()
		if ctxErr := ctx.Err(); ctxErr != nil {
			if err == nil {
				return nil
			}
			return fmt.Errorf("infer: run cancelled: %w", ctxErr)
		}
	}
	return err
}

func (s *session) destroy() {
	if s.runOpts != nil {
		_ = s.runOpts.Destroy()
	}
	if s.s != nil {
		_ = s.s.Destroy()
	}
}

// AppendCUDA adds ONNX Runtime's CUDA execution provider on GPU device to
// so (for callers outside this package: distillation's ONNX teachers).
// When the loaded library lacks the provider the error wraps
// ErrProviderUnavailable and names the library.
func AppendCUDA(so *onnxruntime.SessionOptions, device int) error {
	return appendCUDA(so, fmt.Sprint(device), func(name string, err error) error {
		return fmt.Errorf("%w: %s: ONNX Runtime %s at %s was built without it (%v)", ErrProviderUnavailable, name, ort.Version(), ort.LibraryPath(), err)
	})
}
