package engine

import (
	"fmt"
	"sync"

	"purpcode/kernels"
)

// AdamW applies kernels.AdamW to master with grad and the moments m, v,
// split over workers (each element's update is independent, so the split
// does not change a bit). On the CPU compute is master.
func (c *CPU) AdamW(master, compute, grad, m, v *Tensor, p kernels.AdamWStep) {
	mustF32("AdamW", master, compute, grad, m, v)
	n := len(master.F32)
	if len(grad.F32) != n || len(m.F32) != n || len(v.F32) != n || (compute != master && len(compute.F32) != n) {
		panic(fmt.Sprintf("engine.AdamW: master %d, grad %d, m %d, v %d values", n, len(grad.F32), len(m.F32), len(v.F32)))
	}
	c.parallel(n, 1<<14, func(lo, hi int) {
		kernels.AdamW(master.F32[lo:hi], grad.F32[lo:hi], m.F32[lo:hi], v.F32[lo:hi], p)
	})
	if compute != master {
		copy(compute.F32, master.F32)
	}
}

// normBlock is the fixed reduction block of SumSquares: the partial sums
// and their order do not depend on the number of workers.
const normBlock = 1 << 15

// SumSquares sums g^2 in float64 per block of normBlock values, then the
// blocks in order.
func (c *CPU) SumSquares(g *Tensor) float64 {
	mustF32("SumSquares", g)
	x := g.F32
	nb := (len(x) + normBlock - 1) / normBlock
	partial := make([]float64, nb)
	var wg sync.WaitGroup
	per := max(1, (nb+c.workers-1)/c.workers)
	for lo := 0; lo < nb; lo += per {
		hi := min(lo+per, nb)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := lo; b < hi; b++ {
				partial[b] = kernels.SumSquares(x[b*normBlock : min((b+1)*normBlock, len(x))])
			}
		}()
	}
	wg.Wait()
	var s float64
	for _, p := range partial {
		s += p
	}
	return s
}

// Scale multiplies t by s in place.
func (c *CPU) Scale(t *Tensor, s float32) {
	mustF32("Scale", t)
	c.parallel(len(t.F32), 1<<14, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			t.F32[i] *= s
		}
	})
}
