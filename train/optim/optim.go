package optim

import (
	"fmt"
	"math"
	"runtime"
	"sync"

	"purpcode/engine"
	"purpcode/kernels"
)

// Segment is one parameter tensor inside the flat weight buffer.
type Segment struct {
	Name   string
	Off, N int
	Decay  bool // false for biases and norm weights
}

// Optimizer updates a flat weight buffer from its gradient.
type Optimizer interface {
	// Name is "adamw" or "sgd".
	Name() string
	// Step applies one update with learning rate lr to the flat weights
	// the optimizer was built for (their gradients in w.Grad).
	Step(w *engine.Weights, lr float64)
	// Steps is the number of updates applied so far (PyTorch's "step").
	Steps() int64
	// State returns the optimizer's buffers as named slices aligned with
	// the weights (views, not copies), for checkpoints. Restoring copies
	// saved values into these slices and calls SetSteps.
	State() []Buffer
	// SetSteps sets the update count after the buffers were restored.
	SetSteps(n int64)
	// PullState copies device-resident state into the State buffers (before
	// a checkpoint is written); PushState copies them back (after a
	// restore). Both are no-ops when the state lives on the host.
	PullState()
	PushState()
	// Free releases the state's device memory (device memory is freed
	// explicitly, never by the collector); the optimizer is unusable
	// afterwards.
	Free()
}

// ReleaseState lets an optimizer whose State buffers are staging copies
// (ZeRO1's full-length buffers) drop them between checkpoints; others keep
// theirs (they are the state itself, or its host mirror).
func ReleaseState(opt Optimizer) {
	if r, ok := opt.(interface{ ReleaseState() }); ok {
		r.ReleaseState()
	}
}

// Buffer is one flat state buffer (same length as the weights).
type Buffer struct {
	Name string
	Data []float32
}

// checkSegments panics on a layout that does not tile [0, n): a programmer
// error in whoever built the segments.
func checkSegments(segs []Segment, n int) {
	if err := validSegments(segs, n); err != nil {
		panic(err.Error())
	}
}

// validSegments reports whether segs tile [0, n) in order.
func validSegments(segs []Segment, n int) error {
	off := 0
	for _, s := range segs {
		if s.Off != off || s.N < 0 {
			return fmt.Errorf("optim: segment %q at offset %d (length %d), want offset %d", s.Name, s.Off, s.N, off)
		}
		off += s.N
	}
	if off != n {
		return fmt.Errorf("optim: segments cover %d values of %d", off, n)
	}
	return nil
}

func checkLen(op string, n int, w *engine.Weights) {
	if !w.MasterWhole() || w.Grad == nil {
		panic(fmt.Sprintf("optim.%s: the weights have no whole fp32 master or no gradients (an inference-only or ZeRO-1 partial storage); this optimizer needs both", op))
	}
	if w.Master.Numel() != n || w.Grad.Numel() != n {
		panic(fmt.Sprintf("optim.%s: %d weights and %d gradients for an optimizer over %d values", op, w.Master.Numel(), w.Grad.Numel(), n))
	}
}

// chunk is the unit of parallel element-wise work: large enough to amortise
// a goroutine, small enough to balance.
const chunk = 1 << 16

// forChunks runs fn over [lo, hi) pieces of every segment in parallel.
func forChunks(segs []Segment, workers int, fn func(s *Segment, lo, hi int)) {
	type piece struct {
		s      *Segment
		lo, hi int
	}
	var pieces []piece
	for i := range segs {
		s := &segs[i]
		for lo := s.Off; lo < s.Off+s.N; lo += chunk {
			pieces = append(pieces, piece{s, lo, min(lo+chunk, s.Off+s.N)})
		}
	}
	if workers <= 1 || len(pieces) <= 1 {
		for _, p := range pieces {
			fn(p.s, p.lo, p.hi)
		}
		return
	}
	var wg sync.WaitGroup
	next := make(chan int, len(pieces))
	for i := range pieces {
		next <- i
	}
	close(next)
	for w := 0; w < min(workers, len(pieces)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				fn(pieces[i].s, pieces[i].lo, pieces[i].hi)
			}
		}()
	}
	wg.Wait()
}

// AdamWConfig holds AdamW's hyper-parameters (PyTorch's defaults are
// betas (0.9, 0.999), eps 1e-8, weight_decay 0.01).
type AdamWConfig struct {
	Beta1, Beta2, Eps, WeightDecay float64
}

