package optim

import (
	"errors"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"purpcode/dist"
	"purpcode/engine"
	"purpcode/engine/cuda"
	"purpcode/internal/testref"
	"purpcode/kernels/cudatest"
)

// cudaDevice is the kernel tests' flag (scripts/gpu-check.sh passes
// -cuda-device=real): TestZeRO1OnDevice runs on the emulator by default.
var cudaDevice = flag.String("cuda-device", cudatest.Emulated, cudatest.FlagUsage)

var zeroCfg = AdamWConfig{Beta1: 0.9, Beta2: 0.95, Eps: 1e-8, WeightDecay: 0.1}

// layout lays out segments of the given lengths, decayed and undecayed in
// turn (so that runs of either kind straddle chunk boundaries).
func layout(lens ...int) ([]Segment, int) {
	var segs []Segment
	off := 0
	for i, n := range lens {
		segs = append(segs, Segment{Name: fmt.Sprintf("p%d", i), Off: off, N: n, Decay: i%2 == 0})
		off += n
	}
	return segs, off
}

// zeroData is a run's inputs: initial weights and, per step, a gradient
// (the one summed over the group) and a learning rate.
type zeroData struct {
	w0    []float32
	grads [][]float32
	lrs   []float64
}

func newZeroData(n, steps int, seed uint64) zeroData {
	r := rand.New(rand.NewPCG(seed, 7))
	d := zeroData{w0: make([]float32, n)}
	for i := range d.w0 {
		d.w0[i] = float32(r.NormFloat64() * 0.5)
	}
	for s := range steps {
		g := make([]float32, n)
		for i := range g {
			g[i] = float32(r.NormFloat64() * 0.1 * float64(s+1))
		}
		if n > 3 {
			g[3] = 0 // a parameter with no gradient: moved by decay alone
		}
		d.grads = append(d.grads, g)
		d.lrs = append(d.lrs, 1e-3*float64(s+1))
	}
	return d
}

// reference runs plain AdamW on the CPU over the first steps of d.
func reference(segs []Segment, d zeroData, steps int) (w []float32, opt *AdamW) {
	cpu := newCPU(2)
	w = append([]float32(nil), d.w0...)
	opt = NewAdamW(cpu, segs, len(w), zeroCfg)
	for s := range steps {
		opt.Step(host(cpu, w, append([]float32(nil), d.grads[s]...)), d.lrs[s])
	}
	return w, opt
}

// group connects size in-process ranks and runs fn on each in its own
// goroutine, failing the test with the first error.
func group(t *testing.T, size int, fn func(c dist.Comm) error) {
	t.Helper()
	comms, err := dist.ConnectLocal(t.Context(), size, 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	errs := make([]error, size)
	var wg sync.WaitGroup
	for r, c := range comms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			errs[r] = fn(c)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
}

func sameBits(what string, got, want []float32) error {
	if len(got) != len(want) {
		return fmt.Errorf("%s: %d values, want %d", what, len(got), len(want))
	}
	for i := range got {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			return fmt.Errorf("%s[%d] = %.9g, plain AdamW %.9g: not bit-identical", what, i, got[i], want[i])
		}
	}
	return nil
}

