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
// Integrity: Save stores a CRC-32C of every tensor's bytes in the metadata
// (key "checksums", a JSON object from tensor name to 8 hex digits), and
// Decode verifies each one, so a flipped bit anywhere in the data is an
// ErrCorrupt naming the tensor. Files without that key (written by other
// tools or before gidedge stored checksums) still load, unverified.
//
// Writes are atomic (package internal/atomicfile): a crash or kill leaves
// either the old checkpoint or the new one, never a torn file.
//
// Errors are prefixed "checkpoint:" and name the file; ErrFormat marks a file
// that is not a valid float32 safetensors file, ErrCorrupt data that does not
// match its checksum, ErrMismatch a checkpoint whose tensor names or shapes do
// not match the model.
package checkpoint

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"os"
	"slices"
	"sort"
	"strconv"

	"github.com/gidedge/gidedge/engine"
	"github.com/gidedge/gidedge/engine/nn"
	"github.com/gidedge/gidedge/internal/atomicfile"
)

var (
	// ErrFormat is wrapped when a file is not a readable float32 safetensors file.
	ErrFormat = errors.New("checkpoint: invalid safetensors file")
	// ErrCorrupt is wrapped when a tensor's bytes do not match the checksum
	// stored beside them: the file was damaged after it was written.
	ErrCorrupt = errors.New("checkpoint: data does not match its checksum")
	// ErrMismatch is wrapped when a checkpoint does not fit a model.
	ErrMismatch = errors.New("checkpoint: tensors do not match the model")
)

// maxHeader bounds the JSON header (the safetensors library uses 100 MB).
const maxHeader = 100 << 20

const metadataKey = "__metadata__"

// ChecksumsKey is the metadata key holding the per-tensor CRC-32C checksums.
const ChecksumsKey = "checksums"

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

type entry struct {
	DType       string   `json:"dtype"`
	Shape       []int    `json:"shape"`
	DataOffsets [2]int64 `json:"data_offsets"`
}

// testHookAfterData runs once every byte has been handed to the writer,
// before the file replaces the target; tests use it to kill a save half-way.
var testHookAfterData func()

