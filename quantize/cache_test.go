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
	key := CacheKey{ModelSHA256: "abc", Method: Percentile, Percentile: 99.9, Activations: Uint8, Equalize: "0.5"}
	c := &CalibCache{CacheKey: key, Images: 3, Channels: ChannelStats{"x": {1, 2}},
		Tensors: map[string]Range{"x": {-1, 2}, "y": {0, 5}}}
	if err := WriteCalibCache(path, c); err != nil {
		t.Fatal(err)
	}
	got, err := ReadCalibCache(path)
	if err != nil || got.Tensors["x"] != (Range{-1, 2}) || got.Percentile != 99.9 || got.Channels["x"][1] != 2 {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	if err := got.Check(path, key, []string{"x", "y"}); err != nil {
		t.Fatal(err)
	}
	with := func(f func(k *CacheKey)) CacheKey { k := key; f(&k); return k }
	for name, err := range map[string]error{
		"model":      got.Check(path, with(func(k *CacheKey) { k.ModelSHA256 = "def" }), nil),
		"method":     got.Check(path, with(func(k *CacheKey) { k.Method = MinMax }), nil),
		"percentile": got.Check(path, with(func(k *CacheKey) { k.Percentile = 99.99 }), nil),
		"activation": got.Check(path, with(func(k *CacheKey) { k.Activations = Int8 }), nil),
		"equalize":   got.Check(path, with(func(k *CacheKey) { k.Equalize = "off" }), nil),
		"tensor":     got.Check(path, key, []string{"z"}),
	} {
		if !errors.Is(err, ErrCacheMismatch) {
			t.Errorf("%s mismatch: got %v, want ErrCacheMismatch", name, err)
		}
	}
	os.WriteFile(path, []byte(`{"version":2,"tensors":{"x":{"min":3,"max":1}}}`), 0o644)
	if _, err := ReadCalibCache(path); err == nil {
		t.Fatal("min above max: want an error")
	}
}

func FuzzReadCalibCache(f *testing.F) {
	f.Add([]byte(`{"version":2,"model_sha256":"ab","method":"minmax","activations":"uint8","equalize":"off","images":2,"tensors":{"a":{"min":-1,"max":1}}}`))
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
		_ = c.Check(path, CacheKey{ModelSHA256: "x", Method: MinMax, Activations: Uint8}, []string{"a"})
	})
}
