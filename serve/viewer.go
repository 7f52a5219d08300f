package serve

import (
	"bytes"
	_ "embed"
	"html/template"
	"net/http"
	"net/url"

	"github.com/labstack/echo/v4"
)

//go:embed assets/viewer.html
var viewerHTML string

var viewerTemplate = template.Must(template.New("viewer").Parse(viewerHTML))

type viewerData struct {
	Model, Adapter, Provider string
	HasCamera, CameraReady   bool
	CameraState              string
	StreamURL                string
	LatestURL, CameraURL     string
	Token                    string // for the script's Authorization header
	HasFrame                 bool
	Frame                    uint64
	Detections               []DetectionJSON
}

// handleViewer renders the viewer page: the annotated stream and the newest
// detections, rendered on the server and refreshed by a small script.
func (s *Server) handleViewer(c echo.Context) error {
	desc, _ := s.models.describe()
	d := viewerData{Model: desc.Name, Adapter: desc.Adapter, Provider: desc.Provider, CameraState: "none"}
	// The page's own requests carry the token it was opened with: the
	// stream's <img> in the query (it cannot set headers), the script's
	// fetches in an Authorization header, as every other route wants.
	suffix := ""
	if tok := c.QueryParam("access_token"); tok != "" && s.cfg.Token != "" {
		suffix = "?access_token=" + url.QueryEscape(tok)
		d.Token = tok
	}
	d.StreamURL = "/v1/stream.mjpeg" + suffix
	d.LatestURL = "/v1/detections/latest"
	d.CameraURL = "/v1/camera"
	if s.camera != nil {
		d.HasCamera = true
		st := s.camera.snapshot()
		d.CameraReady = st.Ready
		switch {
		case st.Ready:
			d.CameraState = "ready"
		case st.Error != "":
			d.CameraState = "not ready: " + st.Error
		default:
			d.CameraState = "starting"
		}
		if fd, ok := s.camera.latestDetections(); ok {
			d.HasFrame, d.Frame, d.Detections = true, fd.Frame, fd.Detections
		}
	}
	var buf bytes.Buffer
	if err := viewerTemplate.Execute(&buf, d); err != nil {
		return err
	}
	c.Response().Header().Set(echo.HeaderCacheControl, "no-store")
	return c.HTMLBlob(http.StatusOK, buf.Bytes())
}
