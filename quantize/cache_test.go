package quantize

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestCalibCacheRoundTripAndChecks(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cache.json")
	if c, err := ReadCalibCache(path); c != nil || err != nil {
		t.Fatalf("missing cache: got %v, %v; want nil, nil", c, err)
	}
	c := &CalibCache{ModelSHA256: "abc", Method: Percentile, Percentile: 99.9, Activations: Uint8, Images: 3,
		Tensors: map[string]Range{"x": {-1, 2}, "y": {0, 5}}}
	if err := WriteCalibCache(path, c); err != nil {
		t.Fatal(err)
	}
	got, err := ReadCalibCache(path)
	if err != nil || got.Tensors["x"] != (Range{-1, 2}) || got.Percentile != 99.9 {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	if err := got.Check(path, "abc", Percentile, 99.9, Uint8, []string{"x", "y"}); err != nil {
		t.Fatal(err)
	}
	for name, err := range map[string]error{
		"model":      got.Check(path, "def", Percentile, 99.9, Uint8, nil),
		"method":     got.Check(path, "abc", MinMax, 99.9, Uint8, nil),
		"percentile": got.Check(path, "abc", Percentile, 99.99, Uint8, nil),
		"activation": got.Check(path, "abc", Percentile, 99.9, Int8, nil),
		"tensor":     got.Check(path, "abc", Percentile, 99.9, Uint8, []string{"z"}),
	} {
		if !errors.Is(err, ErrCacheMismatch) {
			t.Errorf("%s mismatch: got %v, want ErrCacheMismatch", name, err)
		}
	}
	os.WriteFile(path, []byte(`{"version":1,"tensors":{"x":{"min":3,"max":1}}}`), 0o644)
	if _, err := ReadCalibCache(path); err == nil {
		t.Fatal("min above max: want an error")
	}
}

func FuzzReadCalibCache(f *testing.F) {
	f.Add([]byte(`{"version":1,"model_sha256":"ab","method":"minmax","activations":"uint8","images":2,"tensors":{"a":{"min":-1,"max":1}}}`))
	f.Add([]byte(`{"version":2}`))
	f.Add([]byte(`not json`))
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "c.json")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		c, err := ReadCalibCache(path)
		if err != nil || c == nil {
			return
		}
		for name, r := range c.Tensors {
			if !(r.Min <= r.Max) {
				t.Fatalf("accepted tensor %q with range %+v", name, r)
			}
		}
		_ = c.Check(path, "x", MinMax, 0, Uint8, []string{"a"})
	})
}
