package main

import (
	"flag"
	"io"
	"os"
	"strconv"

	"purpcode/engine"
)

// cpuFlags are the backend flags every compute command accepts: the CPU
// backend's settings and the device choice (--device, --cuda-libs).
type cpuFlags struct {
	blasLib *string
	goBLAS  *bool
	threads *int
	dev     *deviceFlags
	// dist is --dist-backend, set by the trainers that register it (nil:
	// auto).
	dist *distBackend
}

func addCPUFlags(fs *flag.FlagSet) *cpuFlags {
	return &cpuFlags{
		blasLib: fs.String("blas", "", "OpenBLAS library path or soname (default: search; $PURPCODE_BLAS)"),
		goBLAS:  fs.Bool("go-blas", false, "use the pure-Go GEMM even when OpenBLAS is available"),
		threads: fs.Int("threads", 0, "goroutines for row-parallel ops (0 = all cores; $PURPCODE_THREADS)"),
		dev:     addDeviceFlag(fs),
	}
}

// backend opens the compute backend --device selects (see deviceFlags.open).
func (f *cpuFlags) backend(stderr io.Writer) (engine.Backend, func(), error) {
	return f.dev.open(f, stderr)
}

// cpu builds the CPU backend; flags win over environment variables.
func (f *cpuFlags) cpu() *engine.CPU {
	lib := *f.blasLib
	if lib == "" {
		lib = os.Getenv("PURPCODE_BLAS")
	}
	threads := *f.threads
	if threads == 0 {
		threads, _ = strconv.Atoi(os.Getenv("PURPCODE_THREADS"))
	}
	return engine.NewDefaultCPU(engine.CPUOptions{BLASLibrary: lib, ForceGoBLAS: *f.goBLAS, Workers: threads})
}
