package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"

	"purpcode/engine"
	"purpcode/engine/cuda"
	"purpcode/kernels"
)

// deviceChoice is the value of --device: auto, cpu, cuda, cuda:N or
// cuda-emu.
type deviceChoice string

func (d *deviceChoice) String() string { return string(*d) }

func (d *deviceChoice) Set(s string) error {
	if s != "auto" {
		if _, err := cuda.ParseDevice(s); err != nil {
			return fmt.Errorf("want auto, cpu, cuda, cuda:N or %s, got %q", cuda.Emulated, s)
		}
	}
	*d = deviceChoice(s)
	return nil
}

// deviceFlags are the backend-selection flags a compute command adopts
// with addDeviceFlag.
type deviceFlags struct {
	device   deviceChoice
	cudaLibs *string
}

// addDeviceFlag registers --device (default auto) and --cuda-libs on fs.
func addDeviceFlag(fs *flag.FlagSet) *deviceFlags {
	f := &deviceFlags{device: "auto"}
	fs.Var(&f.device, "device", "compute device: auto (cuda when usable, else cpu), cpu, cuda, cuda:N or "+cuda.Emulated+" (the PTX emulator; tiny shapes only); in a launch whose ranks see several GPUs, cuda is the GPU numbered LOCAL_RANK (torchrun's convention; cuda:N wins)")
	f.cudaLibs = fs.String("cuda-libs", "", "directory searched first for libcuda, NVRTC and cuBLASLt ($PURPCODE_CUDA_LIBS)")
	return f
}

// libOptions maps flags and the environment to the kernels' library search:
// the override directory (flag, else $PURPCODE_CUDA_LIBS) and the Python
// environments whose pip-installed nvidia-* wheels may hold the libraries.
func (f *deviceFlags) libOptions() kernels.CUDALibOptions {
	dir := ""
	if f != nil && f.cudaLibs != nil {
		dir = *f.cudaLibs
	}
	return cudaLibOptions(dir)
}

func cudaLibOptions(dir string) kernels.CUDALibOptions {
	if dir == "" {
		dir = os.Getenv("PURPCODE_CUDA_LIBS")
	}
	var prefixes []string
	for _, env := range []string{"VIRTUAL_ENV", "CONDA_PREFIX"} {
		if p := os.Getenv(env); p != "" {
			prefixes = append(prefixes, p)
		}
	}
	if home, err := os.UserHomeDir(); err == nil {
		prefixes = append(prefixes, filepath.Join(home, ".local"))
	}
	// The python3 on PATH: a venv that is first on PATH without being
	// activated still holds pip's CUDA wheels.
	py, _ := exec.LookPath("python3")
	return kernels.CUDALibOptions{Dir: dir, PythonPrefixes: prefixes, Python3: py}
}

// resolve picks the device for a command: "cpu", "cuda", "cuda:N" or
// "cuda-emu". --device cuda with CUDA unusable is an error naming the
// reason; auto falls back to the CPU and writes a one-line notice to stderr.
func (f *deviceFlags) resolve(stderr io.Writer) (string, error) {
	dev, _, err := f.resolveReport(stderr)
	return dev, err
}

// resolveReport is resolve, also returning the probe's report (nil when
// the choice needed no probe: cpu, cuda-emu).
func (f *deviceFlags) resolveReport(stderr io.Writer) (string, *kernels.CUDAReport, error) {
	var rep *kernels.CUDAReport
	dev, notice, err := chooseDevice(string(f.device), func() *kernels.CUDAReport {
		rep = kernels.Probe(f.libOptions())
		return rep
	})
	if notice != "" {
		fmt.Fprintln(stderr, notice)
	}
	return dev, rep, err
}

// rankGPU applies torchrun's convention to a rank of a launch: a plain
// "cuda" (given, or auto's choice) on a node whose processes see several
// GPUs is the GPU numbered LOCAL_RANK, so the ranks of a node spread over
// its GPUs with one command line for all; cuda:N names a GPU explicitly and
// wins. With one GPU visible (a launcher that sets CUDA_VISIBLE_DEVICES per
// rank, or a single GPU) "cuda" is that one.
func rankGPU(dev string, localRank, gpus int) (string, error) {
	if dev != "cuda" || gpus <= 1 {
		return dev, nil
	}
	if localRank >= gpus {
		return "", fmt.Errorf("--device cuda: LOCAL_RANK %d, but this node's processes see %d GPUs (cuda picks the GPU numbered LOCAL_RANK): start at most %d ranks per node, or name each rank's GPU with --device cuda:N or CUDA_VISIBLE_DEVICES", localRank, gpus, gpus)
	}
	return fmt.Sprintf("cuda:%d", localRank), nil
}

