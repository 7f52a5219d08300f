package quantize

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"

	"github.com/gidedge/gidedge/onnxgraph"
)

// cacheVersion is bumped when the calibration cache format changes.
const cacheVersion = 2

// ErrCacheMismatch reports a calibration cache made for another model or
// with other calibration settings.
var ErrCacheMismatch = errors.New("quantize: calibration cache does not match")

// CalibCache is the JSON calibration cache: the range of every tensor the
// model can quantize, measured once, so re-quantizing with other exclusions,
// per-tensor weights or a fallback budget skips calibration.
type CalibCache struct {
	Version int `json:"version"`
	CacheKey
	Images int `json:"images"`
	// Channels are the per-channel ranges equalization was computed from,
	// so a run from the cache alone rebuilds the same equalized graph.
	Channels ChannelStats `json:"channel_stats,omitempty"`
	// Tensors are the ranges of the (equalized) graph's tensors.
	Tensors map[string]Range `json:"tensors"`
}

// CacheKey is what a cache must have been made with to be reused.
type CacheKey struct {
	ModelSHA256 string      `json:"model_sha256"`
	Method      Method      `json:"method"`
	Percentile  float64     `json:"percentile,omitempty"`
	Activations Activations `json:"activations"`
	// Equalize is "off" or the strength ("0.5").
	Equalize string `json:"equalize"`
	// ActivationAware says whether lower bounds were set for the
	// activation that reads each tensor.
	ActivationAware bool `json:"activation_aware,omitempty"`
}

// FileSHA256 returns the hex SHA-256 of a file.
func FileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("quantize: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("quantize: hash %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// ReadCalibCache reads a cache file; a missing file returns (nil, nil).
func ReadCalibCache(path string) (*CalibCache, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("quantize: calibration cache: %w", err)
	}
	var c CalibCache
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("quantize: calibration cache %s: %w", path, err)
	}
	if c.Version != cacheVersion {
		return nil, fmt.Errorf("%w: %s has version %d, want %d (delete it to recalibrate)", ErrCacheMismatch, path, c.Version, cacheVersion)
	}
	for name, r := range c.Tensors {
		if !(r.Min <= r.Max) {
			return nil, fmt.Errorf("quantize: calibration cache %s: tensor %q has min %v above max %v", path, name, r.Min, r.Max)
		}
	}
	return &c, nil
}

// Check verifies the cache was made for this model file and settings and
// holds every tensor in need.
func (c *CalibCache) Check(path string, want CacheKey, need []string) error {
	switch {
	case c.ModelSHA256 != want.ModelSHA256:
		return fmt.Errorf("%w: %s was made for another model (sha256 %.12s…, this one %.12s…); delete it to recalibrate", ErrCacheMismatch, path, c.ModelSHA256, want.ModelSHA256)
	case c.Method != want.Method || (want.Method == Percentile && c.Percentile != want.Percentile):
		return fmt.Errorf("%w: %s was made with --method %s%s, not %s%s; pass the same settings or delete it", ErrCacheMismatch, path, c.Method, pct(c.Method, c.Percentile), want.Method, pct(want.Method, want.Percentile))
	case c.Activations != want.Activations:
		return fmt.Errorf("%w: %s was made for %s activations, not %s; pass the same settings or delete it", ErrCacheMismatch, path, c.Activations, want.Activations)
	case c.Equalize != want.Equalize:
		return fmt.Errorf("%w: %s was made with equalization %s, not %s; pass the same settings or delete it", ErrCacheMismatch, path, c.Equalize, want.Equalize)
	case c.ActivationAware != want.ActivationAware:
		return fmt.Errorf("%w: %s was made with activation-aware ranges %v, not %v; pass the same settings or delete it", ErrCacheMismatch, path, c.ActivationAware, want.ActivationAware)
	}
	var missing []string
	for _, t := range need {
		if _, ok := c.Tensors[t]; !ok {
			missing = append(missing, t)
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return fmt.Errorf("%w: %s lacks %d tensors the plan quantizes (first %q); delete it to recalibrate", ErrCacheMismatch, path, len(missing), missing[0])
	}
	return nil
}

func pct(m Method, p float64) string {
	if m == Percentile {
		return fmt.Sprintf(" --percentile %v", p)
	}
	return ""
}

// WriteCalibCache writes the cache atomically with sorted keys.
func WriteCalibCache(path string, c *CalibCache) error {
	c.Version = cacheVersion
	data, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return fmt.Errorf("quantize: calibration cache: %w", err)
	}
	if err := onnxgraph.WriteFileAtomic(path, append(data, '\n')); err != nil {
		return fmt.Errorf("quantize: calibration cache: %w", err)
	}
	return nil
}