// Save writes tensors and metadata to path atomically, with a checksum of
// every tensor (ChecksumsKey, which meta must not set). Names must be unique
// and non-empty; tensors are stored in name order.
func Save(path string, tensors []nn.Named, meta map[string]string) error {
	if _, ok := meta[ChecksumsKey]; ok {
		return fmt.Errorf("checkpoint: save %s: metadata key %q is reserved for the tensor checksums", path, ChecksumsKey)
	}
	sorted := slices.Clone(tensors)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	header := make(map[string]any, len(sorted)+1)
	sums := make(map[string]string, len(sorted))
	blobs := make([][]byte, len(sorted))
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
		blobs[i] = encodeValues(t.Tensor.ToHost())
		size := int64(len(blobs[i]))
		shape := t.Tensor.Shape()
		if shape == nil {
			shape = []int{}
		}
		header[t.Name] = entry{DType: "F32", Shape: shape, DataOffsets: [2]int64{offset, offset + size}}
		sums[t.Name] = checksum(blobs[i])
		offset += size
	}
	m := make(map[string]string, len(meta)+1)
	for k, v := range meta {
		m[k] = v
	}
	sumsJSON, err := json.Marshal(sums)
	if err != nil {
		return fmt.Errorf("checkpoint: save %s: encode checksums: %w", path, err)
	}
	m[ChecksumsKey] = string(sumsJSON)
	header[metadataKey] = m
	js, err := json.Marshal(header)
	if err != nil {
		return fmt.Errorf("checkpoint: save %s: encode header: %w", path, err)
	}
	if pad := (8 - len(js)%8) % 8; pad > 0 {
		js = append(js, bytes.Repeat([]byte(" "), pad)...)
	}
	err = atomicfile.Write(path, func(w io.Writer) error {
		var n [8]byte
		binary.LittleEndian.PutUint64(n[:], uint64(len(js)))
		if _, err := w.Write(n[:]); err != nil {
			return err
		}
		if _, err := w.Write(js); err != nil {
			return err
		}
		for _, b := range blobs {
			if _, err := w.Write(b); err != nil {
				return err
			}
		}
		if testHookAfterData != nil {
			testHookAfterData()
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("checkpoint: save: %w", err)
	}
	return nil
}

// encodeValues is the little-endian byte image of values.
func encodeValues(values []float32) []byte {
	b := make([]byte, 4*len(values))
	for i, v := range values {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return b
}

// checksum is the CRC-32C of b as 8 lowercase hex digits.
func checksum(b []byte) string {
	return fmt.Sprintf("%08x", crc32.Checksum(b, castagnoli))
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

// ReadMetadata reads only the header of a safetensors file and returns its
// metadata (without ChecksumsKey), for callers that need a checkpoint's
// recorded facts (its metric, its step) but not its tensors.
func ReadMetadata(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	defer f.Close()
	var n [8]byte
	if _, err := io.ReadFull(f, n[:]); err != nil {
		return nil, fmt.Errorf("checkpoint: %s: header length: %v: %w", path, err, ErrFormat)
	}
	hlen := binary.LittleEndian.Uint64(n[:])
	if hlen > maxHeader {
		return nil, fmt.Errorf("checkpoint: %s: header length %d exceeds the %d-byte limit: %w", path, hlen, maxHeader, ErrFormat)
	}
	js := make([]byte, hlen)
	if _, err := io.ReadFull(f, js); err != nil {
		return nil, fmt.Errorf("checkpoint: %s: header: %v: %w", path, err, ErrFormat)
	}
	var header struct {
		Meta map[string]string `json:"__metadata__"`
	}
	if err := json.Unmarshal(js, &header); err != nil {
		return nil, fmt.Errorf("checkpoint: %s: header: %v: %w", path, err, ErrFormat)
	}
	if header.Meta == nil {
		header.Meta = map[string]string{}
	}
	delete(header.Meta, ChecksumsKey)
	return header.Meta, nil
}

// Decode parses the bytes of a safetensors file holding F32 tensors and
// verifies the tensors' checksums when the file has them. Its errors wrap
// ErrFormat or ErrCorrupt and name the offending tensor or field. The
// metadata it returns leaves out ChecksumsKey.
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
	if msg, ok := raw[metadataKey]; ok {
		if err := json.Unmarshal(msg, &meta); err != nil {
			return nil, nil, fmt.Errorf("%s is not a map of strings: %v: %w", metadataKey, err, ErrFormat)
		}
	}
	var sums map[string]string
	if js, ok := meta[ChecksumsKey]; ok {
		if err := json.Unmarshal([]byte(js), &sums); err != nil {
			return nil, nil, fmt.Errorf("metadata %q is not a map of tensor names to checksums: %v: %w", ChecksumsKey, err, ErrFormat)
		}
		delete(meta, ChecksumsKey)
	}
	type span struct {
		name       string
		begin, end int64
	}
	var spans []span
	tensors := make(map[string]*engine.Tensor, len(raw))
	for name, msg := range raw {
		if name == metadataKey {
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
		blob := body[begin:end]
		if sums != nil {
			if err := verify(name, blob, sums); err != nil {
				return nil, nil, err
			}
		}
		tensors[name] = engine.FromHost(decodeValues(blob), e.Shape...)
		spans = append(spans, span{name, begin, end})
	}
	for name := range sums {
		if _, ok := tensors[name]; !ok {
			return nil, nil, fmt.Errorf("metadata %q has a checksum for tensor %q, which the file does not hold: %w", ChecksumsKey, name, ErrCorrupt)
		}
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

// verify checks one tensor's bytes against its recorded checksum.
func verify(name string, blob []byte, sums map[string]string) error {
	want, ok := sums[name]
	if !ok {
		return fmt.Errorf("tensor %q has no entry in metadata %q: %w", name, ChecksumsKey, ErrCorrupt)
	}
	if _, err := strconv.ParseUint(want, 16, 32); err != nil || len(want) != 8 {
		return fmt.Errorf("tensor %q: checksum %q in metadata %q, want 8 hex digits: %w", name, want, ChecksumsKey, ErrFormat)
	}
	if got := checksum(blob); got != want {
		return fmt.Errorf("tensor %q: its %d data bytes have CRC-32C %s, the file recorded %s: %w", name, len(blob), got, want, ErrCorrupt)
	}
	return nil
}

// decodeValues reads little-endian float32 values.
func decodeValues(b []byte) []float32 {
	values := make([]float32, len(b)/4)
	for i := range values {
		values[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return values
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
