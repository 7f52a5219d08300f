package quantize

import (
	"fmt"
	"os"

	onnxruntime "github.com/yalue/onnxruntime_go"

	"github.com/gidedge/gidedge/onnxgraph"
	"github.com/gidedge/gidedge/onnxpb"
	"github.com/gidedge/gidedge/ort"
)

// runner runs one ONNX model in ONNX Runtime on a single float input and
// returns named float outputs. It is not safe for concurrent use.
type runner struct {
	sess    *onnxruntime.DynamicAdvancedSession
	input   string
	shape   onnxruntime.Shape
	outputs []string
}

// runnerOptions configure a runner's session.
type runnerOptions struct {
	Threads int // intra-op threads; 0 lets ONNX Runtime choose
	// OptimizedPath, when set, receives the graph as ONNX Runtime rewrote it
	// (QDQ fusions applied), for reporting which ops run quantized.
	OptimizedPath string
	// NoOptimize runs the graph exactly as written (no fusions): a QDQ model
	// then computes in float with explicit rounding, a reference for what
	// the fused integer kernels should give.
	NoOptimize bool
}

// newRunner creates a session for m, fed at input with shape and returning
// outputs (all graph outputs when nil).
func newRunner(m *onnxpb.ModelProto, input string, shape []int64, outputs []string, opts runnerOptions) (*runner, error) {
	if err := ort.Init(); err != nil {
		return nil, fmt.Errorf("quantize: %w", err)
	}
	data, err := onnxgraph.Marshal(m)
	if err != nil {
		return nil, err
	}
	if outputs == nil {
		for _, o := range m.Graph.Output {
			outputs = append(outputs, o.Name)
		}
	}
	so, err := onnxruntime.NewSessionOptions()
	if err != nil {
		return nil, fmt.Errorf("quantize: session options: %w", err)
	}
	defer so.Destroy()
	if opts.Threads > 0 {
		if err := so.SetIntraOpNumThreads(opts.Threads); err != nil {
			return nil, fmt.Errorf("quantize: session options: %w", err)
		}
	}
	if opts.NoOptimize {
		if err := so.SetGraphOptimizationLevel(onnxruntime.GraphOptimizationLevelDisableAll); err != nil {
			return nil, fmt.Errorf("quantize: session options: %w", err)
		}
	}
	if opts.OptimizedPath != "" {
		if err := so.SetOptimizedModelFilePath(opts.OptimizedPath); err != nil {
			return nil, fmt.Errorf("quantize: session options: %w", err)
		}
	}
	sess, err := onnxruntime.NewDynamicAdvancedSessionWithONNXData(data, []string{input}, outputs, so)
	if err != nil {
		return nil, fmt.Errorf("quantize: create ONNX Runtime session: %w", err)
	}
	return &runner{sess: sess, input: input, shape: onnxruntime.NewShape(shape...), outputs: outputs}, nil
}

// run feeds x and returns every output's values (copied out of ONNX Runtime).
func (r *runner) run(x []float32) ([][]float32, error) {
	res, _, err := r.runShaped(x)
	return res, err
}

// runShaped is run that also returns every output's shape.
func (r *runner) runShaped(x []float32) ([][]float32, [][]int64, error) {
	in, err := onnxruntime.NewTensor(r.shape, x)
	if err != nil {
		return nil, nil, fmt.Errorf("quantize: input %q shape %v: %w", r.input, r.shape, err)
	}
	defer in.Destroy()
	outs := make([]onnxruntime.Value, len(r.outputs))
	defer func() {
		for _, v := range outs {
			if v != nil {
				v.Destroy()
			}
		}
	}()
	if err := r.sess.Run([]onnxruntime.Value{in}, outs); err != nil {
		return nil, nil, fmt.Errorf("quantize: ONNX Runtime run: %w", err)
	}
	res := make([][]float32, len(outs))
	shapes := make([][]int64, len(outs))
	for i, v := range outs {
		t, ok := v.(*onnxruntime.Tensor[float32])
		if !ok {
			return nil, nil, fmt.Errorf("quantize: output %q is not a float32 tensor", r.outputs[i])
		}
		// The wrapper already copied the data into Go memory.
		res[i] = t.GetData()
		shapes[i] = append([]int64(nil), t.GetShape()...)
	}
	return res, shapes, nil
}

func (r *runner) close() {
	if r != nil && r.sess != nil {
		r.sess.Destroy()
		r.sess = nil
	}
}

// optimizedOps creates a session for m with ONNX Runtime's full graph
// optimisation and counts the op types of the graph it actually runs.
func optimizedOps(m *onnxpb.ModelProto, input string, shape []int64, threads int) (map[string]int, error) {
	f, err := os.CreateTemp("", "gidedge-quantize-optimized-*.onnx")
	if err != nil {
		return nil, fmt.Errorf("quantize: %w", err)
	}
	path := f.Name()
	f.Close()
	defer os.Remove(path)
	r, err := newRunner(m, input, shape, nil, runnerOptions{Threads: threads, OptimizedPath: path})
	if err != nil {
		return nil, err
	}
	r.close()
	opt, err := onnxgraph.Load(path)
	if err != nil {
		return nil, err
	}
	counts := map[string]int{}
	for _, n := range opt.Graph.Node {
		counts[n.OpType]++
	}
	return counts, nil
}
