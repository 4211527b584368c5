package ptxemu_test

import (
	"errors"
	"flag"
	"sync"
	"testing"

	"purpcode/kernels"
	"purpcode/kernels/ptxemu"
)

// -nvrtc-required turns "NVRTC not found" from a skip into a failure, as in
// package kernels, so CI cannot silently stop running the NVRTC tests.
var nvrtcRequired = flag.Bool("nvrtc-required", false, "fail (instead of skip) when NVRTC cannot be loaded")

var nvrtcOnce = struct {
	sync.Once
	n   *kernels.NVRTC
	err error
}{}

func nvrtc(t testing.TB) *kernels.NVRTC {
	t.Helper()
	nvrtcOnce.Do(func() { nvrtcOnce.n, nvrtcOnce.err = kernels.LoadNVRTC(kernels.CUDALibOptions{}) })
	if nvrtcOnce.err != nil {
		if *nvrtcRequired {
			t.Fatalf("NVRTC required but not loadable: %v", nvrtcOnce.err)
		}
		t.Skipf("NVRTC not available, test skipped: %v (install Debian's libnvrtc11.2: scripts/install-deps.sh)", nvrtcOnce.err)
	}
	return nvrtcOnce.n
}

// compileCUDA compiles a CUDA C source exactly as the engine does (the
// common.cuh prelude is not prepended: test sources are self-contained).
func compileCUDA(t testing.TB, name, src string) []byte {
	t.Helper()
	ptx, log, err := nvrtc(t).Compile(src, name, "compute_80", kernels.CUDACompileOptions)
	if err != nil {
		t.Fatalf("compile %s: %v\n%s", name, err, log)
	}
	return ptx
}

// TestEveryEmbeddedKernelDecodes is the check that makes a new kernel fail
// loudly: every .entry of every embedded source, compiled for compute_80,
// parses and pre-decodes, with no opcode the emulator does not implement.
func TestEveryEmbeddedKernelDecodes(t *testing.T) {
	srcs := kernels.KernelSources()
	if len(srcs) == 0 {
		t.Fatal("no embedded kernel sources")
	}
	for _, src := range srcs {
		t.Run(src.Name, func(t *testing.T) {
			ptx := compileCUDA(t, src.Name, src.Text)
			dev := ptxemu.NewDevice(ptxemu.Options{})
			m, err := dev.LoadModule(ptx)
			if err != nil {
				var f *ptxemu.Fault
				if errors.As(err, &f) {
					t.Fatalf("%s: %v", src.Name, f)
				}
				t.Fatal(err)
			}
			for _, e := range src.Entries {
				k, err := m.Kernel(e)
				if err != nil {
					t.Error(err)
					continue
				}
				if len(k.Params()) == 0 {
					t.Errorf("%s has no parameters", e)
				}
			}
		})
	}
}