// chooseDevice is resolve's decision, with the probe injected for tests.
// The probe runs only when CUDA is asked for or may be used.
func chooseDevice(requested string, probe func() *kernels.CUDAReport) (device, notice string, err error) {
	switch requested {
	case "cpu", cuda.Emulated:
		return requested, "", nil
	case "auto", "":
		requested = "auto"
	default:
		if _, err := cuda.ParseDevice(requested); err != nil {
			return "", "", fmt.Errorf("--device: %w", err)
		}
	}
	r := probe()
	if r.Available() {
		if requested == "auto" {
			return "cuda", "", nil
		}
		return requested, "", nil
	}
	if requested != "auto" {
		return "", "", fmt.Errorf("--device %s: cuda unavailable: %s (purpcode device prints what was found; --cuda-libs or $PURPCODE_CUDA_LIBS names a library directory)", requested, r.Reason())
	}
	return "cpu", "cuda unavailable: " + r.Reason() + "; using cpu", nil
}

// deviceReport is the text `purpcode device` prints: one line per library
// and device, a status line, and the one-line summary other commands log.
func deviceReport(opts kernels.CUDALibOptions) string {
	r := kernels.Probe(opts)
	return r.Detail() + "summary:  " + r.String() + "\n"
}

func runDevice(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("device", stderr)
	cudaLibs := fs.String("cuda-libs", "", "directory searched first for libcuda, NVRTC and cuBLASLt ($PURPCODE_CUDA_LIBS)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "purpcode device: unexpected arguments %q\n", fs.Args())
		return errUsage
	}
	_, err := io.WriteString(stdout, deviceReport(cudaLibOptions(*cudaLibs)))
	return err
}

// open builds the backend resolve picks and prints the choice (one line on
// stderr): the CPU backend from cpuFlags, or a CUDA device (real or
// emulated). The caller closes a CUDA backend with the returned func.
func (f *deviceFlags) open(cf *cpuFlags, stderr io.Writer) (engine.Backend, func(), error) {
	dev, err := f.resolve(stderr)
	if err != nil {
		return nil, nil, err
	}
	return f.openDevice(dev, cf, false, stderr)
}

// openDevice builds the backend of a resolved device and prints it.
// primary computes a real GPU's work in its primary context, which NCCL
// binds (a rank of a multi-process run).
func (f *deviceFlags) openDevice(dev string, cf *cpuFlags, primary bool, stderr io.Writer) (engine.Backend, func(), error) {
	if dev == "cpu" {
		c := cf.cpu()
		fmt.Fprintf(stderr, "device: %s\n", c.Describe())
		return c, func() {}, nil
	}
	b, err := cuda.Open(dev, cuda.Options{Libs: f.libOptions(), PrimaryContext: primary && isGPU(dev)})
	if err != nil {
		return nil, nil, err
	}
	fmt.Fprintf(stderr, "device: %s\n", b.Describe())
	return b, func() { _ = b.Close() }, nil
}

// isGPU reports whether a resolved device is a real GPU (not the CPU or
// the emulator).
func isGPU(dev string) bool { return dev != "cpu" && dev != cuda.Emulated }

// cpuOnly is the backend of a command whose work runs on the CPU backend
// only for now (generation, serving, evaluation: the rollout engine has no
// device KV cache yet). An explicit CUDA device is refused in one line;
// auto picks the CPU.
func (f *cpuFlags) cpuOnly(what string) (*engine.CPU, error) {
	if d := string(f.dev.device); d != "auto" && d != "cpu" {
		return nil, fmt.Errorf("%s --device %s: runs on the CPU backend only for now (the rollout engine has no device KV cache yet); use --device cpu", what, d)
	}
	return f.cpu(), nil
}
