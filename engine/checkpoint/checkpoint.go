// Package checkpoint saves and loads named float32 tensors in the
// safetensors format, with string metadata (a model's config JSON, the
// training step) in the header's "__metadata__" map, so checkpoints open in
// the Python safetensors library as well.
//
// File layout: an 8-byte little-endian header length, a JSON header mapping
// each tensor name to {"dtype": "F32", "shape": [...], "data_offsets":
// [begin, end]} (offsets into the data section), padded with spaces to a
// multiple of 8 bytes, then the raw little-endian data.
//
// Writes are atomic: the file is written to a temporary file in the same
// folder, synced, and renamed over the target, so a crash or kill leaves
// either the old checkpoint or the new one, never a torn file.
//
// Errors are prefixed "checkpoint:" and name the file; ErrFormat marks a file
// that is not a valid float32 safetensors file, ErrMismatch a checkpoint
// whose tensor names or shapes do not match the model.
package checkpoint

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/gidedge/gidedge/engine"
	"github.com/gidedge/gidedge/engine/nn"
)

var (
	// ErrFormat is wrapped when a file is not a readable float32 safetensors file.
	ErrFormat = errors.New("invalid safetensors file")
	// ErrMismatch is wrapped when a checkpoint does not fit a model.
	ErrMismatch = errors.New("checkpoint does not match model")
)

// maxHeader bounds the JSON header (the safetensors library uses 100 MB).
const maxHeader = 100 << 20

const metadataKey = "__metadata__"

type entry struct {
	DType       string   `json:"dtype"`
	Shape       []int    `json:"shape"`
	DataOffsets [2]int64 `json:"data_offsets"`
}

// testHookBeforeRename runs after the temporary file is complete and synced,
// before it replaces the target; tests use it to kill a write half-way.
var testHookBeforeRename func(tmp string)

// Save writes tensors and metadata to path atomically. Names must be unique
// and non-empty; tensors are stored in name order.
func Save(path string, tensors []nn.Named, meta map[string]string) error {
	sorted := slices.Clone(tensors)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	header := make(map[string]any, len(sorted)+1)
	var offset int64
	for i, t := range sorted {
		switch {
		case t.Name == "" || t.Name == metadataKey:
			return fmt.Errorf("checkpoint: save %s: invalid tensor name %q", path, t.Name)
		case i > 0 && sorted[i-1].Name == t.Name:
			return fmt.Errorf("checkpoint: save %s: tensor name %q appears twice", path, t.Name)
		case t.Tensor == nil:
			return fmt.Errorf("checkpoint: save %s: tensor %q is nil", path, t.Name)
		}
		size := int64(4 * t.Tensor.Len())
		shape := t.Tensor.Shape()
		if shape == nil {
			shape = []int{}
		}
		header[t.Name] = entry{DType: "F32", Shape: shape, DataOffsets: [2]int64{offset, offset + size}}
		offset += size
	}
	if len(meta) > 0 {
		header[metadataKey] = meta
	}
	js, err := json.Marshal(header)
	if err != nil {
		return fmt.Errorf("checkpoint: save %s: encode header: %w", path, err)
	}
	if pad := (8 - len(js)%8) % 8; pad > 0 {
		js = append(js, strings.Repeat(" ", pad)...)
	}
	return writeAtomic(path, func(w io.Writer) error {
		var n [8]byte
		binary.LittleEndian.PutUint64(n[:], uint64(len(js)))
		if _, err := w.Write(n[:]); err != nil {
			return err
		}
		if _, err := w.Write(js); err != nil {
			return err
		}
		buf := make([]byte, 0, 64<<10)
		for _, t := range sorted {
			for _, v := range t.Tensor.ToHost() {
				buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
				if len(buf) == cap(buf) {
					if _, err := w.Write(buf); err != nil {
						return err
					}
					buf = buf[:0]
				}
			}
		}
		_, err := w.Write(buf)
		return err
	})
}

