package onnxgraph

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"google.golang.org/protobuf/proto"

	"github.com/gidedge/gidedge/internal/atomicfile"
	"github.com/gidedge/gidedge/onnxpb"
)

// ErrNotONNX reports a file that does not decode as an ONNX model with a graph.
var ErrNotONNX = errors.New("onnxgraph: not an ONNX model")

// Load reads an ONNX model file. Initializers stored as external data next to
// the file are read into raw_data so the returned model is self-contained.
func Load(path string) (*onnxpb.ModelProto, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("onnxgraph: read model: %w", err)
	}
	m, err := Decode(data, path)
	if err != nil {
		return nil, err
	}
	if err := loadExternalData(m.Graph, filepath.Dir(path), path); err != nil {
		return nil, err
	}
	return m, nil
}

// Decode parses serialized ONNX bytes; name is used in error messages only.
func Decode(data []byte, name string) (*onnxpb.ModelProto, error) {
	if len(data) == 0 {
		return nil, fmt.Errorf("%w: %s is empty", ErrNotONNX, name)
	}
	m := &onnxpb.ModelProto{}
	if err := proto.Unmarshal(data, m); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrNotONNX, name, err)
	}
	if m.Graph == nil || len(m.Graph.Node) == 0 {
		return nil, fmt.Errorf("%w: %s has no graph nodes", ErrNotONNX, name)
	}
	if m.IrVersion <= 0 {
		return nil, fmt.Errorf("%w: %s has no ir_version", ErrNotONNX, name)
	}
	return m, nil
}

// Marshal serializes a model deterministically (same model, same bytes).
func Marshal(m *onnxpb.ModelProto) ([]byte, error) {
	data, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("onnxgraph: marshal model: %w", err)
	}
	return data, nil
}

// Save writes a model atomically: a temporary file in the same directory is
// written, synced and renamed over path, so a reader never sees a partial
// model and a failed save leaves nothing behind.
func Save(path string, m *onnxpb.ModelProto) error {
	data, err := Marshal(m)
	if err != nil {
		return err
	}
	return WriteFileAtomic(path, data)
}

// WriteFileAtomic writes data to path through a synced temporary file in the
// same directory and a rename; on failure the temporary file is removed.
func WriteFileAtomic(path string, data []byte) error {
	if err := atomicfile.WriteFile(path, data); err != nil {
		return fmt.Errorf("onnxgraph: %w", err)
	}
	return nil
}

// Clone returns a deep copy of a model.
func Clone(m *onnxpb.ModelProto) *onnxpb.ModelProto {
	return proto.Clone(m).(*onnxpb.ModelProto)
}

// Opset returns the model's default-domain ("" or "ai.onnx") opset version,
// or 0 when the model imports none.
func Opset(m *onnxpb.ModelProto) int64 {
	for _, o := range m.OpsetImport {
		if o.Domain == "" || o.Domain == "ai.onnx" {
			return o.Version
		}
	}
	return 0
}

// SetOpset sets the default-domain opset version, adding the import if absent.
func SetOpset(m *onnxpb.ModelProto, version int64) {
	for _, o := range m.OpsetImport {
		if o.Domain == "" || o.Domain == "ai.onnx" {
			o.Version = version
			return
		}
	}
	m.OpsetImport = append(m.OpsetImport, &onnxpb.OperatorSetIdProto{Domain: "", Version: version})
}

// Metadata returns the model's metadata_props as a map.
func Metadata(m *onnxpb.ModelProto) map[string]string {
	out := make(map[string]string, len(m.MetadataProps))
	for _, p := range m.MetadataProps {
		out[p.Key] = p.Value
	}
	return out
}

// SetMetadata sets one metadata_props entry, replacing an existing key.
func SetMetadata(m *onnxpb.ModelProto, key, value string) {
	for _, p := range m.MetadataProps {
		if p.Key == key {
			p.Value = value
			return
		}
	}
	m.MetadataProps = append(m.MetadataProps, &onnxpb.StringStringEntryProto{Key: key, Value: value})
}

// loadExternalData reads every initializer stored outside the model file.
func loadExternalData(g *onnxpb.GraphProto, dir, modelPath string) error {
	for _, t := range g.Initializer {
		if t.DataLocation != onnxpb.TensorProto_EXTERNAL {
			continue
		}
		var location string
		var offset, length int64 = 0, -1
		for _, kv := range t.ExternalData {
			var err error
			switch kv.Key {
			case "location":
				location = kv.Value
			case "offset":
				_, err = fmt.Sscan(kv.Value, &offset)
			case "length":
				_, err = fmt.Sscan(kv.Value, &length)
			}
			if err != nil {
				return fmt.Errorf("onnxgraph: %s: initializer %q: external_data %s=%q: %w", modelPath, t.Name, kv.Key, kv.Value, err)
			}
		}
		if location == "" || filepath.IsAbs(location) || !filepath.IsLocal(location) {
			return fmt.Errorf("onnxgraph: %s: initializer %q: external data location %q, want a relative path inside the model's folder", modelPath, t.Name, location)
		}
		raw, err := os.ReadFile(filepath.Join(dir, location))
		if err != nil {
			return fmt.Errorf("onnxgraph: %s: initializer %q: %w", modelPath, t.Name, err)
		}
		if offset < 0 || offset > int64(len(raw)) {
			return fmt.Errorf("onnxgraph: %s: initializer %q: offset %d outside %s (%d bytes)", modelPath, t.Name, offset, location, len(raw))
		}
		raw = raw[offset:]
		if length >= 0 {
			if length > int64(len(raw)) {
				return fmt.Errorf("onnxgraph: %s: initializer %q: length %d past the end of %s", modelPath, t.Name, length, location)
			}
			raw = raw[:length]
		}
		t.RawData = raw
		t.DataLocation = onnxpb.TensorProto_DEFAULT
		t.ExternalData = nil
	}
	return nil
}