// TestZeRO1MatchesAdamW: ranks that each update their chunk and all-gather
// end with the same weights and moments, bit for bit, as one AdamW over
// everything (each element's update is the same kernel with the same
// parameters). Odd lengths and segments straddling the chunk boundaries;
// a rank with an empty chunk (n < ranks); offload (the host kernel) too.
func TestZeRO1MatchesAdamW(t *testing.T) {
	cases := []struct {
		lens    []int
		size    int
		offload bool
	}{
		{[]int{300, 7, 500, 194}, 2, false}, // n 1001: the 500 straddles 501
		{[]int{300, 7, 500, 194}, 3, false},
		{[]int{300, 7, 500, 194}, 2, true},
		{[]int{1}, 2, false},
		{[]int{2, 3}, 4, false},
	}
	const steps = 3
	for _, c := range cases {
		segs, n := layout(c.lens...)
		t.Run(fmt.Sprintf("n%d_dp%d_offload%v", n, c.size, c.offload), func(t *testing.T) {
			d := newZeroData(n, steps, uint64(n))
			want, ref := reference(segs, d, steps)
			group(t, c.size, func(comm dist.Comm) error {
				cpu := newCPU(2)
				o, err := NewZeRO1(cpu, segs, n, zeroCfg, comm, c.offload)
				if err != nil {
					return err
				}
				w := append([]float32(nil), d.w0...)
				for s := range steps {
					if err := o.StepShared(t.Context(), host(cpu, w, append([]float32(nil), d.grads[s]...)), d.lrs[s]); err != nil {
						return err
					}
				}
				if o.Steps() != steps {
					return fmt.Errorf("rank %d: Steps() = %d", comm.Rank(), o.Steps())
				}
				// Gathered to the writing rank alone: rank 0 holds the whole
				// state, the others never allocate it.
				if err := o.GatherStateToRoot(t.Context()); err != nil {
					return err
				}
				if comm.Rank() != 0 && o.fullM != nil {
					return fmt.Errorf("rank %d: holds the full state after GatherStateToRoot", comm.Rank())
				}
				if comm.Rank() == 0 {
					st := o.State()
					if err := errors.Join(sameBits("root exp_avg", st[0].Data, ref.M), sameBits("root exp_avg_sq", st[1].Data, ref.V)); err != nil {
						return err
					}
				}
				if err := o.GatherState(t.Context()); err != nil {
					return err
				}
				st := o.State()
				return errors.Join(sameBits("weights", w, want), sameBits("exp_avg", st[0].Data, ref.M), sameBits("exp_avg_sq", st[1].Data, ref.V))
			})
		})
	}
}

