package engine

import "purpcode/kernels"

// CPUOptions selects the CPU backend's GEMM library and fan-out.
type CPUOptions struct {
	BLASLibrary string // explicit OpenBLAS path or soname; "" searches
	ForceGoBLAS bool   // use gonum's pure-Go GEMM even when OpenBLAS loads
	Workers     int    // goroutines for row-parallel ops; 0 = GOMAXPROCS
}

// NewDefaultCPU loads OpenBLAS through dlopen (gonum when it is absent) and
// returns a CPU backend on it.
func NewDefaultCPU(opts CPUOptions) *CPU {
	b := kernels.LoadBLAS(kernels.BLASOptions{Library: opts.BLASLibrary, ForceGo: opts.ForceGoBLAS})
	return NewCPU(b, opts.Workers)
}
