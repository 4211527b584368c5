package kernels

import (
	"embed"
	"fmt"
	"path"
	"regexp"
	"sort"
	"strings"
)

// The CUDA C kernel sources, compiled by NVRTC at run time for the GPU
// found. cuda/common.cuh is a prelude prepended to every .cu file (NVRTC
// gets one self-contained string: no include paths, no toolkit headers).
//
//go:embed cuda/common.cuh cuda/*.cu
var cudaFS embed.FS

// KernelSource is one compilation unit.
type KernelSource struct {
	// Name is the file name (e.g. "rmsnorm.cu"), also the NVRTC program
	// name that compile errors refer to.
	Name string
	// Text is the prelude followed by the file, exactly what NVRTC compiles
	// and what the PTX cache key hashes.
	Text string
	// Entries are the extern "C" __global__ kernels the source defines,
	// in source order: what cuModuleGetFunction can look up.
	Entries []string
}

// CUDAArchs are the virtual architectures every source must compile for
// (A100 and H100 class; the CI check). Hopper-only code sits behind
// __CUDA_ARCH__ >= 900 checks or in compute_90a-only sources, never here.
var CUDAArchs = []string{"compute_80", "compute_90"}

// CUDACompileOptions are the NVRTC options the engine compiles with. No
// --use_fast_math: the CPU op is the numerical spec, and fast division and
// flushed denormals would widen the tolerances of every comparison.
var CUDACompileOptions = []string{"--std=c++17", "-default-device"}

var entryRE = regexp.MustCompile(`extern\s+"C"\s+__global__\s+(?:__launch_bounds__\([^)]*\)\s+)?void\s+(?:__launch_bounds__\([^)]*\)\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*\(`)

// KernelSources returns every embedded source, sorted by name.
func KernelSources() []KernelSource {
	prelude, err := cudaFS.ReadFile("cuda/common.cuh")
	if err != nil {
		panic("kernels: embedded cuda/common.cuh missing: " + err.Error())
	}
	files, err := cudaFS.ReadDir("cuda")
	if err != nil {
		panic("kernels: embedded cuda directory missing: " + err.Error())
	}
	var out []KernelSource
	for _, f := range files {
		if !strings.HasSuffix(f.Name(), ".cu") {
			continue
		}
		body, err := cudaFS.ReadFile(path.Join("cuda", f.Name()))
		if err != nil {
			panic("kernels: embedded " + f.Name() + ": " + err.Error())
		}
		ks := KernelSource{Name: f.Name(), Text: string(prelude) + "\n#line 1 \"" + f.Name() + "\"\n" + string(body)}
		for _, m := range entryRE.FindAllStringSubmatch(string(body), -1) {
			ks.Entries = append(ks.Entries, m[1])
		}
		out = append(out, ks)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// KernelSourceByName returns the embedded source called name ("adamw.cu").
func KernelSourceByName(name string) (KernelSource, error) {
	for _, s := range KernelSources() {
		if s.Name == name {
			return s, nil
		}
	}
	return KernelSource{}, fmt.Errorf("no embedded CUDA source %q", name)
}
