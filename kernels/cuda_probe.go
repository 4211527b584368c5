package kernels

import (
	"fmt"
	"strings"
)

// CUDAReport is what Probe found: each library's path and version, or why
// it is unavailable, and the devices.
type CUDAReport struct {
	DriverPath    string
	DriverVersion int // cuDriverGetVersion; 0 when not loaded
	DriverErr     error
	Devices       []DeviceInfo
	DevicesErr    error

	NVRTCPath    string
	NVRTCVersion string
	NVRTCErr     error

	CublasLtPath    string
	CublasLtVersion string
	CublasLtErr     error

	// NCCL is optional: only multi-GPU runs need it, so its absence does
	// not make CUDA unavailable.
	NCCLPath    string
	NCCLVersion string
	NCCLErr     error
}

// Probe loads the driver, NVRTC and cuBLASLt and lists the devices. It never
// fails; what is missing is recorded in the report. NVRTC is looked for even
// without a driver (it compiles without a GPU: the CI kernel check), and,
// when a driver is present, no newer than what the driver can load unless
// opts already bound it.
func Probe(opts CUDALibOptions) *CUDAReport {
	r := &CUDAReport{}
	drv, err := LoadDriver(opts)
	if err != nil {
		r.DriverErr = err
	} else {
		r.DriverPath, r.DriverVersion = drv.Path, drv.Version
		r.Devices, r.DevicesErr = drv.Devices()
		if opts.NVRTCMaxVersion == 0 {
			opts.NVRTCMaxVersion = drv.Version
		}
	}
	if n, err := LoadNVRTC(opts); err != nil {
		r.NVRTCErr = err
	} else {
		r.NVRTCPath, r.NVRTCVersion = n.Path, n.Version()
	}
	if l, err := LoadCublasLt(opts); err != nil {
		r.CublasLtErr = err
	} else {
		r.CublasLtPath, r.CublasLtVersion = l.Path, l.VersionString()
	}
	if n, err := LoadNCCL(opts); err != nil {
		r.NCCLErr = err
	} else {
		r.NCCLPath, r.NCCLVersion = n.Path, n.VersionString()
	}
	return r
}

// Available reports whether the engine can run on a GPU: the driver, NVRTC
// and cuBLASLt all loaded and at least one device is visible.
func (r *CUDAReport) Available() bool {
	return r.Reason() == ""
}

// Reason is why CUDA is unavailable, "" when it is available.
func (r *CUDAReport) Reason() string {
	switch {
	case r.DriverErr != nil:
		return r.DriverErr.Error()
	case r.DevicesErr != nil:
		return r.DevicesErr.Error()
	case len(r.Devices) == 0:
		return "the CUDA driver sees no device"
	case r.NVRTCErr != nil:
		return r.NVRTCErr.Error()
	case r.CublasLtErr != nil:
		return r.CublasLtErr.Error()
	}
	return ""
}

// String is the one-line summary, e.g.
// "cuda: unavailable (cuda driver: libcuda.so.1: cannot open shared object
// file: No such file or directory); nvrtc 11.8 found (libnvrtc.so.11.2);
// cublaslt: not found (...)".
func (r *CUDAReport) String() string {
	var parts []string
	if r.DriverErr != nil {
		parts = append(parts, fmt.Sprintf("cuda: unavailable (%s)", bare(r.DriverErr, "cuda driver")))
	} else {
		var devs []string
		for _, d := range r.Devices {
			devs = append(devs, fmt.Sprintf("%d: %s sm_%d%d", d.Ordinal, d.Name, d.Major, d.Minor))
		}
		if r.DevicesErr != nil {
			devs = append(devs, "error: "+r.DevicesErr.Error())
		}
		if len(devs) == 0 {
			devs = append(devs, "no device")
		}
		parts = append(parts, fmt.Sprintf("cuda: driver %s (%s), %s", cudaVersionString(r.DriverVersion), r.DriverPath, strings.Join(devs, ", ")))
	}
	if r.NVRTCErr != nil {
		parts = append(parts, fmt.Sprintf("nvrtc: not found (%s)", bare(r.NVRTCErr, "nvrtc")))
	} else {
		parts = append(parts, fmt.Sprintf("nvrtc %s found (%s)", r.NVRTCVersion, r.NVRTCPath))
	}
	if r.CublasLtErr != nil {
		parts = append(parts, fmt.Sprintf("cublaslt: not found (%s)", bare(r.CublasLtErr, "cublaslt")))
	} else {
		parts = append(parts, fmt.Sprintf("cublaslt %s found (%s)", r.CublasLtVersion, r.CublasLtPath))
	}
	return strings.Join(parts, "; ")
}

// Detail is a multi-line report for `purpcode device`: one line per
// library and per device with memory, SM count and NVRTC architecture.
func (r *CUDAReport) Detail() string {
	var b strings.Builder
	if r.DriverErr != nil {
		fmt.Fprintf(&b, "driver:   unavailable: %s\n", bare(r.DriverErr, "cuda driver"))
	} else {
		fmt.Fprintf(&b, "driver:   CUDA %s (%s)\n", cudaVersionString(r.DriverVersion), r.DriverPath)
	}
	if r.NVRTCErr != nil {
		fmt.Fprintf(&b, "nvrtc:    unavailable: %s\n", bare(r.NVRTCErr, "nvrtc"))
	} else {
		fmt.Fprintf(&b, "nvrtc:    %s (%s)\n", r.NVRTCVersion, r.NVRTCPath)
	}
	if r.CublasLtErr != nil {
		fmt.Fprintf(&b, "cublaslt: unavailable: %s\n", bare(r.CublasLtErr, "cublaslt"))
	} else {
		fmt.Fprintf(&b, "cublaslt: %s (%s)\n", r.CublasLtVersion, r.CublasLtPath)
	}
	if r.NCCLErr != nil {
		fmt.Fprintf(&b, "nccl:     unavailable (multi-GPU only): %s\n", bare(r.NCCLErr, "nccl"))
	} else {
		fmt.Fprintf(&b, "nccl:     %s (%s)\n", r.NCCLVersion, r.NCCLPath)
	}
	if r.DevicesErr != nil {
		fmt.Fprintf(&b, "devices:  error: %v\n", r.DevicesErr)
	}
	for _, d := range r.Devices {
		fmt.Fprintf(&b, "device %d: %s, sm_%d%d (%s), %d SMs, %.1f GiB, %d KiB shared/block\n",
			d.Ordinal, d.Name, d.Major, d.Minor, d.Arch(), d.SMs, float64(d.TotalMem)/(1<<30), d.MaxSharedOptin/1024)
	}
	if reason := r.Reason(); reason != "" {
		fmt.Fprintf(&b, "status:   unavailable: %s\n", reason)
	} else {
		fmt.Fprintf(&b, "status:   available\n")
	}
	return b.String()
}

// bare drops the loader's own "name: " prefix where the report already
// names the library.
func bare(err error, prefix string) string { return strings.TrimPrefix(err.Error(), prefix+": ") }
