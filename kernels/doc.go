// Package kernels is the only package in purpcode that uses cgo. It binds
// native accelerator libraries at run time with dlopen/dlsym instead of at
// link time, so `go build` needs nothing beyond Go, gcc and libc (dlfcn.h,
// -ldl) on any machine, while a machine that has the libraries installed runs
// fast ("build anywhere, accelerate at run time").
//
// Today it loads OpenBLAS (Debian's libopenblas0: libopenblas.so.0) and binds
// cblas_sgemm, the CPU GEMM under every matrix product of the engine. When
// the library is missing or lacks the symbol, LoadBLAS falls back to gonum's
// pure-Go BLAS and records why, so callers never have to handle a load error.
// OpenBLAS's own thread settings (OPENBLAS_NUM_THREADS and friends) are left
// to the environment. (Running it single-threaded and splitting each GEMM
// across goroutines instead was measured: 565 vs 640 tokens/s for the bench
// model's training step on 2 cores, as each block packs the shared operand
// again.)
//
// The vector kernels (vec.go) are the training step's passes between GEMMs:
// causal softmax and its gradient, cross-entropy rows, SwiGLU, RMSNorm, RoPE,
// AdamW. With cgo they are C in this package's preamble, compiled -O3 with
// OpenMP SIMD loops and cloned for AVX2+FMA and the baseline x86-64 ISA (the
// loader picks one per CPU); without cgo the Go reference versions run, and
// the tests hold the two to each other.
//
// The loaders for the CUDA driver (libcuda.so.1), NVRTC and cuBLASLt live
// here too, following the same pattern: a small C preamble with
// function-pointer typedefs and call wrappers, resolved symbols cached in a Go
// value, and a clear reason plus the CPU path when a library is absent.
// NCCL (libnccl.so.2, cuda_nccl*.go) is loaded the same way for the
// multi-GPU collectives of package dist. Keeping every
// `import "C"` in this one package keeps the rest of the project pure Go and
// the cgo surface reviewable in one place.
//
// A Context is a real CUDA context or the PTX emulator of kernels/ptxemu
// (NewEmulatedContext) behind the same methods; EmulatedCublasLt serves
// cuBLASLt's GEMM there with a reference GEMM. Every launch, on both, is
// checked against the kernel's .param list parsed from its PTX (count,
// size and class of each argument), the device's launch limits, and the
// preconditions of our kernels (kernelRules: block shapes, D <= 256, ...).
//
// What the emulator cannot tell: timing, occupancy, bank conflicts, the
// tensor cores' accumulation order (the reference GEMM and mma sum in a
// fixed order), the real error of .approx instructions (computed exactly
// there), and anything about cuBLASLt's own kernels; those need a GPU.
package kernels
