package qwen2_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"purpcode/dist"
	"purpcode/engine"
	"purpcode/model/qwen2"
)

const baseDir = "../../testdata/base-model"

// logProbs runs m forward on b and returns each position's target
// log-probability and the loss (no gradients).
func logProbs(m *qwen2.Model, b *qwen2.Batch) ([]float32, float64) {
	a := m.NewActs(b.B, b.T)
	defer a.Free()
	m.Forward(a, b)
	st := engine.TokenStats{LogProb: make([]float32, b.B*b.T)}
	m.TokenStats(a, b, st)
	loss, _ := m.Loss(a, b, false, 0)
	return st.LogProb, loss
}

// mustPanic runs fn and fails unless it panics with a message naming the
// model as inference-only.
func mustPanic(t *testing.T, what string, fn func()) {
	t.Helper()
	defer func() {
		t.Helper()
		r := recover()
		if r == nil || !strings.Contains(fmt.Sprint(r), "inference-only") {
			t.Errorf("%s on an inference-only model: panic %v, want one naming it inference-only", what, r)
		}
	}()
	fn()
}

// TestLoadInference: an inference-only model computes what the trainable
// one computes (bit for bit on the CPU: forward, log-probs, greedy
// decoding), has no gradient buffers, refuses
// gradients with a panic naming the cause (a programming error), and
// refuses to be saved or pulled with an error.
func TestLoadInference(t *testing.T) {
	cpu := engine.NewDefaultCPU(engine.CPUOptions{Workers: 1})
	full, err := qwen2.Load(baseDir, cpu)
	if err != nil {
		t.Fatal(err)
	}
	inf, err := qwen2.LoadInference(baseDir, cpu)
	if err != nil {
		t.Fatal(err)
	}
	if full.Inference() || !inf.Inference() || inf.P.Grad != nil || inf.P.Weights.Grad != nil {
		t.Fatalf("Inference(): full %v, inference-only %v (host gradients %d values)", full.Inference(), inf.Inference(), len(inf.P.Grad))
	}
	b := tpBatch(full.Cfg.Vocab)
	wantLp, wantLoss := logProbs(full, b)
	gotLp, gotLoss := logProbs(inf, b)
	if i := sameBits(gotLp, wantLp); i >= 0 || gotLoss != wantLoss {
		t.Errorf("inference-only model: log-prob differs at %d, loss %v vs %v", i, gotLoss, wantLoss)
	}
	// Generation (the paged decoder) reads the compute copy alone too.
	wantTok, wantLogits, err := greedy(full, 4)
	if err != nil {
		t.Fatal(err)
	}
	gotTok, gotLogits, err := greedy(inf, 4)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.EqualFunc(gotTok, wantTok, slices.Equal) || !slices.EqualFunc(gotLogits, wantLogits, slices.Equal) {
		t.Errorf("inference-only model decodes %v, the trainable one %v (or the logits differ)", gotTok, wantTok)
	}
	a := inf.NewActs(b.B, b.T)
	inf.Forward(a, b)
	mustPanic(t, "Loss with gradients", func() { inf.Loss(a, b, true, 1) })
	mustPanic(t, "TokenGrad", func() { inf.TokenGrad(a, b, make([]float32, b.B*b.T), nil) })
	mustPanic(t, "Backward", func() { inf.Backward(a, b) })
	mustPanic(t, "ZeroGrad", func() { inf.P.ZeroGrad() })
	if err := inf.P.Pull(); err == nil || !strings.Contains(err.Error(), "inference-only") {
		t.Errorf("Pull: %v, want an error naming the model inference-only", err)
	}
	dir := filepath.Join(t.TempDir(), "out")
	if err := inf.Save(dir, qwen2.SaveOptions{DType: engine.F32}); err == nil || !strings.Contains(err.Error(), "inference-only") {
		t.Errorf("Save: %v, want an error naming the model inference-only", err)
	}
	if err := full.Save(dir, qwen2.SaveOptions{DType: engine.F32}); err != nil {
		t.Errorf("Save of the trainable model: %v", err)
	}
}

// TestLoadShardInference: an inference-only TP shard (the sharded GRPO
// reference) computes the same log-probs as the trainable shard at TP 2,
// with its collectives, and has no gradients.
func TestLoadShardInference(t *testing.T) {
	cpu := engine.NewDefaultCPU(engine.CPUOptions{Workers: 1})
	cfg, err := qwen2.LoadConfig(filepath.Join(baseDir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	split := planSplit(t, cfg, 2)
	b := tpBatch(cfg.Vocab)
	eachRank(t, 2, func(ctx context.Context, c dist.Comm) error {
		full, err := qwen2.LoadShard(ctx, baseDir, cpu, c, split)
		if err != nil {
			return err
		}
		inf, err := qwen2.LoadShardInference(ctx, baseDir, cpu, c, split)
		if err != nil {
			return err
		}
		if !inf.Inference() || inf.Backend() != engine.Backend(cpu) {
			return fmt.Errorf("shard: inference-only %v, backend %s", inf.Inference(), inf.Backend().Name())
		}
		wantLp, wantLoss := logProbs(full, b)
		gotLp, gotLoss := logProbs(inf, b)
		if err := inf.Err(); err != nil {
			return err
		}
		if i := sameBits(gotLp, wantLp); i >= 0 || gotLoss != wantLoss {
			return fmt.Errorf("inference-only shard: log-prob differs at %d, loss %v vs %v", i, gotLoss, wantLoss)
		}
		return nil
	})
}

// TestStorageRefusals: contradictory or out-of-range storage fails before
// loading; ZeRO storage on the CPU keeps the master whole (it is the
// compute copy).
func TestStorageRefusals(t *testing.T) {
	cpu := engine.NewDefaultCPU(engine.CPUOptions{Workers: 1})
	for _, st := range []qwen2.Storage{
		{Inference: true, ZeRO: true, Ranks: 2},
		{ZeRO: true, Ranks: 2, Rank: 2},
		{ZeRO: true, Ranks: 0},
		{Offload: true},
	} {
		if _, err := qwen2.LoadWith(baseDir, cpu, st); err == nil {
			t.Errorf("storage %+v loaded", st)
		}
	}
	m, err := qwen2.LoadWith(baseDir, cpu, qwen2.Storage{ZeRO: true, Ranks: 2, Rank: 1, Offload: true})
	if err != nil {
		t.Fatal(err)
	}
	if !m.P.Weights.MasterWhole() || m.P.Weights.Master != m.P.Weights.Compute || m.P.Pull() != nil {
		t.Errorf("ZeRO storage on the CPU: master whole %v, the compute copy %v", m.P.Weights.MasterWhole(), m.P.Weights.Master == m.P.Weights.Compute)
	}
}
