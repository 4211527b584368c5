// Package optim holds the optimizers (AdamW with PyTorch semantics, SGD),
// learning-rate schedules and global-norm gradient clipping used by the
// trainers. Optimizers work on one contiguous float32 weight buffer and its
// gradient buffer (qwen2.Params.Flat and .Grad); the parameters inside it are
// described by Segments, which say where each tensor lies and whether it
// gets weight decay. Optimizer state is kept as flat float32 slices aligned
// with the weights, so it can be saved and restored bit for bit.
//
// Element-wise updates are split into fixed chunks over goroutines; every
// element is computed the same way whatever the split, so results do not
// depend on the number of workers. Reductions (the gradient norm) sum fixed
// chunks in a fixed order, so they are reproducible run to run.
package optim