// writeAtomic writes a file through a synced temporary file and a rename.
func writeAtomic(path string, fill func(io.Writer) error) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("checkpoint: save %s: %w", path, err)
	}
	// The temporary file goes unless the rename happened, also when fill
	// panics (a device error while reading tensors).
	renamed := false
	defer func() {
		if !renamed {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	bw := bufio.NewWriterSize(tmp, 1<<20)
	if err := fill(bw); err != nil {
		return fmt.Errorf("checkpoint: save %s: write: %w", path, err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("checkpoint: save %s: write: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("checkpoint: save %s: sync: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("checkpoint: save %s: close: %w", path, err)
	}
	if testHookBeforeRename != nil {
		testHookBeforeRename(tmp.Name())
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("checkpoint: save %s: %w", path, err)
	}
	renamed = true
	// Persist the rename itself.
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// Load reads every tensor and the metadata of a safetensors file.
func Load(path string) (map[string]*engine.Tensor, map[string]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("checkpoint: %w", err)
	}
	tensors, meta, err := Decode(data)
	if err != nil {
		return nil, nil, fmt.Errorf("checkpoint: %s: %w", path, err)
	}
	return tensors, meta, nil
}

// Decode parses the bytes of a safetensors file holding F32 tensors. Its
// errors wrap ErrFormat and name the offending tensor or field.
func Decode(data []byte) (map[string]*engine.Tensor, map[string]string, error) {
	if len(data) < 8 {
		return nil, nil, fmt.Errorf("%d bytes is shorter than the 8-byte header length: %w", len(data), ErrFormat)
	}
	hlen := binary.LittleEndian.Uint64(data[:8])
	if hlen > maxHeader || hlen > uint64(len(data)-8) {
		return nil, nil, fmt.Errorf("header length %d exceeds the file (%d bytes) or the %d-byte limit: %w", hlen, len(data), maxHeader, ErrFormat)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data[8:8+hlen], &raw); err != nil {
		return nil, nil, fmt.Errorf("header is not a JSON object: %v: %w", err, ErrFormat)
	}
	body := data[8+hlen:]
	var meta map[string]string
	type span struct {
		name       string
		begin, end int64
	}
	var spans []span
	tensors := make(map[string]*engine.Tensor, len(raw))
	for name, msg := range raw {
		if name == metadataKey {
			if err := json.Unmarshal(msg, &meta); err != nil {
				return nil, nil, fmt.Errorf("%s is not a map of strings: %v: %w", metadataKey, err, ErrFormat)
			}
			continue
		}
		var e entry
		if err := json.Unmarshal(msg, &e); err != nil {
			return nil, nil, fmt.Errorf("tensor %q: bad header entry: %v: %w", name, err, ErrFormat)
		}
		if e.DType != "F32" {
			return nil, nil, fmt.Errorf("tensor %q has dtype %q, only F32 is supported: %w", name, e.DType, ErrFormat)
		}
		count := int64(1)
		for _, d := range e.Shape {
			if d < 0 || (d > 0 && count > math.MaxInt32/int64(d)) {
				return nil, nil, fmt.Errorf("tensor %q has invalid shape %v: %w", name, e.Shape, ErrFormat)
			}
			count *= int64(d)
		}
		begin, end := e.DataOffsets[0], e.DataOffsets[1]
		if begin < 0 || end < begin || end > int64(len(body)) || end-begin != 4*count {
			return nil, nil, fmt.Errorf("tensor %q: data offsets [%d, %d] do not hold shape %v in a %d-byte data section: %w", name, begin, end, e.Shape, len(body), ErrFormat)
		}
		values := make([]float32, count)
		for i := range values {
			values[i] = math.Float32frombits(binary.LittleEndian.Uint32(body[begin+4*int64(i):]))
		}
		tensors[name] = engine.FromHost(values, e.Shape...)
		spans = append(spans, span{name, begin, end})
	}
	// The format requires the tensors to tile the data section exactly.
	// Empty tensors share their offset with the next tensor: order by end too.
	sort.Slice(spans, func(i, j int) bool {
		if spans[i].begin != spans[j].begin {
			return spans[i].begin < spans[j].begin
		}
		return spans[i].end < spans[j].end
	})
	var at int64
	for _, s := range spans {
		if s.begin != at {
			return nil, nil, fmt.Errorf("tensor %q starts at byte %d, want %d (overlapping or gapped data): %w", s.name, s.begin, at, ErrFormat)
		}
		at = s.end
	}
	if at != int64(len(body)) {
		return nil, nil, fmt.Errorf("data section has %d bytes, tensors cover %d: %w", len(body), at, ErrFormat)
	}
	if meta == nil {
		meta = map[string]string{}
	}
	return tensors, meta, nil
}

// LoadInto loads path into m's tensors (parameters and buffers, nn.State)
// and returns the metadata. Every tensor of m must be in the file with the
// same shape and the file must hold nothing else; otherwise nothing is
// changed and the error names the first mismatching tensor.
func LoadInto(path string, m nn.Module) (map[string]string, error) {
	tensors, meta, err := Load(path)
	if err != nil {
		return nil, err
	}
	if err := Assign(m, tensors); err != nil {
		return nil, fmt.Errorf("checkpoint: %s: %w", path, err)
	}
	return meta, nil
}

// Assign copies tensors into m by name with the checks of LoadInto.
func Assign(m nn.Module, tensors map[string]*engine.Tensor) error {
	state, err := nn.State(m)
	if err != nil {
		return err
	}
	for _, s := range state {
		t, ok := tensors[s.Name]
		if !ok {
			return fmt.Errorf("model tensor %q %v is missing from the checkpoint: %w", s.Name, s.Tensor.Shape(), ErrMismatch)
		}
		if !slices.Equal(t.Shape(), s.Tensor.Shape()) {
			return fmt.Errorf("tensor %q has shape %v in the checkpoint, the model wants %v: %w", s.Name, t.Shape(), s.Tensor.Shape(), ErrMismatch)
		}
	}
	if len(tensors) != len(state) {
		names := make([]string, 0, len(tensors))
		for name := range tensors {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			if !slices.ContainsFunc(state, func(s nn.Named) bool { return s.Name == name }) {
				return fmt.Errorf("checkpoint tensor %q %v is not in the model: %w", name, tensors[name].Shape(), ErrMismatch)
			}
		}
	}
	for _, s := range state {
		s.Tensor.CopyFrom(tensors[s.Name])
	}
	return nil
}
