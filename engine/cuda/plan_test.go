package cuda_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"purpcode/dist"
	"purpcode/engine"
	"purpcode/engine/cuda"
	"purpcode/model/qwen2"
	"purpcode/plan"
	"purpcode/train"
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