// AdamW is torch.optim.AdamW (foreach=False, amsgrad=False, maximize=False):
// per element, with t the step count after increment,
//
//	w -= lr*wd*w                      (decoupled decay, Decay segments only)
//	m  = m + (1-b1)*(g-m)
//	v  = b2*v + (1-b2)*g*g
//	w -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)
//
// in float32 like PyTorch on float32 parameters. The moments live on the
// backend the optimizer was built for (device memory under CUDA).
type AdamW struct {
	cfg   AdamWConfig
	be    engine.Backend
	segs  []Segment
	m, v  *engine.Tensor // exp_avg, exp_avg_sq on the backend
	M, V  []float32      // their host copies (the tensors' own storage on the CPU)
	steps int64
}

// Free releases the moments' device memory (nothing on the CPU backend).
func (o *AdamW) Free() {
	o.be.Free(o.m)
	o.be.Free(o.v)
}

// NewAdamW returns AdamW on be over a flat buffer of n values laid out by
// segs.
func NewAdamW(be engine.Backend, segs []Segment, n int, cfg AdamWConfig) *AdamW {
	checkSegments(segs, n)
	st := engine.Tagged(be, engine.MemOptimizer)
	o := &AdamW{cfg: cfg, be: be, segs: append([]Segment(nil), segs...), m: st.Alloc(engine.F32, n), v: st.Alloc(engine.F32, n)}
	o.M, o.V = hostMirror(o.m), hostMirror(o.v)
	return o
}

// hostMirror is t's own storage for a host tensor, else a new host buffer.
func hostMirror(t *engine.Tensor) []float32 {
	if t.OnDevice() {
		return make([]float32, t.Numel())
	}
	return t.F32
}

func (o *AdamW) Name() string     { return "adamw" }
func (o *AdamW) Steps() int64     { return o.steps }
func (o *AdamW) SetSteps(n int64) { o.steps = n }
func (o *AdamW) State() []Buffer {
	return []Buffer{{"exp_avg", o.M}, {"exp_avg_sq", o.V}}
}

func (o *AdamW) PullState() {
	if o.m.OnDevice() {
		o.be.Download(o.M, o.m)
		o.be.Download(o.V, o.v)
	}
}

func (o *AdamW) PushState() {
	if o.m.OnDevice() {
		o.be.Upload(o.m, o.M)
		o.be.Upload(o.v, o.V)
	}
}

func (o *AdamW) Step(w *engine.Weights, lr float64) {
	n := o.m.Numel()
	checkLen("AdamW.Step", n, w)
	o.steps++
	o.cfg.update(o.steps, lr).forRange(decayRuns(o.segs), 0, n, func(off, k int, p kernels.AdamWStep) {
		master := w.Master.View(off, k)
		compute := master
		if w.Compute != w.Master {
			compute = w.Compute.View(off, k)
		}
		o.be.AdamW(master, compute, w.Grad.View(off, k), o.m.View(off, k), o.v.View(off, k), p)
	})
}

// adamwUpdate is one AdamW step's kernel parameters: base for undecayed
// parameters, with DecayMul replaced by decayMul for decayed ones. AdamW
// and ZeRO1 both derive their launches from it, so their updates are the
// same bits.
type adamwUpdate struct {
	base     kernels.AdamWStep
	decayMul float32
	decay    bool // weight decay is configured
}

// update returns the parameters of update number t (1-based, PyTorch's
// step after its increment) at learning rate lr.
func (c AdamWConfig) update(t int64, lr float64) adamwUpdate {
	tf := float64(t)
	bc1 := 1 - math.Pow(c.Beta1, tf)
	bc2sqrt := math.Sqrt(1 - math.Pow(c.Beta2, tf))
	return adamwUpdate{
		base: kernels.AdamWStep{
			DecayMul: 1, B1c: float32(1 - c.Beta1), B2: float32(c.Beta2), B2c: float32(1 - c.Beta2),
			StepSize: float32(lr / bc1), Bc2: float32(bc2sqrt), Eps: float32(c.Eps),
		},
		decayMul: float32(1 - lr*c.WeightDecay),
		decay:    c.WeightDecay != 0,
	}
}

