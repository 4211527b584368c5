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
//
// A device backend may hold less than the whole fp32 master (see
// WeightsOptions): a ZeRO-1 rank keeps only its chunk, since the optimizer
// updates nothing else, and an inference-only model keeps no master and no
// gradients, since nothing updates it. Code that reads the master whole
// (checkpoints) must check MasterWhole and, for a ZeRO-1 shard, have the
// optimizer gather it into Host first (optim.PrepareSave).
type Weights struct {
	// Master (F32) is the weights the optimizer updates: the flat elements
	// [MasterLo, MasterLo+Master.Numel()), all n of them unless the
	// storage is partial; nil when this backend holds none of it
	// (inference-only, or a ZeRO-1 chunk offloaded to host memory).
	Master   *Tensor
	MasterLo int
	Compute  *Tensor // (n) in ActDType: what the ops read (Master itself on the CPU)
	Grad     *Tensor // (n) F32 gradients, accumulated by backward ops; nil inference-only
	// Host is the host buffer the weights were made from (the model's host
	// copy, n values) and HostCurrent whether it holds the master's current
	// values. A partial master is read whole through it: it is current
	// when the weights are made, and a ZeRO-1 optimizer clears the flag
	// when it updates its chunk and sets it again when it gathers every
	// rank's chunk into Host. A whole master is read directly; the flag
	// means nothing then.
	Host        []float32
	HostCurrent bool
}

// Len is the number of parameters (the compute copy's elements).
func (w *Weights) Len() int { return w.Compute.Numel() }

// MasterWhole reports whether Master holds every parameter.
func (w *Weights) MasterWhole() bool {
	return w.Master != nil && w.MasterLo == 0 && w.Master.Numel() == w.Len()
}

// Inference reports whether the weights are inference-only (no gradients
// to train with).
func (w *Weights) Inference() bool { return w.Grad == nil }

// WeightsOptions says what a device backend allocates besides the compute
// copy (NewWeightsWith). The zero value is the whole fp32 master and the
// gradients, what NewWeights makes.
type WeightsOptions struct {
	// Inference: the compute copy only, no master and no gradients (a
	// frozen reference policy, or a model that only generates).
	Inference bool
	// Partial: the master holds only the elements [Lo, Hi) (a ZeRO-1
	// rank's chunk; Lo == Hi: none of it, the chunk living in host memory
	// with optimizer offload).
	Partial bool
	Lo, Hi  int
}

// PartialWeights is a backend whose weights need not include the whole
// fp32 master and the gradients (a device backend; see WeightsOptions).
type PartialWeights interface {
	NewWeightsWith(host, grad []float32, o WeightsOptions) *Weights
}

// NewWeightsWith makes be's flat parameter storage for host weights as o
// says. A backend whose compute copy is the master (the CPU) keeps it
// whole whatever o says, since it costs nothing more. With o.Inference
// there are no gradients and grad may be nil. A bad range is a
// programming error and panics.
func NewWeightsWith(be Backend, host, grad []float32, o WeightsOptions) *Weights {
	if o.Partial && (o.Lo < 0 || o.Hi < o.Lo || o.Hi > len(host)) {
		panic(fmt.Sprintf("engine.NewWeightsWith: master range [%d, %d) of %d weights", o.Lo, o.Hi, len(host)))
	}
	if pw, ok := be.(PartialWeights); ok {
		return pw.NewWeightsWith(host, grad, o)
	}
	// A backend without partial storage keeps everything; an
	// inference-only model just does not use its gradients.
	if grad == nil {
		grad = make([]float32, len(host))
	}
	w := be.NewWeights(host, grad)
	if o.Inference {
		w.Grad = nil
	}
	return w
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
