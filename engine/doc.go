// Package engine holds the tensor type and the numerical operations of the
// model, each as an explicit forward/backward pair.
//
// Shapes follow PyTorch's row-major convention: activations are (B, T, C)
// flattened to (N, C) with N = B*T rows. Every op documents whether its
// output is overwritten or accumulated into; backward ops accumulate into
// parameter gradients (so micro-batches sum) and overwrite input gradients
// unless stated. A shape mismatch is a programming error and panics with both
// shapes; user input never reaches an op unchecked.
//
// The CPU ops check shapes and split rows across goroutines; GEMMs go to
// the BLAS and the passes between them to the vector kernels of package
// kernels (C with cgo, Go otherwise).
//
// The CPU implementation is the numerical reference for every other backend:
// float32 storage and compute, float64 accumulation where a reduction would
// otherwise lose the 1e-4 agreement with PyTorch's float64 reference.
package engine
