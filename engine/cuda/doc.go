// Package cuda is the engine's CUDA backend: engine.Backend on the
// embedded kernels (package kernels) and cuBLASLt, on a real GPU or on the
// PTX emulator (--device cuda-emu), which runs the same PTX in pure Go so
// that every op is tested in `make test` on machines without a GPU.
//
// Storage follows ../shared/design.md: activations and compute weights in
// bf16, master weights, gradients, AdamW moments, norms' rstd and
// attention's lse in fp32; GEMMs take bf16 operands and accumulate in fp32.
// All work is queued on the legacy default stream, so host copies into the
// reused scratch buffers (ids, positions, targets) are ordered after the
// kernels that read the previous contents.
//
// The ops' semantics are the CPU backend's (package engine); the
// conformance tests here state how far each result may be from it.
package cuda
