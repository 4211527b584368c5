// Package optim holds the optimizers (AdamW with PyTorch semantics, SGD),
// learning-rate schedules and global-norm gradient clipping used by the
// trainers. Optimizers work on a model's flat weights on a backend
// (engine.Weights: fp32 master, compute copy, fp32 gradients); the
// parameters inside are described by Segments, which say where each tensor
// lies and whether it gets weight decay. AdamW runs on the backend (device
// memory under CUDA) and mirrors its state into flat host slices aligned with
// the weights, so checkpoints save and restore it bit for bit.
//
// ZeRO1 is AdamW with the fp32 master weights and the moments sharded
// over a data-parallel group (ZeRO stage 1), optionally kept in host memory
// (optimizer offload); each rank updates its chunk and the updated compute
// weights are all-gathered. Its steps and checkpoint methods are
// collectives (the Collective interface; StepContext and PrepareSave serve
// any Optimizer).
//
// Every element's update is independent, so results do not depend on how
// a backend splits the work; the gradient norm sums fixed blocks in a fixed
// order, so it is reproducible run to run.
package optim
