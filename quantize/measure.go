package quantize

import (
	"context"
	"os"
	"sort"

	"github.com/gidedge/gidedge/onnxgraph"
	"github.com/gidedge/gidedge/onnxpb"
)

// measure fills sizes, the int8 model's AP (against labels and against the
// float model's own detections) and, with Report, latency and the ops ONNX
// Runtime runs.
func (j *job) measure(ctx context.Context, q *onnxpb.ModelProto, qPath string) error {
	opts, rep := j.opts, j.rep
	if st, err := os.Stat(opts.Model); err == nil {
		rep.FP32.Path, rep.FP32.SizeBytes = opts.Model, st.Size()
	}
	if j.labels != nil {
		ap, ap50, err := j.labels.averagePrecision(ctx, qPath, opts.Threads)
		if err != nil {
			return err
		}
		rep.INT8.AP, rep.INT8.AP50 = &ap, &ap50
		drop := *rep.FP32.AP - ap
		rep.APDrop = &drop
		j.logf("int8 AP %.2f AP50 %.2f (drop %.2f)", ap, ap50, drop)
	}
	if err := j.agreement(ctx, qPath); err != nil {
		return err
	}
	if !opts.Report {
		return nil
	}
	ops, err := optimizedOps(q, j.prep.Input, j.shape, opts.Threads)
	if err != nil {
		return err
	}
	rep.ORTOps = ops
	j.logf("timing fp32 and int8, %d runs each", opts.BenchRuns)
	lat, err := compareLatency([]*onnxpb.ModelProto{j.model, j.clean, q}, j.prep.Input, j.shape, j.sampleInput(), opts.BenchRuns, opts.Threads)
	if err != nil {
		return err
	}
	rep.FP32.LatencyMs, rep.FP32.LatencyP99Ms, rep.FP32.CPUMs = lat[0].MedianMs, lat[0].P99Ms, lat[0].CPUMs
	rep.FP32Prepared = &ModelStats{SizeBytes: modelBytes(j.clean), LatencyMs: lat[1].MedianMs, LatencyP99Ms: lat[1].P99Ms, CPUMs: lat[1].CPUMs}
	rep.INT8.LatencyMs, rep.INT8.LatencyP99Ms, rep.INT8.CPUMs = lat[2].MedianMs, lat[2].P99Ms, lat[2].CPUMs
	if lat[2].MedianMs > 0 {
		rep.Speedup = lat[0].MedianMs / lat[2].MedianMs
	}
	if lat[2].CPUMs > 0 {
		rep.SpeedupClean = lat[1].CPUMs / lat[2].CPUMs
	}
	if rep.SpeedupClean > 0 && rep.SpeedupClean < 1 {
		rep.Notes = append(rep.Notes, "the int8 model is slower than the cleaned-up float graph on this CPU: serve the float model, or check which ops ONNX Runtime leaves unfused (ONNX Runtime runs)")
	}
	return nil
}

// sampleInput is the first eval input, or zeros.
func (j *job) sampleInput() []float32 {
	if len(j.inputs) > 0 {
		return j.inputs[0]
	}
	return make([]float32, j.shape[1]*j.shape[2]*j.shape[3])
}

// compareLatency times several models on the same input, interleaving
// blocks of runs so machine load drifts hit all of them alike.
func compareLatency(models []*onnxpb.ModelProto, input string, shape []int64, x []float32, runs, threads int) ([]Latency, error) {
	runners := make([]*runner, len(models))
	defer func() {
		for _, r := range runners {
			r.close()
		}
	}()
	for i, m := range models {
		r, err := newRunner(m, input, shape, nil, runnerOptions{Threads: threads})
		if err != nil {
			return nil, err
		}
		runners[i] = r
	}
	const block = 10
	times := make([][]float64, len(models))
	cpu := make([]float64, len(models))
	for i, r := range runners {
		if _, err := measureLatency(r, x, 5, 1); err != nil {
			return nil, err
		}
		times[i] = make([]float64, 0, runs)
	}
	for done := 0; done < runs; done += block {
		n := min(block, runs-done)
		for i, r := range runners {
			l, c, err := measureLatencyRaw(r, x, n)
			if err != nil {
				return nil, err
			}
			times[i] = append(times[i], l...)
			cpu[i] += c
		}
	}
	out := make([]Latency, len(models))
	for i, t := range times {
		sort.Float64s(t)
		sum := 0.0
		for _, v := range t {
			sum += v
		}
		out[i] = Latency{MedianMs: percentileOf(t, 0.5), P99Ms: percentileOf(t, 0.99), MeanMs: sum / float64(len(t)),
			CPUMs: cpu[i] / float64(len(t)), Runs: len(t)}
	}
	return out, nil
}

// modelBytes is the serialized size of a model.
func modelBytes(m *onnxpb.ModelProto) int64 {
	data, err := onnxgraph.Marshal(m)
	if err != nil {
		return 0
	}
	return int64(len(data))
}
