package engine

import (
	"fmt"
	"runtime"
	"sync"
)

// Sgemmer is the row-major single-precision GEMM the CPU ops are built on:
// C = alpha*op(A)*op(B) + beta*C with op(A) m x k and op(B) k x n.
// kernels.BLAS (OpenBLAS through dlopen, or gonum) implements it.
type Sgemmer interface {
	Sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int)
	Name() string
}

// CPU runs the ops on the host. It is safe for concurrent use by several
// goroutines as long as they write to different tensors.
type CPU struct {
	blas    Sgemmer
	workers int

	// Reused per-worker scratch, so the steady state does not allocate.
	attnPool sync.Pool
	lossPool sync.Pool
}

// NewCPU returns a CPU backend using blas for matrix products and up to
// workers goroutines for element-wise and per-head work (0 = GOMAXPROCS).
func NewCPU(blas Sgemmer, workers int) *CPU {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	return &CPU{blas: blas, workers: workers}
}

// BLASName reports which GEMM implementation is active.
func (c *CPU) BLASName() string { return c.blas.Name() }

// Workers is the goroutine fan-out used by row-parallel ops.
func (c *CPU) Workers() int { return c.workers }

// parallel splits [0, n) into contiguous chunks of at least minChunk items
// and runs fn on them concurrently. Work is static so results never depend on
// scheduling.
func (c *CPU) parallel(n, minChunk int, fn func(lo, hi int)) {
	if n <= 0 {
		return
	}
	parts := c.workers
	if minChunk < 1 {
		minChunk = 1
	}
	if maxParts := (n + minChunk - 1) / minChunk; parts > maxParts {
		parts = maxParts
	}
	if parts <= 1 {
		fn(0, n)
		return
	}
	var wg sync.WaitGroup
	chunk := (n + parts - 1) / parts
	for lo := 0; lo < n; lo += chunk {
		hi := min(lo+chunk, n)
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(lo, hi)
		}()
	}
	wg.Wait()
}

// rowsCols views a tensor as a matrix: all leading dims are rows.
func rowsCols(t *Tensor) (int, int) {
	if len(t.Shape) == 0 {
		return 1, 1
	}
	c := t.Shape[len(t.Shape)-1]
	if c == 0 {
		return 0, 0
	}
	return len(t.F32) / c, c
}

func mustF32(op string, ts ...*Tensor) {
	for i, t := range ts {
		if t == nil {
			continue
		}
		if t.DType != F32 || len(t.F32) != t.Numel() {
			panic(fmt.Sprintf("engine.%s: operand %d must be a float32 tensor with data for shape %s (dtype %s, %d values)",
				op, i, ShapeString(t.Shape), t.DType, len(t.F32)))
		}
	}
}

func mustShape(op, what string, t *Tensor, want ...int) {
	if !SameShape(t.Shape, want) {
		panic(fmt.Sprintf("engine.%s: %s has shape %s, want %s", op, what, ShapeString(t.Shape), ShapeString(want)))
	}
}

var _ Backend = (*CPU)(nil)

// Name is "cpu".
func (c *CPU) Name() string { return "cpu" }

// Describe names the GEMM library and the goroutine fan-out.
func (c *CPU) Describe() string {
	return fmt.Sprintf("cpu (%s, %d workers)", c.blas.Name(), c.workers)
}

// ActDType is F32: the CPU computes and stores everything in float32.
func (c *CPU) ActDType() DType { return F32 }

// Alloc returns a zeroed host tensor; the CPU computes in float32 only.
func (c *CPU) Alloc(dt DType, shape ...int) *Tensor {
	if dt != F32 {
		panic("engine.CPU.Alloc: dtype " + dt.String() + ", the CPU backend stores F32 only")
	}
	return New(shape...)
}

// Free is a no-op: host tensors belong to the garbage collector.
func (c *CPU) Free(*Tensor) {}

// Upload copies src into t.
func (c *CPU) Upload(t *Tensor, src []float32) {
	mustF32("Upload", t)
	if len(src) != len(t.F32) {
		panic(fmt.Sprintf("engine.Upload: %d values into %s", len(src), ShapeString(t.Shape)))
	}
	copy(t.F32, src)
}

// Download copies t into dst.
func (c *CPU) Download(dst []float32, t *Tensor) {
	mustF32("Download", t)
	if len(dst) != len(t.F32) {
		panic(fmt.Sprintf("engine.Download: %s into %d values", ShapeString(t.Shape), len(dst)))
	}
	copy(dst, t.F32)
}

// NewWeights wraps the host buffers: the CPU's master and compute weights
// are one float32 array.
func (c *CPU) NewWeights(host, grad []float32) *Weights {
	return c.NewWeightsWith(host, grad, WeightsOptions{})
}

// NewWeightsWith is NewWeights with options: the master, being the compute
// copy, stays whole whatever o says (ZeRO-1 on the CPU updates its chunk
// of it in place and gathers the rest); with o.Inference there are no
// gradients.
func (c *CPU) NewWeightsWith(host, grad []float32, o WeightsOptions) *Weights {
	w := FromF32(host, len(host))
	ws := &Weights{Master: w, Compute: w, Host: host, HostCurrent: true}
	if !o.Inference {
		ws.Grad = FromF32(grad, len(grad))
	}
	return ws
}

// GatherRows copies rows[i] of src (N, C) into row i of dst (len(rows), C).
func (c *CPU) GatherRows(dst, src *Tensor, rows []int) {
	mustF32("GatherRows", dst, src)
	n, ch := rowsCols(src)
	if dst.Numel() != len(rows)*ch {
		panic(fmt.Sprintf("engine.GatherRows: dst %s for %d rows of %s", ShapeString(dst.Shape), len(rows), ShapeString(src.Shape)))
	}
	for i, r := range rows {
		if r < 0 || r >= n {
			panic(fmt.Sprintf("engine.GatherRows: row %d of %s", r, ShapeString(src.Shape)))
		}
		copy(dst.F32[i*ch:(i+1)*ch], src.F32[r*ch:(r+1)*ch])
	}
}
