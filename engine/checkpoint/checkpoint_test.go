package checkpoint

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gidedge/gidedge/engine"
	"github.com/gidedge/gidedge/engine/nn"
)

func sample() []nn.Named {
	rng := rand.New(rand.NewPCG(1, 2))
	w := engine.RandN(rng, 1, 4, 3, 3, 3)
	special := engine.FromHost([]float32{
		float32(math.Inf(1)), float32(math.Inf(-1)), math.Float32frombits(0x7fc00001), // NaN with a payload
		float32(math.Copysign(0, -1)), math.Float32frombits(1), math.MaxFloat32,
	}, 2, 3)
	return []nn.Named{
		{Name: "backbone.conv.weight", Tensor: w},
		{Name: "backbone.conv.bias", Tensor: engine.RandN(rng, 1, 4)},
		{Name: "special", Tensor: special},
		{Name: "step", Tensor: engine.Scalar(42)},
		{Name: "empty", Tensor: engine.Zeros(0, 5)},
	}
}

func TestRoundTripBitExact(t *testing.T) {
	path := filepath.Join(t.TempDir(), "model.safetensors")
	in := sample()
	meta := map[string]string{"config": `{"name":"retinanet_r18"}`, "step": "42"}
	if err := Save(path, in, meta); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if hlen := binary.LittleEndian.Uint64(raw[:8]); (8+hlen)%8 != 0 {
		t.Errorf("data section starts at byte %d, not 8-aligned", 8+hlen)
	}
	out, gotMeta, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != len(in) {
		t.Fatalf("loaded %d tensors, saved %d", len(out), len(in))
	}
	for _, n := range in {
		got, ok := out[n.Name]
		if !ok {
			t.Fatalf("tensor %q missing", n.Name)
		}
		if !slices.Equal(got.Shape(), n.Tensor.Shape()) {
			t.Fatalf("%q: shape %v, saved %v", n.Name, got.Shape(), n.Tensor.Shape())
		}
		gv := got.ToHost()
		for i, v := range n.Tensor.ToHost() {
			if math.Float32bits(gv[i]) != math.Float32bits(v) {
				t.Fatalf("%q element %d: bits %#x, saved %#x", n.Name, i, math.Float32bits(gv[i]), math.Float32bits(v))
			}
		}
	}
	if len(gotMeta) != len(meta) || gotMeta["config"] != meta["config"] || gotMeta["step"] != "42" {
		t.Fatalf("metadata %v, saved %v", gotMeta, meta)
	}
	// Saving the same content twice yields identical bytes (sorted, deterministic).
	path2 := filepath.Join(t.TempDir(), "again.safetensors")
	reversed := slices.Clone(in)
	slices.Reverse(reversed)
	if err := Save(path2, reversed, meta); err != nil {
		t.Fatal(err)
	}
	raw2, _ := os.ReadFile(path2)
	if string(raw) != string(raw2) {
		t.Fatal("saving the same tensors in another order changed the file")
	}
}

