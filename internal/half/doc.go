// Package half converts between float32 and the 16-bit float formats used by
// checkpoints and accelerators: bfloat16 and IEEE 754 binary16.
//
// Conversions to 16 bits round to nearest, ties to even, like PyTorch's
// tensor.to(torch.bfloat16) and numpy's float16 cast, so that a checkpoint we
// write is bit-identical to one PyTorch writes from the same float32 values.
package half
