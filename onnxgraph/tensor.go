package onnxgraph

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/gidedge/gidedge/onnxpb"
)

// Element types used by the helpers, as TensorProto data_type values.
const (
	Float32 = int32(onnxpb.TensorProto_FLOAT)
	Uint8   = int32(onnxpb.TensorProto_UINT8)
	Int8    = int32(onnxpb.TensorProto_INT8)
	Int32   = int32(onnxpb.TensorProto_INT32)
	Int64   = int32(onnxpb.TensorProto_INT64)
)

// DataTypeName returns the ONNX name of a data_type value ("FLOAT", "INT64").
func DataTypeName(dt int32) string {
	if s, ok := onnxpb.TensorProto_DataType_name[dt]; ok {
		return s
	}
	return fmt.Sprintf("data_type(%d)", dt)
}

// NumElements is the product of dims (1 for a scalar), or -1 when a
// dimension is negative or the product overflows.
func NumElements(dims []int64) int64 {
	n := int64(1)
	for _, d := range dims {
		if d < 0 || (d > 0 && n > math.MaxInt64/8/d) {
			return -1
		}
		n *= d
	}
	return n
}

// Float32s returns a FLOAT tensor's values in row-major order.
func Float32s(t *onnxpb.TensorProto) ([]float32, error) {
	if t.DataType != Float32 {
		return nil, fmt.Errorf("onnxgraph: tensor %q has data type %s, want FLOAT", t.Name, DataTypeName(t.DataType))
	}
	if err := checkInline(t); err != nil {
		return nil, err
	}
	n := NumElements(t.Dims)
	if len(t.RawData) > 0 {
		if int64(len(t.RawData)) != 4*n {
			return nil, fmt.Errorf("onnxgraph: tensor %q: raw_data holds %d bytes, want %d for dims %v", t.Name, len(t.RawData), 4*n, t.Dims)
		}
		out := make([]float32, n)
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(t.RawData[4*i:]))
		}
		return out, nil
	}
	if int64(len(t.FloatData)) != n {
		return nil, fmt.Errorf("onnxgraph: tensor %q: float_data holds %d values, want %d for dims %v", t.Name, len(t.FloatData), n, t.Dims)
	}
	return append([]float32(nil), t.FloatData...), nil
}

// Int64s returns an integer tensor's values (INT64, INT32, INT8, UINT8) widened to int64.
func Int64s(t *onnxpb.TensorProto) ([]int64, error) {
	if err := checkInline(t); err != nil {
		return nil, err
	}
	n := NumElements(t.Dims)
	var size int64
	switch t.DataType {
	case Int64:
		size = 8
	case Int32:
		size = 4
	case Int8, Uint8:
		size = 1
	default:
		return nil, fmt.Errorf("onnxgraph: tensor %q has data type %s, want an integer type", t.Name, DataTypeName(t.DataType))
	}
	if len(t.RawData) > 0 {
		if int64(len(t.RawData)) != size*n {
			return nil, fmt.Errorf("onnxgraph: tensor %q: raw_data holds %d bytes, want %d for dims %v", t.Name, len(t.RawData), size*n, t.Dims)
		}
		out := make([]int64, n)
		for i := range out {
			switch t.DataType {
			case Int64:
				out[i] = int64(binary.LittleEndian.Uint64(t.RawData[8*i:]))
			case Int32:
				out[i] = int64(int32(binary.LittleEndian.Uint32(t.RawData[4*i:])))
			case Int8:
				out[i] = int64(int8(t.RawData[i]))
			case Uint8:
				out[i] = int64(t.RawData[i])
			}
		}
		return out, nil
	}
	out := make([]int64, 0, min(n, int64(len(t.Int64Data)+len(t.Int32Data))))
	switch t.DataType {
	case Int64:
		if int64(len(t.Int64Data)) != n {
			return nil, fmt.Errorf("onnxgraph: tensor %q: int64_data holds %d values, want %d", t.Name, len(t.Int64Data), n)
		}
		out = append(out, t.Int64Data...)
	default:
		if int64(len(t.Int32Data)) != n {
			return nil, fmt.Errorf("onnxgraph: tensor %q: int32_data holds %d values, want %d", t.Name, len(t.Int32Data), n)
		}
		for _, v := range t.Int32Data {
			out = append(out, int64(v))
		}
	}
	return out, nil
}

func checkInline(t *onnxpb.TensorProto) error {
	if t.DataLocation == onnxpb.TensorProto_EXTERNAL {
		return fmt.Errorf("onnxgraph: tensor %q keeps its data in an external file; load the model with Load to read it", t.Name)
	}
	if NumElements(t.Dims) < 0 {
		return fmt.Errorf("onnxgraph: tensor %q has dims %v, want non-negative dimensions of a sane total size", t.Name, t.Dims)
	}
	return nil
}

// Float32Tensor builds a FLOAT tensor stored as raw_data.
func Float32Tensor(name string, dims []int64, values []float32) *onnxpb.TensorProto {
	raw := make([]byte, 4*len(values))
	for i, v := range values {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(v))
	}
	return &onnxpb.TensorProto{Name: name, Dims: append([]int64(nil), dims...), DataType: Float32, RawData: raw}
}

// Int64Tensor builds an INT64 tensor stored as raw_data.
func Int64Tensor(name string, dims []int64, values []int64) *onnxpb.TensorProto {
	raw := make([]byte, 8*len(values))
	for i, v := range values {
		binary.LittleEndian.PutUint64(raw[8*i:], uint64(v))
	}
	return &onnxpb.TensorProto{Name: name, Dims: append([]int64(nil), dims...), DataType: Int64, RawData: raw}
}

// Int32Tensor builds an INT32 tensor stored as raw_data.
func Int32Tensor(name string, dims []int64, values []int32) *onnxpb.TensorProto {
	raw := make([]byte, 4*len(values))
	for i, v := range values {
		binary.LittleEndian.PutUint32(raw[4*i:], uint32(v))
	}
	return &onnxpb.TensorProto{Name: name, Dims: append([]int64(nil), dims...), DataType: Int32, RawData: raw}
}

// Int8Tensor builds an INT8 tensor stored as raw_data.
func Int8Tensor(name string, dims []int64, values []int8) *onnxpb.TensorProto {
	raw := make([]byte, len(values))
	for i, v := range values {
		raw[i] = byte(v)
	}
	return &onnxpb.TensorProto{Name: name, Dims: append([]int64(nil), dims...), DataType: Int8, RawData: raw}
}

// Uint8Tensor builds a UINT8 tensor stored as raw_data.
func Uint8Tensor(name string, dims []int64, values []uint8) *onnxpb.TensorProto {
	return &onnxpb.TensorProto{Name: name, Dims: append([]int64(nil), dims...), DataType: Uint8, RawData: append([]byte(nil), values...)}
}
