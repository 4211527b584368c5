package engine

import (
	"fmt"

	"purpcode/kernels"
)

// Backend is the op surface the model, the trainers and the rollout engine
// call: one method per layer op, forward/backward pairs, llm.c style. The
// CPU backend (float32 everywhere) is the numerical reference; the CUDA
// backend (package engine/cuda) stores activations and compute weights in
// bf16 and keeps fp32 master weights, gradients and optimizer state.
//
// Conventions, shared by every implementation:
//   - Tensors passed to an op live on the backend (made by Alloc or by
//     NewWeights' views); ids, positions, segments and targets are host
//     slices, which a device backend uploads per call.
//   - "Activation" tensors have the backend's ActDType; rstd, lse, token
//     losses and every gradient of a parameter are F32.
//   - An output is overwritten unless its doc says accumulated.
//   - Shape or dtype mismatches are programmer errors and panic naming both
//     shapes; data errors (an id outside the vocabulary) panic too, because
//     the model validates batches before they reach an op.
//
// Each op's semantics are documented on the CPU method of the same name.
type Backend interface {
	// Name is the device as the user names it: "cpu", "cuda:0", "cuda-emu".
	Name() string
	// Describe is Name with what the log should say about it (GEMM
	// library and threads; the GPU's model).
	Describe() string
	// ActDType is the storage dtype of activations and compute weights.
	ActDType() DType
	// Alloc returns a zeroed tensor of dtype dt on the backend's device.
	Alloc(dt DType, shape ...int) *Tensor
	// Free releases a tensor made by Alloc (a no-op on the CPU). Views are
	// never freed.
	Free(t *Tensor)
	// Upload copies host values into t, rounding to t's dtype.
	Upload(t *Tensor, src []float32)
	// Download copies t's values, widened to float32, into dst.
	Download(dst []float32, t *Tensor)
	// NewWeights makes the flat parameter storage for host weights (see
	// Weights); the CPU backend wraps host without copying.
	NewWeights(host, grad []float32) *Weights

	Zero(t *Tensor)
	Add(out, a, b *Tensor)
	EmbeddingForward(out, table *Tensor, ids []int32)
	EmbeddingBackward(dtable, dout *Tensor, ids []int32)
	RMSNormForward(out, rstd, x, w *Tensor, eps float64)
	RMSNormBackward(dx, dw, dout, x, w, rstd *Tensor)
	LinearForward(out, x, w, bias *Tensor)
	LinearBackward(dx, dw, db, dout, x, w *Tensor, accumulateDX bool)
	RoPE(x *Tensor, pos []int32, heads int, cos, sin *Tensor, inverse bool)
	AttentionForward(out, lse, q, k, v *Tensor, seg []int32, s AttnShape)
	AttentionBackward(dq, dk, dv, dout, out, lse, q, k, v *Tensor, seg []int32, s AttnShape)
	SwiGLUForward(out, sig, gate, up *Tensor)
	SwiGLUBackward(dgate, dup, dout, gate, up, sig *Tensor)
	// GatherRows copies rows[i] of src (N, C) into row i of dst (len(rows), C).
	GatherRows(dst, src *Tensor, rows []int)
	// Copy copies src into dst (same dtype and element count).
	Copy(dst, src *Tensor)

	// The rollout engine's paged KV cache (see PagedRows).
	PagedKVWrite(kc, vc, k, v *Tensor, p PagedRows)
	PagedAttention(out, q, kc, vc *Tensor, p PagedRows)

	LMHeadLoss(h, w *Tensor, targets []int32, tokLoss, dh, dw *Tensor, scale float32) (float64, int)
	LMHeadTokenStats(h, w *Tensor, targets []int32, st TokenStats)
	LMHeadTokenGrad(h, w *Tensor, targets []int32, a, e []float32, dh, dw *Tensor)

	// AdamW applies one update to a contiguous range of parameters: master
	// and grad F32, m and v the F32 moments; compute, when it is not master,
	// receives the updated weights in ActDType. Every argument has the same
	// number of elements.
	AdamW(master, compute, grad, m, v *Tensor, p kernels.AdamWStep)
	// SumSquares returns the sum of squares of an F32 tensor, accumulated in
	// float64 over fixed blocks in a fixed order (reproducible).
	SumSquares(g *Tensor) float64
	// Scale multiplies an F32 tensor by s in place.
	Scale(t *Tensor, s float32)
}

// Weights is a model's flat parameter storage on a backend, laid out like
// the host buffer it was made from (parameters in table order).
type Weights struct {
	Master  *Tensor // (n) F32: the weights the optimizer updates
	Compute *Tensor // (n) in ActDType: what the ops read (Master itself on the CPU)
	Grad    *Tensor // (n) F32 gradients, accumulated by backward ops
}

// View returns the tensor of shape shape starting at element off of t (a
// host or device tensor), sharing t's storage.
func (t *Tensor) View(off int, shape ...int) *Tensor {
	n := Numel(shape)
	if off < 0 || off+n > t.Numel() {
		panic(fmt.Sprintf("engine.View: %s at offset %d of a tensor of %d elements", ShapeString(shape), off, t.Numel()))
	}
	v := &Tensor{DType: t.DType, Shape: append([]int(nil), shape...)}
	switch {
	case t.Dev != 0:
		v.Dev = t.Dev + kernels.DevicePtr(off*t.DType.Size())
	case t.DType == F32:
		v.F32 = t.F32[off : off+n : off+n]
	default:
		v.Half = t.Half[off : off+n : off+n]
	}
	return v
}

// OnDevice reports whether t's storage is device memory (its F32 and Half
// are then nil and only its backend can read it).
func (t *Tensor) OnDevice() bool { return t.Dev != 0 }

// Memory categories of a backend's allocations (design.md's arenas), for
// memory reports.
const (
	MemWeights     = "weights"     // master and compute weights
	MemGrads       = "grads"       // parameter gradients
	MemOptimizer   = "optimizer"   // optimizer state
	MemActivations = "activations" // training activations and their gradients
	MemKVCache     = "kv_cache"    // the rollout engine's KV pool
	MemDecode      = "decode"      // the rollout engine's step buffers
	MemScratch     = "scratch"     // a backend's own temporaries
	MemOther       = "other"       // anything not tagged
)

// Tagged returns be with every Alloc attributed to category in memory
// reports (see MemoryReporter); a backend that does not account memory
// (the CPU) returns itself.
func Tagged(be Backend, category string) Backend {
	if t, ok := be.(interface{ Tagged(string) Backend }); ok {
		return t.Tagged(category)
	}
	return be
}

// MemoryReporter is a backend that accounts its allocations.
type MemoryReporter interface {
	// PeakBytes is the most bytes held at once, per category and in
	// "total" (the peak of the sum, not the sum of the peaks).
	PeakBytes() map[string]int64
}
