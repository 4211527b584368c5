package cuda_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"purpcode/dist"
	"purpcode/engine"
	"purpcode/engine/cuda"
	"purpcode/model/qwen2"
	"purpcode/plan"
	"purpcode/train"
	"purpcode/train/optim"
	"purpcode/train/sft"
)

// TestPlanMatchesMeasuredSFTStep checks the memory plan the trainers log
// (plan.ForRun) against what the backend allocated in one SFT step of the
// base model: weights with master, gradients, AdamW state and the
// activation arena to the byte, the lm-head chunk with scratch within
// plan.LogitsScratchFactor. Then the recompute arena: allocated next to
// the live full one, it raises the activations peak by exactly the plan's
// recompute figure.
func TestPlanMatchesMeasuredSFTStep(t *testing.T) {
	dev := cuda.OpenForTest(t)
	md, err := qwen2.Load(baseModel, dev)
	if err != nil {
		t.Fatal(err)
	}
	const bsz, seq = 1, 16
	opt, err := train.NewOptimizer(train.OptimizerConfig{Name: "adamw", Beta1: 0.9, Beta2: 0.95, Eps: 1e-8}, md)
	if err != nil {
		t.Fatal(err)
	}
	tr := sft.NewTrainer(md, opt, bsz, seq, 1.0)
	if r := tr.Step([]*qwen2.Batch{batch(md.Cfg, bsz, seq, 3)}, 1e-3); r.Targets == 0 {
		t.Fatal("the step had no targets: it exercised neither the loss nor the optimizer")
	}
	run := plan.Run{TP: 1, DP: 1, B: bsz, T: seq, Optimizer: "adamw", ActDType: dev.ActDType()}
	p, err := plan.ForRun(md.Cfg, run)
	if err != nil {
		t.Fatal(err)
	}
	if n := int64(md.P.Count()); p.RankParams != n {
		t.Fatalf("plan holds %d parameters, the model %d", p.RankParams, n)
	}
	before := dev.PeakBytes()
	checks := plan.Compare(p, before)
	t.Log(p.RunLine())
	t.Log(plan.CheckLine(checks))
	if err := plan.Verify(checks); err != nil {
		t.Error(err)
	}
	names := map[string]bool{}
	for _, c := range checks {
		names[c.Name] = c.Exact
	}
	for _, want := range []string{"weights+master", "grads", "optimizer", "activations"} {
		if !names[want] {
			t.Errorf("no exact check of %s in %v", want, checks)
		}
	}

	run.Recompute = true
	pr, err := plan.ForRun(md.Cfg, run)
	if err != nil {
		t.Fatal(err)
	}
	md.NewActsRecompute(bsz, seq)
	grew := dev.PeakBytes()[engine.MemActivations] - before[engine.MemActivations]
	if grew != pr.Activations || pr.Activations >= p.Activations {
		t.Errorf("recompute arena: %d bytes measured, plan %d (no recompute %d)", grew, pr.Activations, p.Activations)
	}
}