func TestSaveRejectsBadNames(t *testing.T) {
	dir := t.TempDir()
	for name, ts := range map[string][]nn.Named{
		"duplicate": {{Name: "a", Tensor: engine.Zeros(1)}, {Name: "a", Tensor: engine.Zeros(2)}},
		"empty":     {{Name: "", Tensor: engine.Zeros(1)}},
		"reserved":  {{Name: "__metadata__", Tensor: engine.Zeros(1)}},
	} {
		if err := Save(filepath.Join(dir, name), ts, nil); err == nil {
			t.Errorf("%s: saved", name)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("failed saves left files: %v", entries)
	}
}

// model is a tiny module for LoadInto.
type model struct{ conv *nn.Conv2d }

func (m *model) Visit(prefix string, v nn.Visitor) { m.conv.Visit(nn.Join(prefix, "conv"), v) }

func newModel(seed uint64, out int) *model {
	rng := rand.New(rand.NewPCG(seed, seed))
	return &model{conv: nn.NewConv2d(rng, nn.ConvConfig{In: 3, Out: out, Kernel: 3, Bias: true})}
}

func TestLoadInto(t *testing.T) {
	dir := t.TempDir()
	src := newModel(1, 4)
	state, _ := nn.State(src)
	path := filepath.Join(dir, "m.safetensors")
	if err := Save(path, state, map[string]string{"epoch": "3"}); err != nil {
		t.Fatal(err)
	}
	dst := newModel(2, 4)
	meta, err := LoadInto(path, dst)
	if err != nil || meta["epoch"] != "3" {
		t.Fatalf("LoadInto: %v, meta %v", err, meta)
	}
	if !slices.Equal(dst.conv.Weight.ToHost(), src.conv.Weight.ToHost()) {
		t.Fatal("weights not loaded")
	}

	wrong := newModel(3, 5)
	before := slices.Clone(wrong.conv.Weight.ToHost())
	_, err = LoadInto(path, wrong)
	if !errors.Is(err, ErrMismatch) || !strings.Contains(err.Error(), `"conv.bias"`) || !strings.Contains(err.Error(), "[4]") || !strings.Contains(err.Error(), "[5]") {
		t.Fatalf("shape mismatch: got %v", err)
	}
	if !slices.Equal(wrong.conv.Weight.ToHost(), before) {
		t.Fatal("a failed load changed the model")
	}

	extra := append(slices.Clone(state), nn.Named{Name: "head.weight", Tensor: engine.Zeros(2)})
	if err := Save(path, extra, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadInto(path, dst); !errors.Is(err, ErrMismatch) || !strings.Contains(err.Error(), `"head.weight"`) {
		t.Fatalf("extra tensor: got %v", err)
	}
	if err := Save(path, state[:1], nil); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadInto(path, dst); !errors.Is(err, ErrMismatch) || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("missing tensor: got %v", err)
	}
}

func TestDecodeErrors(t *testing.T) {
	header := func(js string, body int) []byte {
		b := binary.LittleEndian.AppendUint64(nil, uint64(len(js)))
		return append(append(b, js...), make([]byte, body)...)
	}
	cases := map[string][]byte{
		"short":        {1, 2, 3},
		"huge header":  binary.LittleEndian.AppendUint64(nil, 1<<40),
		"not json":     header("{oops", 0),
		"dtype":        header(`{"a":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}}`, 4),
		"size":         header(`{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}`, 8),
		"past end":     header(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, 4),
		"overlap":      header(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, 8),
		"gap":          header(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, 8),
		"trailing":     header(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, 8),
		"metadata":     header(`{"__metadata__":{"a":1}}`, 0),
		"neg shape":    header(`{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,0]}}`, 0),
		"shape is str": header(`{"a":{"dtype":"F32","shape":"x","data_offsets":[0,0]}}`, 0),
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			if _, _, err := Decode(data); !errors.Is(err, ErrFormat) {
				t.Fatalf("got %v, want ErrFormat", err)
			}
		})
	}
	if _, _, err := Load(filepath.Join(t.TempDir(), "absent")); err == nil || !strings.Contains(err.Error(), "absent") {
		t.Fatalf("missing file: %v", err)
	}
}

func FuzzDecode(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*.safetensors")
	for _, s := range seeds {
		data, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte{8, 0, 0, 0, 0, 0, 0, 0, '{', '}', ' ', ' ', ' ', ' ', ' ', ' '})
	f.Fuzz(func(t *testing.T, data []byte) {
		tensors, _, err := Decode(data)
		if err != nil {
			return
		}
		// Whatever decodes must survive a save and decode unchanged.
		var named []nn.Named
		for name, tt := range tensors {
			named = append(named, nn.Named{Name: name, Tensor: tt})
		}
		path := filepath.Join(t.TempDir(), "f.safetensors")
		if err := Save(path, named, nil); err != nil {
			return // names the writer rejects, such as ""
		}
		again, _, err := Load(path)
		if err != nil {
			t.Fatalf("re-encoded file does not load: %v", err)
		}
		for name, tt := range tensors {
			if !slices.Equal(again[name].Shape(), tt.Shape()) {
				t.Fatalf("%q: shape %v became %v", name, tt.Shape(), again[name].Shape())
			}
		}
	})
}

// TestKillMidWrite runs a child process that saves over an existing
// checkpoint and is killed (SIGKILL) once every byte of the new one is
// written but before it replaces the old one; the old checkpoint must still
// load intact and only a temporary file beside it may remain.
func TestKillMidWrite(t *testing.T) {
	if path := os.Getenv("CHECKPOINT_KILL_CHILD"); path != "" {
		testHookAfterData = func() {
			fmt.Println("READY")
			select {} // wait to be killed
		}
		big := engine.Full(7, 1<<16)
		if err := Save(path, []nn.Named{{Name: "w", Tensor: big}}, map[string]string{"v": "new"}); err != nil {
			fmt.Println("ERROR", err)
		}
		os.Exit(3)
	}
	if testing.Short() {
		t.Skip("spawns a child process")
	}
	path := filepath.Join(t.TempDir(), "ckpt.safetensors")
	old := sample()
	if err := Save(path, old, map[string]string{"v": "old"}); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestKillMidWrite$")
	cmd.Env = append(os.Environ(), "CHECKPOINT_KILL_CHILD="+path)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "READY" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("child did not finish writing: %q %v", line, err)
	}
	cmd.Process.Kill()
	cmd.Wait()
	tensors, meta, err := Load(path)
	if err != nil {
		t.Fatalf("checkpoint corrupt after a killed save: %v", err)
	}
	if meta["v"] != "old" || len(tensors) != len(old) {
		t.Fatalf("checkpoint changed by a killed save: meta %v, %d tensors", meta, len(tensors))
	}
	temps, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".ckpt.safetensors.tmp-*"))
	if len(temps) != 1 {
		t.Fatalf("want the killed save's one temporary file beside the checkpoint, found %v", temps)
	}
}

