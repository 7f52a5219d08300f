package serve

import (
	"net/url"
	"testing"
)

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