// forRange calls fn once per run of runs (see decayRuns) clipped to
// [lo, hi), with the run's offset, length and parameters: one backend call
// per run, since each element's update is independent and runs change
// nothing but the number of launches. A run that straddles lo or hi (a
// tensor split between data-parallel ranks) is cut at the boundary.
func (u adamwUpdate) forRange(runs []Segment, lo, hi int, fn func(off, n int, p kernels.AdamWStep)) {
	for _, r := range runs {
		a, b := max(r.Off, lo), min(r.Off+r.N, hi)
		if a >= b {
			continue
		}
		p := u.base
		if r.Decay && u.decay {
			p.DecayMul = u.decayMul
		}
		fn(a, b-a, p)
	}
}

// decayRuns merges neighbouring segments that agree on Decay.
func decayRuns(segs []Segment) []Segment {
	var runs []Segment
	for _, s := range segs {
		if n := len(runs); n > 0 && runs[n-1].Decay == s.Decay {
			runs[n-1].N += s.N
			continue
		}
		runs = append(runs, Segment{Off: s.Off, N: s.N, Decay: s.Decay})
	}
	return runs
}

// SGDConfig holds SGD's hyper-parameters. WeightDecay is PyTorch SGD's
// coupled L2 term (g += wd*w), applied to Decay segments only.
type SGDConfig struct {
	Momentum, WeightDecay float64
}

// SGD is torch.optim.SGD without dampening or Nesterov: with momentum,
// buf = g on the first step and buf = mu*buf + g after; w -= lr*buf.
type SGD struct {
	cfg   SGDConfig
	segs  []Segment
	Buf   []float32 // momentum_buffer; nil without momentum
	steps int64
}

// NewSGD returns SGD over a flat host buffer of n values laid out by segs
// (SGD has no device kernel: it runs on the CPU backend only).
func NewSGD(segs []Segment, n int, cfg SGDConfig) *SGD {
	checkSegments(segs, n)
	o := &SGD{cfg: cfg, segs: append([]Segment(nil), segs...)}
	if cfg.Momentum != 0 {
		o.Buf = make([]float32, n)
	}
	return o
}

func (o *SGD) Name() string     { return "sgd" }
func (o *SGD) Steps() int64     { return o.steps }
func (o *SGD) SetSteps(n int64) { o.steps = n }
func (o *SGD) State() []Buffer {
	if o.Buf == nil {
		return nil
	}
	return []Buffer{{"momentum_buffer", o.Buf}}
}

func (o *SGD) PullState() {}
func (o *SGD) PushState() {}
func (o *SGD) Free()      {}

func (o *SGD) Step(wt *engine.Weights, lr float64) {
	n := 0
	if len(o.segs) > 0 {
		last := o.segs[len(o.segs)-1]
		n = last.Off + last.N
	}
	checkLen("SGD.Step", n, wt)
	if wt.Master.OnDevice() {
		panic("optim.SGD.Step: device weights; SGD runs on the CPU backend only")
	}
	w, g := wt.Master.F32, wt.Grad.F32
	first := o.steps == 0
	o.steps++
	c := o.cfg
	lr32, wd, mu := float32(lr), float32(c.WeightDecay), float32(c.Momentum)
	forChunks(o.segs, runtime.GOMAXPROCS(0), func(s *Segment, lo, hi int) {
		decay := s.Decay && c.WeightDecay != 0
		for i := lo; i < hi; i++ {
			d := g[i]
			if decay {
				d += wd * w[i]
			}
			if o.Buf != nil {
				if !first {
					d += mu * o.Buf[i]
				}
				o.Buf[i] = d
			}
			w[i] -= lr32 * d
		}
	})
}

// ClipGradNorm scales g (an F32 tensor on be) in place so that its global
// norm is at most maxNorm, as torch.nn.utils.clip_grad_norm_ does
// (coefficient maxNorm/(norm+1e-6), applied only when below 1), and returns
// the norm before clipping. maxNorm <= 0 only measures. The norm is
// reproducible run to run (see engine.Backend.SumSquares).
func ClipGradNorm(be engine.Backend, g *engine.Tensor, maxNorm float64) float64 {
	norm := math.Sqrt(be.SumSquares(g))
	if maxNorm <= 0 {
		return norm
	}
	coef := maxNorm / (norm + 1e-6)
	if coef >= 1 {
		return norm
	}
	be.Scale(g, float32(coef))
	return norm
}
