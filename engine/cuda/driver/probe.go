package driver

import "errors"

// Report is what `gidedge doctor` prints about CUDA: every library found or
// missing with its path and version, the driver, the GPUs, and why CUDA is
// unusable when it is.
type Report struct {
	// CUDA is the CUDA version the driver supports, e.g. "13.0".
	CUDA string
	// DriverVersion is the NVIDIA driver's version from NVML, e.g.
	// "580.95.05"; empty when NVML is missing.
	DriverVersion string
	Devices       []DeviceInfo
	// Libraries in the order: CUDA driver, NVML, cuBLAS, cuBLASLt, cuDNN.
	Libraries []LibraryInfo
	// Err is why training with --device cuda would fail (nil when it
	// would not): no driver, no GPU, a GPU too old, or no cuBLAS.
	Err error
}

// Probe loads what it can of the CUDA libraries (searching as cfg says)
// and reports on them. It never fails: problems are in the Report.
func Probe(cfg Config) Report {
	var r Report
	d, err := Open(cfg)
	if err == nil {
		r.CUDA = versionString(d.Version())
		r.DriverVersion = d.driverVersionString()
		if r.Devices, err = d.Devices(); err == nil && len(r.Devices) == 0 {
			err = &Error{Library: d.libs.CUDA.File(), Call: "cuDeviceGetCount", Detail: "0 devices", Hint: "no GPU is visible: check `nvidia-smi` and CUDA_VISIBLE_DEVICES", kind: ErrNoDevice}
		}
		if err == nil && r.Devices[0].ComputeCapability() < MinComputeCapability {
			info := r.Devices[0]
			err = &Error{Library: d.libs.CUDA.File(), Call: "Context", Detail: info.Name, Hint: "gidedge's CUDA kernels need compute capability 8.0 or newer", kind: ErrUnavailable}
		}
		if berr := d.loadCUBLAS(); err == nil {
			err = berr
		}
		_ = d.loadCUDNN() // optional: reported in Libraries
	}
	r.Err = err
	l := loaded
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, info := range []*LibraryInfo{&l.CUDA, &l.NVML, &l.CUBLAS, &l.CUBLASLt, &l.CUDNN} {
		c := *info
		if c.Err == nil && !c.Found() {
			c.Err = errors.New("not searched: the CUDA driver did not load")
			if info == &l.CUDA {
				c.Err = err
			}
		}
		r.Libraries = append(r.Libraries, c)
	}
	return r
}
