package qwen2_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
	"time"

	"purpcode/dist"
	"purpcode/engine"
	"purpcode/model/qwen2"
)

// tpBenchConfig is the `make bench` model of bench_test.go's benchConfig
// (hidden 512, 8 layers, 8 heads / 2 kv heads, intermediate 1408, vocab
// 8192), repeated here because that file is in package qwen2 and this one
// must be external to import plan's layout (plan imports qwen2).
const tpBenchConfig = `{"model_type":"qwen2","hidden_size":512,"intermediate_size":1408,"num_hidden_layers":8,
"num_attention_heads":8,"num_key_value_heads":2,"vocab_size":8192,"max_position_embeddings":2048,
"rope_theta":1000000.0,"rms_norm_eps":1e-6,"tie_word_embeddings":false}`

// BenchmarkTPStep measures forward+backward (loss included, no optimizer)
// tokens/s of the bench model at batch 4 x 256 unsharded (tp=1) and as
// TP=2 and TP=4 shards, the ranks goroutines of one process over loopback
// TCP (dist.ConnectLocal). Each rank gets GOMAXPROCS/TP workers, so every
// configuration has the same CPU threads for the row-parallel ops (the
// GEMMs share OpenBLAS's one pool): on a CPU, TP shows what the
// collectives and the smaller per-rank GEMMs cost, not a speed-up.
func BenchmarkTPStep(b *testing.B) {
	cfg, err := qwen2.ParseConfig([]byte(tpBenchConfig), "bench")
	if err != nil {
		b.Fatal(err)
	}
	const bsz, seq = 4, 256
	host := qwen2.New(cfg, engine.NewDefaultCPU(engine.CPUOptions{}), 1)
	batch := tpBenchBatch(cfg, bsz, seq)
	targets := 0
	for _, t := range batch.Targets {
		if t != engine.IgnoreIndex {
			targets++
		}
	}
	for _, tp := range []int{1, 2, 4} {
		b.Run(fmt.Sprintf("tp=%d", tp), func(b *testing.B) {
			ranks := []*qwen2.Model{host}
			if tp > 1 {
				ranks = tpShards(b, host, tp)
			}
			acts := make([]*qwen2.Acts, tp)
			for r, m := range ranks {
				acts[r] = m.NewActs(bsz, seq)
			}
			step := func() {
				var wg sync.WaitGroup
				for r, m := range ranks {
					wg.Go(func() {
						m.P.ZeroGrad()
						m.Forward(acts[r], batch)
						m.Loss(acts[r], batch, true, 1/float32(targets))
						m.Backward(acts[r], batch)
					})
				}
				wg.Wait()
				for r, m := range ranks {
					if err := m.Err(); err != nil {
						b.Fatalf("rank %d: %v", r, err)
					}
				}
			}
			step() // warm up: fault in the arenas, open the connections' buffers
			b.ResetTimer()
			for range b.N {
				step()
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N*bsz*seq)/b.Elapsed().Seconds(), "tokens/s")
		})
	}
}

// tpShards builds host's tp shards over a loopback group, each on its own
// CPU backend with GOMAXPROCS/tp workers; the group closes with b.
func tpShards(b *testing.B, host *qwen2.Model, tp int) []*qwen2.Model {
	// The shards' collectives run under this context for the whole
	// benchmark; b.Cleanup ends it.
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	comms, err := dist.ConnectLocal(ctx, tp, time.Minute)
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range comms {
		b.Cleanup(func() { _ = c.Close() })
	}
	split := planSplit(b, host.Cfg, tp)
	workers := max(1, runtime.GOMAXPROCS(0)/tp)
	out := make([]*qwen2.Model, tp)
	for r := range tp {
		// Shard runs no collective: the ranks can be built one by one.
		sh, err := host.Shard(ctx, engine.NewDefaultCPU(engine.CPUOptions{Workers: workers}), comms[r], split)
		if err != nil {
			b.Fatalf("rank %d: %v", r, err)
		}
		out[r] = sh
	}
	return out
}

// tpBenchBatch is b rows of t random tokens, next-token targets, the last
// position of each row ignored (bench_test.go's benchBatch).
func tpBenchBatch(cfg *qwen2.Config, b, t int) *qwen2.Batch {
	r := rand.New(rand.NewPCG(1, 1))
	ids := make([]int32, b*t)
	for i := range ids {
		ids[i] = int32(r.IntN(cfg.Vocab))
	}
	targets := make([]int32, b*t)
	copy(targets, ids[1:])
	for row := 1; row <= b; row++ {
		targets[row*t-1] = engine.IgnoreIndex
	}
	return &qwen2.Batch{B: b, T: t, IDs: ids, Targets: targets}
}
