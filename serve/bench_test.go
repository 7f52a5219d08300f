package serve

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"testing"
)

// BenchmarkHTTPFloor is the floor under the server overhead that `gidedge
// bench latency` reports: a bare net/http loopback round trip of the same
// request (a 640x480 COCO JPEG posted, a small JSON answer), with no echo,
// no model and no decoding. go test -run XXX -bench HTTPFloor ./serve
func BenchmarkHTTPFloor(b *testing.B) {
	body := personJPEG(b)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := readBody(r.Body, r.ContentLength); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"model":"m","width":481,"height":640,"detections":[{"bbox":[182.1,151.2,290.5,488.5],"score":0.8,"category_id":0,"category":"person"}],"timing_ms":{"decode":1,"queue":0,"preprocess":1,"infer":6,"postprocess":0.3}}`))
	})}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	url := "http://" + ln.Addr().String() + "/v1/detect"
	for b.Loop() {
		resp, err := c.Post(url, "image/jpeg", bytes.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}