// TestPlanMatchesMeasuredTPStep is the same check on the two ranks of a
// TP=2 group (two emulated devices, ranks as goroutines over loopback
// TCP) of a model whose FFN (46) and vocabulary (97) split unevenly, so
// the ranks' plans differ: each rank's weights, gradients, AdamW state and
// activations to the byte, the vocab-parallel head chunk within the
// factor.
func TestPlanMatchesMeasuredTPStep(t *testing.T) {
	cfg, err := qwen2.ParseConfig([]byte(`{"model_type":"qwen2","hidden_size":64,"intermediate_size":45,
		"num_hidden_layers":2,"num_attention_heads":8,"num_key_value_heads":4,"vocab_size":1001,
		"max_position_embeddings":64,"rope_theta":10000,"rms_norm_eps":1e-6,"tie_word_embeddings":false}`), "tiny-tp")
	if err != nil {
		t.Fatal(err)
	}
	const tp, bsz, seq = 2, 1, 8
	host := qwen2.New(cfg, engine.NewDefaultCPU(engine.CPUOptions{Workers: 1}), 11)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	comms, err := dist.ConnectLocal(ctx, tp, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	lay, err := plan.NewLayout(cfg, tp)
	if err != nil {
		t.Fatal(err)
	}
	split := func(name string, shape []int, rank int) (int, int, int, error) {
		s, err := lay.Shard(name, shape, rank)
		return s.Dim, s.Lo, s.Hi, err
	}
	devs := []*cuda.Backend{cuda.OpenForTest(t), cuda.OpenForTest(t)}
	b := batch(cfg, bsz, seq, 5)
	errs := make([]error, tp)
	var wg sync.WaitGroup
	for r := range tp {
		wg.Go(func() {
			defer comms[r].Close()
			sh, err := host.Shard(ctx, devs[r], comms[r], split)
			if err != nil {
				errs[r] = err
				return
			}
			opt, err := train.NewOptimizer(train.OptimizerConfig{Name: "adamw", Beta1: 0.9, Beta2: 0.95, Eps: 1e-8}, sh)
			if err != nil {
				errs[r] = err
				return
			}
			tr := sft.NewTrainer(sh, opt, bsz, seq, 0)
			tr.Step([]*qwen2.Batch{b}, 1e-3)
			errs[r] = sh.Err()
		})
	}
	wg.Wait()
	var acts [tp]int64
	for r := range tp {
		if errs[r] != nil {
			t.Fatalf("rank %d: %v", r, errs[r])
		}
		p, err := plan.ForRun(cfg, plan.Run{TP: tp, DP: 1, TPRank: r, B: bsz, T: seq, ActDType: devs[r].ActDType()})
		if err != nil {
			t.Fatal(err)
		}
		checks := plan.Compare(p, devs[r].PeakBytes())
		t.Logf("rank %d: %s; backend %v", r, plan.CheckLine(checks), devs[r].PeakBytes())
		if err := plan.Verify(checks); err != nil {
			t.Errorf("rank %d: %v", r, err)
		}
		acts[r] = p.Activations
	}
	if acts[0] == acts[1] {
		t.Errorf("both ranks planned %d activation bytes: the uneven FFN split is not in the plan", acts[0])
	}
}

// TestPlanMatchesMeasuredZeRO1Step runs one SFT step of the base model on
// a data-parallel group of two ranks (two emulated devices, goroutines
// over loopback TCP) with ZeRO-1, the model loaded with the rank's ZeRO
// storage (qwen2.Storage): each device must hold the bf16 compute copy,
// the fp32 gradients, and only the rank's chunk of the fp32 master and of
// AdamW's moments (with optimizer offload: neither), matching plan.ForRun
// with ZeRO to the byte on each rank. Then the checkpoint path: the whole
// master cannot be read before it is gathered (Pull fails), and after
// optim.PrepareSave rank 0's Save writes the same weights on both ranks'
// gather.
func TestPlanMatchesMeasuredZeRO1Step(t *testing.T) {
	const dp, bsz, seq = 2, 1, 16
	cfg, err := qwen2.LoadConfig(filepath.Join(baseModel, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	micro := []*qwen2.Batch{batch(cfg, bsz, seq, 3), batch(cfg, bsz, seq, 4)}
	for _, offload := range []bool{false, true} {
		devs := []*cuda.Backend{cuda.OpenForTest(t), cuda.OpenForTest(t)}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		comms, err := dist.ConnectLocal(ctx, dp, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		saved := filepath.Join(t.TempDir(), "saved")
		var n int
		masters := make([][]float32, dp)
		errs := make([]error, dp)
		var wg sync.WaitGroup
		for r := range dp {
			wg.Go(func() {
				defer comms[r].Close()
				errs[r] = func() error {
					md, err := qwen2.LoadWith(baseModel, devs[r], qwen2.Storage{ZeRO: true, Ranks: dp, Rank: r, Offload: offload})
					if err != nil {
						return err
					}
					n = md.P.Count()
					opt, err := optim.NewZeRO1(devs[r], train.Segments(md.P), n, optim.AdamWConfig{Beta1: 0.9, Beta2: 0.95, Eps: 1e-8}, comms[r], offload)
					if err != nil {
						return err
					}
					tr := sft.NewTrainer(md, opt, bsz, seq, 1.0)
					tr.DataParallel(train.DP{Comm: comms[r]})
					if res, err := tr.GradientsShared(ctx, micro); err != nil || res.Targets == 0 {
						return fmt.Errorf("gradients: %d targets, %v", res.Targets, err)
					}
					if _, err := tr.Update(ctx, 1e-3); err != nil {
						return err
					}
					if err := md.P.Pull(); err == nil {
						return fmt.Errorf("Pull read the master whole while this rank holds only its chunk and the others changed theirs")
					}
					if err := optim.PrepareSave(ctx, opt, md.P.Weights); err != nil {
						return err
					}
					if err := md.P.Pull(); err != nil {
						return fmt.Errorf("Pull after PrepareSave: %w", err)
					}
					masters[r] = slices.Clone(md.P.Flat)
					if r == 0 {
						return md.Save(saved, qwen2.SaveOptions{DType: engine.F32})
					}
					return nil
				}()
			})
		}
		wg.Wait()
		cancel()
		if err := errors.Join(errs...); err != nil {
			t.Fatalf("offload %v: %v", offload, err)
		}
		for r := range dp {
			p, err := plan.ForRun(cfg, plan.Run{TP: 1, DP: dp, DPRank: r, B: bsz, T: seq, Optimizer: "adamw", ActDType: devs[r].ActDType(), ZeRO: true, Offload: offload})
			if err != nil {
				t.Fatal(err)
			}
			peak := devs[r].PeakBytes()
			checks := plan.Compare(p, peak)
			t.Logf("offload %v rank %d: %s", offload, r, plan.CheckLine(checks))
			if err := plan.Verify(checks); err != nil {
				t.Errorf("offload %v rank %d: %v", offload, r, err)
			}
			// The plan's figures are the chunk's, independently of the
			// plan's own arithmetic.
			chunk := int64(dist.ChunkLen(n, dp, r))
			wantW, wantO := 2*int64(n)+4*chunk, 8*chunk
			if offload {
				wantW, wantO = 2*int64(n), 0
			}
			if peak[engine.MemWeights] != wantW || peak[engine.MemOptimizer] != wantO || peak[engine.MemGrads] != 4*int64(n) {
				t.Errorf("offload %v rank %d: weights %d, optimizer %d, grads %d bytes; want %d, %d, %d (the %d-value chunk of %d)",
					offload, r, peak[engine.MemWeights], peak[engine.MemOptimizer], peak[engine.MemGrads], wantW, wantO, 4*n, chunk, n)
			}
		}
		if !slices.Equal(masters[0], masters[1]) {
			t.Errorf("offload %v: the ranks gathered different masters", offload)
		}
		back, err := qwen2.Load(saved, engine.NewDefaultCPU(engine.CPUOptions{Workers: 1}))
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(back.P.Flat, masters[0]) {
			t.Errorf("offload %v: the checkpoint is not the gathered master", offload)
		}
		if base, _ := qwen2.Load(baseModel, engine.NewDefaultCPU(engine.CPUOptions{Workers: 1})); slices.Equal(back.P.Flat, base.P.Flat) {
			t.Errorf("offload %v: the checkpoint holds the base weights: the step changed nothing", offload)
		}
	}
}

// TestPlanMatchesMeasuredReference loads GRPO's frozen reference
// inference-only (qwen2.LoadInference) next to the policy on one device:
// alone it costs 2 bytes a parameter (the bf16 compute copy; no master,
// no gradients), and with the policy after an SFT step and a reference
// forward pass the device matches plan.ForRun with Reference to the byte.
func TestPlanMatchesMeasuredReference(t *testing.T) {
	const bsz, seq = 1, 16
	dev := cuda.OpenForTest(t)
	ref, err := qwen2.LoadInference(baseModel, dev)
	if err != nil {
		t.Fatal(err)
	}
	n := int64(ref.P.Count())
	if got := dev.PeakBytes(); got[engine.MemWeights] != 2*n || got[engine.MemGrads] != 0 {
		t.Errorf("reference alone: weights %d, grads %d bytes; want %d (bf16) and 0", got[engine.MemWeights], got[engine.MemGrads], 2*n)
	}
	md, err := qwen2.Load(baseModel, dev)
	if err != nil {
		t.Fatal(err)
	}
	opt, err := train.NewOptimizer(train.OptimizerConfig{Name: "adamw", Beta1: 0.9, Beta2: 0.95, Eps: 1e-8}, md)
	if err != nil {
		t.Fatal(err)
	}
	tr := sft.NewTrainer(md, opt, bsz, seq, 1.0)
	b := batch(md.Cfg, bsz, seq, 3)
	if r := tr.Step([]*qwen2.Batch{b}, 1e-3); r.Targets == 0 {
		t.Fatal("the step had no targets")
	}
	// The reference's log-probs, in the policy's arena as GRPO computes them.
	ref.Forward(tr.Acts(), b)
	st := engine.TokenStats{LogProb: make([]float32, bsz*seq)}
	ref.TokenStats(tr.Acts(), b, st)
	p, err := plan.ForRun(md.Cfg, plan.Run{TP: 1, DP: 1, B: bsz, T: seq, Optimizer: "adamw", ActDType: dev.ActDType(), Reference: true})
	if err != nil {
		t.Fatal(err)
	}
	if p.RefPolicy != 2*n {
		t.Errorf("plan: reference %d bytes, want %d (bf16)", p.RefPolicy, 2*n)
	}
	checks := plan.Compare(p, dev.PeakBytes())
	t.Log(plan.CheckLine(checks))
	if err := plan.Verify(checks); err != nil {
		t.Error(err)
	}
}
