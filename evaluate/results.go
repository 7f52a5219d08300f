package evaluate

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"strconv"

	"github.com/gidedge/gidedge/internal/atomicfile"
)

// resultRecord is one entry of a results file as written by any tool:
// ids may be written as 42 or 42.0, extra fields (segmentation, …) are
// ignored.
type resultRecord struct {
	ImageID    *json.Number `json:"image_id"`
	CategoryID *json.Number `json:"category_id"`
	BBox       []float64    `json:"bbox"`
	Score      *float64     `json:"score"`
}

// ReadResults reads a COCO results JSON file:
// [{"image_id": 1, "category_id": 3, "bbox": [x, y, w, h], "score": 0.9}, …].
func ReadResults(path string) ([]Detection, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("evaluate: %w", err)
	}
	dets, err := parseResults(data)
	if err != nil {
		return nil, fmt.Errorf("evaluate: %s: %w", path, err)
	}
	return dets, nil
}

func parseResults(data []byte) ([]Detection, error) {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return nil, fmt.Errorf("empty file, want a JSON array of detections")
	}
	if trimmed[0] != '[' {
		return nil, fmt.Errorf("want a JSON array of detections ([{image_id, category_id, bbox, score}]), file starts with %q", string(trimmed[:min(len(trimmed), 20)]))
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	dec.UseNumber()
	var recs []resultRecord
	if err := dec.Decode(&recs); err != nil {
		return nil, fmt.Errorf("malformed json: %w", err)
	}
	dets := make([]Detection, len(recs))
	for i, r := range recs {
		if r.ImageID == nil || r.CategoryID == nil || r.BBox == nil || r.Score == nil {
			return nil, fmt.Errorf("[%d]: missing field, want image_id, category_id, bbox and score", i)
		}
		img, err := integer(*r.ImageID)
		if err != nil {
			return nil, fmt.Errorf("[%d]: image_id: %w", i, err)
		}
		cat, err := integer(*r.CategoryID)
		if err != nil {
			return nil, fmt.Errorf("[%d]: category_id: %w", i, err)
		}
		if len(r.BBox) != 4 {
			return nil, fmt.Errorf("[%d]: bbox has %d numbers, want 4 (x, y, width, height)", i, len(r.BBox))
		}
		d := Detection{ImageID: img, CategoryID: cat, Score: *r.Score}
		copy(d.BBox[:], r.BBox)
		if err := checkDetection(d); err != nil {
			return nil, fmt.Errorf("[%d]: %w", i, err)
		}
		dets[i] = d
	}
	return dets, nil
}

// integer accepts a JSON number that holds a whole value.
func integer(n json.Number) (int64, error) {
	if v, err := strconv.ParseInt(string(n), 10, 64); err == nil {
		return v, nil
	}
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
		return 0, fmt.Errorf("%s is not a whole number", n)
	}
	return int64(f), nil
}

// WriteResults writes dets as a COCO results JSON, one detection a line,
// atomically (temporary file, fsync, rename).
func WriteResults(path string, dets []Detection) error {
	var b bytes.Buffer
	b.WriteString("[")
	for i, d := range dets {
		if err := checkDetection(d); err != nil {
			return fmt.Errorf("evaluate: write %s: detection %d: %w", path, i, err)
		}
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString("\n")
		line, err := json.Marshal(d)
		if err != nil {
			return fmt.Errorf("evaluate: write %s: %w", path, err)
		}
		b.Write(line)
	}
	b.WriteString("\n]\n")
	return atomicfile.WriteFile(path, b.Bytes())
}