// TestChecksumsCatchFlippedBytes flips one bit in the data of every tensor
// in turn: each load must fail with ErrCorrupt naming that tensor and the
// file. A flip in the header is caught too, as ErrFormat or ErrCorrupt.
func TestChecksumsCatchFlippedBytes(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "ok.safetensors")
	in := sample()
	if err := Save(path, in, map[string]string{"v": "1"}); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(path)
	if err != nil || info.Mode().Perm() != 0o644 {
		t.Fatalf("checkpoint mode %v (%v), want 0644 so a serving user can read it", info.Mode(), err)
	}
	_, meta, err := Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := meta[ChecksumsKey]; ok || meta["v"] != "1" {
		t.Fatalf("metadata %v: want the caller's keys without %q", meta, ChecksumsKey)
	}
	hlen := int(binary.LittleEndian.Uint64(raw[:8]))
	var header map[string]entry
	_ = json.Unmarshal(raw[8:8+hlen], &header) // __metadata__ does not fit entry; tensors do
	for _, n := range in {
		e := header[n.Name]
		if e.DataOffsets[1] == e.DataOffsets[0] {
			continue // an empty tensor has no bytes to flip
		}
		t.Run(n.Name, func(t *testing.T) {
			bad := slices.Clone(raw)
			at := 8 + hlen + int(e.DataOffsets[0]+e.DataOffsets[1])/2
			bad[at] ^= 0x10
			p := filepath.Join(dir, "bad.safetensors")
			if err := os.WriteFile(p, bad, 0o644); err != nil {
				t.Fatal(err)
			}
			_, _, err := Load(p)
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), fmt.Sprintf("%q", n.Name)) || !strings.Contains(err.Error(), p) {
				t.Fatalf("flipped byte %d: got %v, want ErrCorrupt naming %q and %s", at, err, n.Name, p)
			}
		})
	}
	// A recorded checksum changed by hand (same length) is caught the same way.
	key := `\"backbone.conv.bias\":\"`
	at := strings.Index(string(raw[:8+hlen]), key) + len(key)
	if at < len(key) {
		t.Fatalf("header has no checksum for backbone.conv.bias: %s", raw[8:8+hlen])
	}
	edited := slices.Clone(raw)
	if edited[at] == '0' {
		edited[at] = '1'
	} else {
		edited[at] = '0'
	}
	if _, _, err := Decode(edited); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), `"backbone.conv.bias"`) {
		t.Fatalf("edited checksum: got %v, want ErrCorrupt naming the tensor", err)
	}
}

func TestSaveReservesChecksumKey(t *testing.T) {
	err := Save(filepath.Join(t.TempDir(), "x.safetensors"), sample(), map[string]string{ChecksumsKey: "{}"})
	if err == nil || !strings.Contains(err.Error(), ChecksumsKey) {
		t.Fatalf("got %v, want an error naming the reserved key", err)
	}
}

// TestLoadsFilesWithoutChecksums keeps files from other tools (and from
// gidedge before checksums) loadable.
func TestLoadsFilesWithoutChecksums(t *testing.T) {
	js := `{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"__metadata__":{"k":"v"}}`
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(js)))
	b = append(append(b, js...), encodeValues([]float32{1.5, -2})...)
	tensors, meta, err := Decode(b)
	if err != nil || meta["k"] != "v" || !slices.Equal(tensors["a"].ToHost(), []float32{1.5, -2}) {
		t.Fatalf("got %v %v %v", tensors, meta, err)
	}
	// With the key present, a tensor it does not list is corrupt.
	js = `{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"__metadata__":{"checksums":"{}"}}`
	b = binary.LittleEndian.AppendUint64(nil, uint64(len(js)))
	b = append(append(b, js...), encodeValues([]float32{1.5, -2})...)
	if _, _, err := Decode(b); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), `"a"`) {
		t.Fatalf("tensor without checksum: got %v", err)
	}
}
