package serve

import (
	"encoding/json"
	"net/url"
	"testing"
)

func FuzzFlattenFloats(f *testing.F) {
	f.Add(`[1, 2.5, -3]`)
	f.Add(`[[1, 2], [3, [4]]]`)
	f.Add(`[[1], "x"]`)
	f.Fuzz(func(t *testing.T, raw string) {
		got, err := flattenFloats(json.RawMessage(raw))
		if err != nil {
			return
		}
		// Whatever was accepted is valid JSON made only of numbers and arrays.
		var v any
		if json.Unmarshal([]byte(raw), &v) != nil {
			t.Fatalf("accepted invalid JSON %q as %v", raw, got)
		}
	})
}

func FuzzParseParams(f *testing.F) {
	f.Add("score_threshold=0.3&iou_threshold=0.5&max_detections=10")
	f.Add("score_threshold=NaN")
	f.Fuzz(func(t *testing.T, query string) {
		q, err := url.ParseQuery(query)
		if err != nil {
			return
		}
		p, err := parseParams(q)
		if err != nil {
			return
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("parseParams(%q) accepted %+v: %v", query, p, err)
		}
	})
}
