package cuda

import (
	"fmt"

	"purpcode/engine"
	"purpcode/kernels"
)

// AdamW runs adamw_step over one contiguous range: master, grad, m, v F32
// and compute (bf16) receiving the updated weights. Every op is an
// explicit round-to-nearest intrinsic in the CPU's order, so the master
// weights are bit-identical with the CPU backend's update.
func (b *Backend) AdamW(master, compute, grad, m, v *engine.Tensor, p kernels.AdamWStep) {
	mustDev("AdamW", master, compute, grad, m, v)
	n := master.Numel()
	if grad.Numel() != n || m.Numel() != n || v.Numel() != n || compute.Numel() != n {
		panic(fmt.Sprintf("cuda.AdamW: master %d, compute %d, grad %d, m %d, v %d values", n, compute.Numel(), grad.Numel(), m.Numel(), v.Numel()))
	}
	wb := kernels.DevicePtr(0)
	if compute != master {
		mustType("AdamW", "compute", compute, engine.BF16)
		wb = compute.Dev
	}
	b.launch("adamw_step", grid1(n, 256), block(256), master.Dev, wb, m.Dev, v.Dev, grad.Dev, int64(n),
		float32(1), p.DecayMul, p.B1c, p.B2, p.B2c, p.Eps, p.StepSize, p.Bc2)
}

// sumsqBlocks is the fixed number of partial sums of SumSquares: the sum
// order depends on it, not on the device.
const sumsqBlocks = 64

// SumSquares sums g^2 in float64: per-block partial sums on the device,
// added on the host in block order.
func (b *Backend) SumSquares(g *engine.Tensor) float64 {
	mustDev("SumSquares", g)
	mustType("SumSquares", "g", g, engine.F32)
	n := g.Numel()
	part := b.buf("sumsq.partial", 8*sumsqBlocks)
	b.launch("sumsq_partial", grid1(sumsqBlocks, 1), block(256), part, g.Dev, int64(n))
	var ps [sumsqBlocks]float64
	check("SumSquares", b.ctx.Synchronize(kernels.Stream{}))
	check("SumSquares", b.ctx.Download(ps[:], part))
	var s float64
	for _, p := range ps {
		s += p
	}
	return s
}

// Scale multiplies an F32 tensor by s in place.
func (b *Backend) Scale(t *engine.Tensor, s float32) {
	mustDev("Scale", t)
	mustType("Scale", "t", t, engine.F32)
	n := t.Numel()
	b.launch("scale_f32", grid1(n, 256), block(256), t.Dev, s, int64(n))
}
