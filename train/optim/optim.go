package optim

import (
	"fmt"
	"math"
	"runtime"
	"sync"

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
	// Step applies one update with learning rate lr: w and g are the flat
	// weights and gradients the optimizer was built for.
	Step(w, g []float32, lr float64)
	// Steps is the number of updates applied so far (PyTorch's "step").
	Steps() int64
	// State returns the optimizer's buffers as named slices aligned with
	// the weights (views, not copies), for checkpoints. Restoring copies
	// saved values into these slices and calls SetSteps.
	State() []Buffer
	// SetSteps sets the update count after the buffers were restored.
	SetSteps(n int64)
}

// Buffer is one flat state buffer (same length as the weights).
type Buffer struct {
	Name string
	Data []float32
}

// checkSegments panics on a layout that does not tile [0, n): a programmer
// error in whoever built the segments.
func checkSegments(segs []Segment, n int) {
	off := 0
	for _, s := range segs {
		if s.Off != off || s.N < 0 {
			panic(fmt.Sprintf("optim: segment %q at offset %d (length %d), want offset %d", s.Name, s.Off, s.N, off))
		}
		off += s.N
	}
	if off != n {
		panic(fmt.Sprintf("optim: segments cover %d values of %d", off, n))
	}
}

func checkLen(op string, n int, w, g []float32) {
	if len(w) != n || len(g) != n {
		panic(fmt.Sprintf("optim.%s: %d weights and %d gradients for an optimizer over %d values", op, len(w), len(g), n))
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

func defaultWorkers(n int) int {
	if n <= 0 {
		return runtime.GOMAXPROCS(0)
	}
	return n
}

// AdamWConfig holds AdamW's hyper-parameters (PyTorch's defaults are
// betas (0.9, 0.999), eps 1e-8, weight_decay 0.01).
type AdamWConfig struct {
	Beta1, Beta2, Eps, WeightDecay float64
	Workers                        int // goroutines; 0 = GOMAXPROCS
}

// AdamW is torch.optim.AdamW (foreach=False, amsgrad=False, maximize=False):
// per element, with t the step count after increment,
//
//	w -= lr*wd*w                      (decoupled decay, Decay segments only)
//	m  = m + (1-b1)*(g-m)
//	v  = b2*v + (1-b2)*g*g
//	w -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)
//
// in float32 like PyTorch on float32 parameters.
type AdamW struct {
	cfg   AdamWConfig
	segs  []Segment
	M, V  []float32 // exp_avg, exp_avg_sq
	steps int64
}

// NewAdamW returns AdamW over a flat buffer of n values laid out by segs.
func NewAdamW(segs []Segment, n int, cfg AdamWConfig) *AdamW {
	checkSegments(segs, n)
	return &AdamW{cfg: cfg, segs: append([]Segment(nil), segs...), M: make([]float32, n), V: make([]float32, n)}
}

func (o *AdamW) Name() string     { return "adamw" }
func (o *AdamW) Steps() int64     { return o.steps }
func (o *AdamW) SetSteps(n int64) { o.steps = n }
func (o *AdamW) State() []Buffer {
	return []Buffer{{"exp_avg", o.M}, {"exp_avg_sq", o.V}}
}

func (o *AdamW) Step(w, g []float32, lr float64) {
	checkLen("AdamW.Step", len(o.M), w, g)
	o.steps++
	c := o.cfg
	t := float64(o.steps)
	bc1 := 1 - math.Pow(c.Beta1, t)
	bc2sqrt := math.Sqrt(1 - math.Pow(c.Beta2, t))
	step := kernels.AdamWStep{
		DecayMul: 1, B1c: float32(1 - c.Beta1), B2: float32(c.Beta2), B2c: float32(1 - c.Beta2),
		StepSize: float32(lr / bc1), Bc2: float32(bc2sqrt), Eps: float32(c.Eps),
	}
	decayMul := float32(1 - lr*c.WeightDecay)
	forChunks(o.segs, defaultWorkers(c.Workers), func(s *Segment, lo, hi int) {
		p := step
		if s.Decay && c.WeightDecay != 0 {
			p.DecayMul = decayMul
		}
		kernels.AdamW(w[lo:hi], g[lo:hi], o.M[lo:hi], o.V[lo:hi], p)
	})
}

// SGDConfig holds SGD's hyper-parameters. WeightDecay is PyTorch SGD's
// coupled L2 term (g += wd*w), applied to Decay segments only.
type SGDConfig struct {
	Momentum, WeightDecay float64
	Workers               int
}

// SGD is torch.optim.SGD without dampening or Nesterov: with momentum,
// buf = g on the first step and buf = mu*buf + g after; w -= lr*buf.
type SGD struct {
	cfg   SGDConfig
	segs  []Segment
	Buf   []float32 // momentum_buffer; nil without momentum
	steps int64
}

// NewSGD returns SGD over a flat buffer of n values laid out by segs.
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

func (o *SGD) Step(w, g []float32, lr float64) {
	n := 0
	if len(o.segs) > 0 {
		last := o.segs[len(o.segs)-1]
		n = last.Off + last.N
	}
	checkLen("SGD.Step", n, w, g)
	first := o.steps == 0
	o.steps++
	c := o.cfg
	lr32, wd, mu := float32(lr), float32(c.WeightDecay), float32(c.Momentum)
	forChunks(o.segs, defaultWorkers(c.Workers), func(s *Segment, lo, hi int) {
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

// normChunk is the fixed reduction block of GlobalNorm.
const normChunk = 1 << 15

// GlobalNorm returns the L2 norm of g, summing squares in float64 over
// fixed blocks in a fixed order, so the result is the same for any number
// of workers (0 = GOMAXPROCS).
func GlobalNorm(g []float32, workers int) float64 {
	nb := (len(g) + normChunk - 1) / normChunk
	partial := make([]float64, nb)
	workers = defaultWorkers(workers)
	var wg sync.WaitGroup
	per := (nb + workers - 1) / max(workers, 1)
	for lo := 0; lo < nb; lo += max(per, 1) {
		hi := min(lo+max(per, 1), nb)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := lo; b < hi; b++ {
				partial[b] = kernels.SumSquares(g[b*normChunk : min((b+1)*normChunk, len(g))])
			}
		}()
	}
	wg.Wait()
	var s float64
	for _, p := range partial {
		s += p
	}
	return math.Sqrt(s)
}

// ClipGradNorm scales g in place so that its global norm is at most
// maxNorm, as torch.nn.utils.clip_grad_norm_ does (coefficient
// maxNorm/(norm+1e-6), applied only when below 1), and returns the norm
// before clipping. maxNorm <= 0 only measures.
func ClipGradNorm(g []float32, maxNorm float64, workers int) float64 {
	norm := GlobalNorm(g, workers)
	if maxNorm <= 0 {
		return norm
	}
	coef := maxNorm / (norm + 1e-6)
	if coef >= 1 {
		return norm
	}
	c := float32(coef)
	segs := []Segment{{Off: 0, N: len(g)}}
	forChunks(segs, defaultWorkers(workers), func(_ *Segment, lo, hi int) {
		for i := lo; i < hi; i++ {
			g[i] *= c
		}
	})
	return norm
}
