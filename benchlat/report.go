package benchlat

import (
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"text/tabwriter"

	"github.com/gidedge/gidedge/internal/hostinfo"
)

// Host describes where the numbers were measured.
type Host struct {
	OS       string `json:"os"`
	Arch     string `json:"arch"`
	CPUs     int    `json:"cpus"`
	CPUModel string `json:"cpu_model,omitempty"`
	Board    string `json:"board,omitempty"` // device-tree model, e.g. a Jetson
	Runtime  string `json:"runtime,omitempty"`
	Provider string `json:"provider,omitempty"`
	Power    string `json:"power_source,omitempty"`
	// Emulation is set when an emulator runs this program on a CPU of
	// another architecture (qemu-user in CI's arm64 checks): the times then
	// describe the emulator, not the device.
	Emulation string `json:"emulation,omitempty"`
}

// Overhead is how much slower end-to-end is than in-process at the median.
type Overhead struct {
	Model       string  `json:"model"`
	Concurrency int     `json:"concurrency"`
	P50MS       float64 `json:"p50_ms"`
}

// Report is every measurement of one `gidedge bench latency` run. The
// top-level p50_ms, p99_ms and throughput repeat the first result, so
// scripts can read one number without walking the list.
type Report struct {
	P50MS      float64    `json:"p50_ms"`
	P99MS      float64    `json:"p99_ms"`
	Throughput float64    `json:"throughput"`
	N          int        `json:"n"`
	Warmup     int        `json:"warmup"`
	Images     int        `json:"images"`
	Host       Host       `json:"host"`
	Results    []Result   `json:"results"`
	Overheads  []Overhead `json:"server_overhead,omitempty"`
}

// HostInfo fills what Go and package hostinfo know about this machine.
func HostInfo() Host {
	cpu := hostinfo.ReadCPU()
	return Host{OS: runtime.GOOS, Arch: cpu.Arch, CPUs: cpu.Cores, CPUModel: cpu.Model, Board: hostinfo.Board(), Emulation: hostinfo.DetectEmulation().String()}
}

// Add appends a result.
func (r *Report) Add(res Result) { r.Results = append(r.Results, res) }

// Finish fills the top-level numbers and the server overhead of every
// (model, concurrency) measured both ways.
func (r *Report) Finish() {
	if len(r.Results) > 0 {
		r.P50MS, r.P99MS, r.Throughput = r.Results[0].P50MS, r.Results[0].P99MS, r.Results[0].Throughput
	}
	r.Overheads = nil
	for _, e := range r.Results {
		if e.Mode != "end-to-end" {
			continue
		}
		for _, in := range r.Results {
			if in.Mode == "in-process" && in.Model == e.Model && in.Concurrency == e.Concurrency {
				r.Overheads = append(r.Overheads, Overhead{Model: e.Model, Concurrency: e.Concurrency, P50MS: e.P50MS - in.P50MS})
			}
		}
	}
}

// WriteJSON writes the report as one indented JSON object.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteTable writes the report for people.
func (r *Report) WriteTable(w io.Writer) error {
	h := r.Host
	fmt.Fprintf(w, "gidedge bench latency: %d timed + %d warm-up requests over %d images\n", r.N, r.Warmup, r.Images)
	fmt.Fprintf(w, "host: %s/%s, %d CPUs", h.OS, h.Arch, h.CPUs)
	if h.CPUModel != "" {
		fmt.Fprintf(w, ", %s", h.CPUModel)
	}
	if h.Board != "" {
		fmt.Fprintf(w, ", board %s", h.Board)
	}
	if h.Runtime != "" {
		fmt.Fprintf(w, "; %s", h.Runtime)
	}
	if h.Provider != "" {
		fmt.Fprintf(w, ", provider %s", h.Provider)
	}
	fmt.Fprintln(w)
	if h.Emulation != "" {
		fmt.Fprintf(w, "EMULATED: %s; these times measure the emulator, not %s hardware\n", h.Emulation, h.Arch)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	hasMAP, hasPower, hasOverhead := false, false, false
	for _, x := range r.Results {
		hasMAP = hasMAP || x.MAP != nil
		hasOverhead = hasOverhead || x.OverheadP50MS > 0
		hasPower = hasPower || x.PowerW != nil || x.TempC != nil
	}
	head := "model\tmode\tconc\tp50 ms\tp90 ms\tp99 ms\tmax ms\tmean±std ms\timg/s\tsession p50\tRSS MB"
	if hasOverhead {
		head += "\tserver overhead p50"
	}
	if hasPower {
		head += "\tpower W\ttemp °C"
	}
	if hasMAP {
		head += "\tmAP\tmAP50"
	}
	fmt.Fprintln(tw, head+"\t")
	for _, x := range r.Results {
		row := fmt.Sprintf("%s\t%s\t%d\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f±%.2f\t%.1f\t%s\t%s",
			x.Model, x.Mode, x.Concurrency, x.P50MS, x.P90MS, x.P99MS, x.MaxMS, x.MeanMS, x.StdMS, x.Throughput,
			orDash(x.SessionP50MS > 0, fmt.Sprintf("%.2f", x.SessionP50MS)), orDash(x.RSSBytes > 0, fmt.Sprintf("%.0f", float64(x.RSSBytes)/(1<<20))))
		if hasOverhead {
			row += "\t" + orDash(x.OverheadP50MS > 0, fmt.Sprintf("%.3f", x.OverheadP50MS))
		}
		if hasPower {
			row += "\t" + optional(x.PowerW, "%.2f") + "\t" + optional(x.TempC, "%.1f")
		}
		if hasMAP {
			row += "\t" + optional(x.MAP, "%.3f") + "\t" + optional(x.MAP50, "%.3f")
		}
		fmt.Fprintln(tw, row+"\t")
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, o := range r.Overheads {
		fmt.Fprintf(w, "end-to-end − in-process at p50, %s, concurrency %d: %+.2f ms\n", o.Model, o.Concurrency, o.P50MS)
	}
	if hasOverhead {
		fmt.Fprintln(w, "server overhead: per request, client wall time minus the server's own stage times (HTTP, routing, body, JSON)")
	}
	return nil
}

func orDash(ok bool, s string) string {
	if ok {
		return s
	}
	return "-"
}

func optional(v *float64, format string) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf(format, *v)
}