// TestZeRO1ResumeAcrossGroupSizes saves after 2 of 4 steps in one group
// size and continues in another: the weights equal an uninterrupted AdamW
// run bit for bit. DP=2 -> DP=1 restores with PushState (the process read
// the checkpoint itself); DP=1 -> DP=2 with ScatterState (rank 0 alone
// holds the restored buffers).
func TestZeRO1ResumeAcrossGroupSizes(t *testing.T) {
	segs, n := layout(300, 7, 500, 193) // n 1000
	d := newZeroData(n, 4, 11)
	want, _ := reference(segs, d, 4)

	type saved struct {
		w, m, v []float32
		steps   int64
	}
	save := func(o *ZeRO1, w []float32) saved {
		st := o.State()
		return saved{append([]float32(nil), w...), append([]float32(nil), st[0].Data...), append([]float32(nil), st[1].Data...), o.Steps()}
	}

	// DP=2 for steps 1-2, rank 0 saves.
	var ck saved
	group(t, 2, func(comm dist.Comm) error {
		cpu := newCPU(1)
		o, err := NewZeRO1(cpu, segs, n, zeroCfg, comm, false)
		if err != nil {
			return err
		}
		w := append([]float32(nil), d.w0...)
		for s := range 2 {
			if err := o.StepShared(t.Context(), host(cpu, w, append([]float32(nil), d.grads[s]...)), d.lrs[s]); err != nil {
				return err
			}
		}
		if err := o.GatherState(t.Context()); err != nil {
			return err
		}
		if comm.Rank() == 0 {
			ck = save(o, w)
		}
		return nil
	})

	// DP=1 for steps 3-4 from the DP=2 checkpoint.
	cpu := newCPU(1)
	o, err := NewZeRO1(cpu, segs, n, zeroCfg, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	st := o.State()
	copy(st[0].Data, ck.m)
	copy(st[1].Data, ck.v)
	o.PushState()
	o.SetSteps(ck.steps)
	w := append([]float32(nil), ck.w...)
	for s := 2; s < 4; s++ {
		o.Step(host(cpu, w, append([]float32(nil), d.grads[s]...)), d.lrs[s])
	}
	if err := errors.Join(o.Err(), sameBits("DP2->DP1 weights", w, want)); err != nil {
		t.Fatal(err)
	}

	// DP=1 for steps 1-2 (the single-rank ZeRO1), then DP=2 for 3-4.
	o, err = NewZeRO1(cpu, segs, n, zeroCfg, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	w = append([]float32(nil), d.w0...)
	for s := range 2 {
		o.Step(host(cpu, w, append([]float32(nil), d.grads[s]...)), d.lrs[s])
	}
	if err := o.GatherState(t.Context()); err != nil {
		t.Fatal(err)
	}
	ck = save(o, w)
	group(t, 2, func(comm dist.Comm) error {
		cpu := newCPU(1)
		o, err := NewZeRO1(cpu, segs, n, zeroCfg, comm, false)
		if err != nil {
			return err
		}
		if comm.Rank() == 0 {
			st := o.State()
			copy(st[0].Data, ck.m)
			copy(st[1].Data, ck.v)
		}
		if err := o.ScatterState(t.Context()); err != nil {
			return err
		}
		o.SetSteps(ck.steps)
		w := append([]float32(nil), ck.w...)
		for s := 2; s < 4; s++ {
			if err := o.StepShared(t.Context(), host(cpu, w, append([]float32(nil), d.grads[s]...)), d.lrs[s]); err != nil {
				return err
			}
		}
		return sameBits(fmt.Sprintf("DP1->DP2 rank %d weights", comm.Rank()), w, want)
	})
}

// TestZeRO1StepScattered: each rank holds its own part of the gradient;
// the reduce-scatter sums them (fp32, rank order) and the update equals
// AdamW on that sum clipped by ClipGradNorm. Without clipping the weights
// are bit-identical; with clipping the norm is a float64 sum in another
// order, so the coefficient may differ in its last bit: within 1e-6
// relative.
func TestZeRO1StepScattered(t *testing.T) {
	segs, n := layout(300, 7, 500, 194)
	const size = 2
	r := rand.New(rand.NewPCG(5, 5))
	w0 := make([]float32, n)
	parts := make([][]float32, size)
	for i := range w0 {
		w0[i] = float32(r.NormFloat64())
	}
	for p := range parts {
		parts[p] = make([]float32, n)
		for i := range parts[p] {
			parts[p][i] = float32(r.NormFloat64())
		}
	}
	sum := make([]float32, n)
	for i := range sum {
		sum[i] = parts[0][i] + parts[1][i]
	}
	for _, maxNorm := range []float64{0, 1} {
		cpu := newCPU(1)
		want := append([]float32(nil), w0...)
		g := append([]float32(nil), sum...)
		wantNorm := ClipGradNorm(cpu, engine.FromF32(g, n), maxNorm)
		NewAdamW(cpu, segs, n, zeroCfg).Step(host(cpu, want, g), 1e-2)
		group(t, size, func(comm dist.Comm) error {
			cpu := newCPU(1)
			o, err := NewZeRO1(cpu, segs, n, zeroCfg, comm, false)
			if err != nil {
				return err
			}
			w := append([]float32(nil), w0...)
			norm, err := o.StepScattered(t.Context(), host(cpu, w, append([]float32(nil), parts[comm.Rank()]...)), 1e-2, maxNorm)
			if err != nil {
				return err
			}
			if math.Abs(norm-wantNorm) > 1e-12*wantNorm {
				return fmt.Errorf("norm %.17g, ClipGradNorm %.17g", norm, wantNorm)
			}
			if maxNorm == 0 {
				return sameBits("weights", w, want)
			}
			for i := range w {
				if d := math.Abs(float64(w[i]) - float64(want[i])); d > 1e-6*math.Abs(float64(want[i])) {
					return fmt.Errorf("clipped: weights[%d] = %.9g, AdamW %.9g", i, w[i], want[i])
				}
			}
			return nil
		})
	}
}

// TestZeRO1StepErrorIsSticky: a step whose all-gather loses a peer reports
// the error (Err after Step, StepShared's result), and every later step
// returns it without touching the weights again.
func TestZeRO1StepErrorIsSticky(t *testing.T) {
	segs, n := layout(10, 5)
	comms, err := dist.ConnectLocal(t.Context(), 2, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer comms[0].Close()
	comms[1].Close()
	cpu := newCPU(1)
	o, err := NewZeRO1(cpu, segs, n, zeroCfg, comms[0], false)
	if err != nil {
		t.Fatal(err)
	}
	w, g := make([]float32, n), make([]float32, n)
	o.Step(host(cpu, w, g), 1e-3)
	if o.Err() == nil {
		t.Fatal("a step whose peer is gone reported no error")
	}
	if err := StepContext(t.Context(), o, host(cpu, w, g), 1e-3); !errors.Is(err, o.Err()) {
		t.Fatalf("a later step returned %v, want the first error %v", err, o.Err())
	}
	if o.Steps() != 1 {
		t.Errorf("Steps() = %d after one failed step and one refused", o.Steps())
	}
}

// TestNewZeRO1RejectsBadSegments: a layout that does not tile the buffer
// is an error, not a panic.
func TestNewZeRO1RejectsBadSegments(t *testing.T) {
	if _, err := NewZeRO1(newCPU(1), []Segment{{Name: "a", Off: 0, N: 3}}, 4, zeroCfg, nil, false); err == nil {
		t.Error("segments covering 3 of 4 values accepted")
	}
}

// TestZeRO1OnDevice runs DP=2 on two emulated CUDA devices, with the state
// on the device and offloaded to host memory, against AdamW on a third;
// after step 1 the ranks restore the reference's state into their live
// optimizers (ScatterState from rank 0). After step 3 the gathered fp32 master and the moments are bit-identical
// and so is every rank's bf16 compute copy. Memory: the optimizer category
// of each rank's device holds exactly its chunk's two moments (none with
// offload), not the whole vector's.
func TestZeRO1OnDevice(t *testing.T) {
	spec := cuda.Emulated
	if *cudaDevice == cudatest.Real {
		spec = "cuda"
	}
	open := func() *cuda.Backend {
		be, err := cuda.Open(spec, cuda.Options{})
		if err != nil {
			if spec == cuda.Emulated { // a real GPU asked for and absent is a failure
				testref.Missing(t, testref.NeedNVRTC, err.Error())
			}
			t.Fatal(err)
		}
		t.Cleanup(func() { be.Close() })
		return be
	}
	segs, n := layout(300, 7, 500, 194) // n 1001: chunks of 501 and 500
	const steps, size = 3, 2
	d := newZeroData(n, steps, 3)

	refBE := open()
	rw := refBE.NewWeights(d.w0, make([]float32, n))
	ref := NewAdamW(refBE, segs, n, zeroCfg)
	// The state after step 1, which the ranks restore into live optimizers.
	w1, m1, v1 := make([]float32, n), make([]float32, n), make([]float32, n)
	for s := range steps {
		refBE.Upload(rw.Grad, d.grads[s])
		ref.Step(rw, d.lrs[s])
		if s == 0 {
			ref.PullState()
			refBE.Download(w1, rw.Master)
			copy(m1, ref.M)
			copy(v1, ref.V)
		}
	}
	ref.PullState()
	wantMaster, wantCompute := make([]float32, n), make([]float32, n)
	refBE.Download(wantMaster, rw.Master)
	refBE.Download(wantCompute, rw.Compute)

	bes := []*cuda.Backend{open(), open()}
	for _, offload := range []bool{true, false} { // offload first: its peak must stay 0
		group(t, size, func(comm dist.Comm) error {
			be := bes[comm.Rank()]
			o, err := NewZeRO1(be, segs, n, zeroCfg, comm, offload)
			if err != nil {
				return err
			}
			defer o.Free()
			w := be.NewWeights(d.w0, make([]float32, n))
			defer func() { be.Free(w.Master); be.Free(w.Compute); be.Free(w.Grad) }()
			// A first step with another gradient, then a restore of the
			// reference's state after step 1 into the live optimizer
			// (PushState must reload the master chunk from the restored
			// weights), then steps 2 and 3.
			be.Upload(w.Grad, d.grads[2])
			if err := o.StepShared(t.Context(), w, 0.5); err != nil {
				return err
			}
			be.Upload(w.Master, w1)
			be.Upload(w.Compute, w1)
			if comm.Rank() == 0 {
				st := o.State()
				copy(st[0].Data, m1)
				copy(st[1].Data, v1)
			}
			if err := o.ScatterState(t.Context()); err != nil {
				return err
			}
			o.SetSteps(1)
			for s := 1; s < steps; s++ {
				be.Upload(w.Grad, d.grads[s])
				if err := o.StepShared(t.Context(), w, d.lrs[s]); err != nil {
					return err
				}
			}
			compute, master := make([]float32, n), make([]float32, n)
			be.Download(compute, w.Compute) // bf16 widened: equal bits iff equal bf16
			// Master's own chunk is current before any gather.
			be.Download(master, w.Master)
			lo, hi := o.Chunk()
			if err := sameBits("master chunk before GatherMaster", master[lo:hi], wantMaster[lo:hi]); err != nil {
				return err
			}
			if err := PrepareSave(t.Context(), o, w); err != nil { // GatherMaster + the state to rank 0
				return err
			}
			be.Download(master, w.Master)
			tag := fmt.Sprintf("offload=%v rank %d: ", offload, comm.Rank())
			err = errors.Join(sameBits(tag+"compute (bf16)", compute, wantCompute), sameBits(tag+"master", master, wantMaster))
			if comm.Rank() == 0 {
				st := o.State()
				err = errors.Join(err, sameBits(tag+"exp_avg", st[0].Data, ref.M), sameBits(tag+"exp_avg_sq", st[1].Data, ref.V))
			}
			chunk := int64(dist.ChunkLen(n, size, comm.Rank()))
			wantPeak := 2 * 4 * chunk
			if offload {
				wantPeak = 0
			}
			if got := be.PeakBytes()[engine.MemOptimizer]; got != wantPeak {
				err = errors.Join(err, fmt.Errorf("%sdevice optimizer memory peak %d bytes, want %d (2 fp32 moments of the %d-value chunk; AdamW over all %d values: %d)",
					tag, got, wantPeak, chunk, n, 8*n))
			}
			return err
		})
	}

	// One rank (no group) with offload: the host update must still reach
	// the device's compute copy.
	be := bes[0]
	o, err := NewZeRO1(be, segs, n, zeroCfg, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	w := be.NewWeights(d.w0, make([]float32, n))
	for s := range steps {
		be.Upload(w.Grad, d.grads[s])
		if err := o.StepShared(t.Context(), w, d.lrs[s]); err != nil {
			t.Fatal(err)
		}
	}
	compute, master := make([]float32, n), make([]float32, n)
	be.Download(compute, w.Compute)
	be.Download(master, w.Master)
	if err := errors.Join(sameBits("one rank, offload: compute (bf16)", compute, wantCompute), sameBits("one rank, offload: master", master, wantMaster)); err != nil {
		t.Fatal(err)
	}
}

// TestZeRO1PartialMasterOnDevice is TestZeRO1OnDevice with the weights a
// ZeRO-1 run makes (engine.WeightsOptions.Partial): each rank's device
// holds only its chunk of the fp32 master (none with offload), so its
// weights peak is the bf16 compute copy plus 4 bytes per chunk element,
// and PrepareSave gathers the master whole into the weights' host copy
// (bit-identical with AdamW over the whole vector), where a checkpoint
// reads it. A restore in the middle (the host copy replaced and pushed,
// the moments scattered) must reseed the offloaded chunk from the host
// copy, since there is no device master to read it from.
func TestZeRO1PartialMasterOnDevice(t *testing.T) {
	spec := cuda.Emulated
	if *cudaDevice == cudatest.Real {
		spec = "cuda"
	}
	open := func() *cuda.Backend {
		be, err := cuda.Open(spec, cuda.Options{})
		if err != nil {
			if spec == cuda.Emulated {
				testref.Missing(t, testref.NeedNVRTC, err.Error())
			}
			t.Fatal(err)
		}
		t.Cleanup(func() { be.Close() })
		return be
	}
	segs, n := layout(300, 7, 500, 194)
	const steps, size = 3, 2
	d := newZeroData(n, steps, 5)

	refBE := open()
	rw := refBE.NewWeights(d.w0, make([]float32, n))
	ref := NewAdamW(refBE, segs, n, zeroCfg)
	w1, m1, v1 := make([]float32, n), make([]float32, n), make([]float32, n)
	for s := range steps {
		refBE.Upload(rw.Grad, d.grads[s])
		ref.Step(rw, d.lrs[s])
		if s == 0 {
			ref.PullState()
			refBE.Download(w1, rw.Master)
			copy(m1, ref.M)
			copy(v1, ref.V)
		}
	}
	ref.PullState()
	wantMaster, wantCompute := make([]float32, n), make([]float32, n)
	refBE.Download(wantMaster, rw.Master)
	refBE.Download(wantCompute, rw.Compute)

	for _, offload := range []bool{true, false} {
		bes := []*cuda.Backend{open(), open()} // fresh: each run's peaks are its own
		group(t, size, func(comm dist.Comm) error {
			be := bes[comm.Rank()]
			o, err := NewZeRO1(be, segs, n, zeroCfg, comm, offload)
			if err != nil {
				return err
			}
			defer o.Free()
			lo, hi := o.Chunk()
			if offload {
				hi = lo
			}
			host := append([]float32(nil), d.w0...)
			w := engine.NewWeightsWith(be, host, make([]float32, n), engine.WeightsOptions{Partial: true, Lo: lo, Hi: hi})
			tag := fmt.Sprintf("offload=%v rank %d: ", offload, comm.Rank())
			if (w.Master == nil) != offload || w.MasterWhole() {
				return fmt.Errorf("%sweights' master %v at %d: want the chunk [%d, %d) only", tag, w.Master, w.MasterLo, lo, hi)
			}
			be.Upload(w.Grad, d.grads[2])
			if err := o.StepShared(t.Context(), w, 0.5); err != nil {
				return err
			}
			if w.HostCurrent {
				return fmt.Errorf("%sthe host copy still claims to be the master after an update", tag)
			}
			// Restore step 1's state: the host copy as a checkpoint load
			// leaves it, pushed (qwen2's Params.Push), and the moments.
			copy(w.Host, w1)
			if w.Master != nil {
				be.Upload(w.Master, w.Host[w.MasterLo:w.MasterLo+w.Master.Numel()])
			}
			be.Upload(w.Compute, w.Host)
			w.HostCurrent = true
			if comm.Rank() == 0 {
				st := o.State()
				copy(st[0].Data, m1)
				copy(st[1].Data, v1)
			}
			if err := o.ScatterState(t.Context()); err != nil {
				return err
			}
			o.SetSteps(1)
			for s := 1; s < steps; s++ {
				be.Upload(w.Grad, d.grads[s])
				if err := o.StepShared(t.Context(), w, d.lrs[s]); err != nil {
					return err
				}
			}
			clear(w.Host) // stale anyway: the gather must fill every value
			if err := PrepareSave(t.Context(), o, w); err != nil {
				return err
			}
			if !w.HostCurrent {
				return fmt.Errorf("%sthe host copy is not marked current after GatherMaster", tag)
			}
			compute := make([]float32, n)
			be.Download(compute, w.Compute)
			err = errors.Join(sameBits(tag+"compute (bf16)", compute, wantCompute), sameBits(tag+"gathered master", w.Host, wantMaster))
			if comm.Rank() == 0 {
				// PrepareSave gathers the moments to the writing rank only.
				st := o.State()
				err = errors.Join(err, sameBits(tag+"exp_avg", st[0].Data, ref.M), sameBits(tag+"exp_avg_sq", st[1].Data, ref.V))
			}
			chunk := int64(dist.ChunkLen(n, size, comm.Rank()))
			wantWeights := 2*int64(n) + 4*chunk
			if offload {
				wantWeights = 2 * int64(n)
			}
			if got := be.PeakBytes()[engine.MemWeights]; got != wantWeights {
				err = errors.Join(err, fmt.Errorf("%sdevice weights peak %d bytes, want %d (bf16 compute copy of %d values and the fp32 master's %d-value chunk on the device: %v)",
					tag, got, wantWeights, n, chunk, !offload))
			}
			return err
		})
	}

	// One rank with offload and no device master at all: seeded from the
	// host copy, gathered back into it.
	be := open()
	o, err := NewZeRO1(be, segs, n, zeroCfg, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	w := engine.NewWeightsWith(be, append([]float32(nil), d.w0...), make([]float32, n), engine.WeightsOptions{Partial: true})
	if w.Master != nil {
		t.Fatalf("an empty master range allocated %d values", w.Master.Numel())
	}
	for s := range steps {
		be.Upload(w.Grad, d.grads[s])
		if err := o.StepShared(t.Context(), w, d.lrs[s]); err != nil {
			t.Fatal(err)
		}
	}
	if err := PrepareSave(t.Context(), o, w); err != nil {
		t.Fatal(err)
	}
	compute := make([]float32, n)
	be.Download(compute, w.Compute)
	if err := errors.Join(sameBits("one rank, offload: compute (bf16)", compute, wantCompute), sameBits("one rank, offload: master", w.Host, wantMaster)); err != nil {
		t.Fatal(err)
	}
}
