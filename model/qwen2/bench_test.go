package qwen2

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"testing"
	"time"

	"purpcode/engine"
	"purpcode/internal/testref"
	"purpcode/kernels"
)

// benchConfig is the `make bench` model: hidden 512, 8 layers, 8 heads / 2
// kv heads, intermediate 1408, vocab 8192.
const benchConfig = `{"model_type":"qwen2","hidden_size":512,"intermediate_size":1408,"num_hidden_layers":8,
"num_attention_heads":8,"num_key_value_heads":2,"vocab_size":8192,"max_position_embeddings":2048,
"rope_theta":1000000.0,"rms_norm_eps":1e-6,"tie_word_embeddings":false}`

func benchBatch(cfg *Config, b, t int) *Batch {
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
	return &Batch{B: b, T: t, IDs: ids, Targets: targets}
}

// timedBLAS records the time and FLOPs of every GEMM by shape, so the
// benchmark can compare GEMM throughput inside the model with the raw
// library at the same shapes.
type timedBLAS struct {
	inner engine.Sgemmer
	mu    sync.Mutex
	stats map[string]*gemmStat
}

type gemmStat struct {
	ta, tb  bool
	m, n, k int
	calls   int
	dur     time.Duration
}

func (t *timedBLAS) Name() string { return t.inner.Name() }

func (t *timedBLAS) Sgemm(ta, tb bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	start := time.Now()
	t.inner.Sgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
	d := time.Since(start)
	key := fmt.Sprintf("%dx%dx%d/%v%v", m, n, k, ta, tb)
	t.mu.Lock()
	s := t.stats[key]
	if s == nil {
		s = &gemmStat{ta: ta, tb: tb, m: m, n: n, k: k}
		t.stats[key] = s
	}
	s.calls++
	s.dur += d
	t.mu.Unlock()
}

// BenchmarkTrainStep measures forward+backward tokens/s of the bench model
// at batch 4 x 256, and how fast its big GEMMs run compared with the same
// shapes called alone (the gemm_vs_raw metric; target >= 0.9).
func BenchmarkTrainStep(b *testing.B) {
	for _, lib := range []struct {
		name    string
		forceGo bool
	}{{"openblas", false}, {"go", true}} {
		b.Run(lib.name, func(b *testing.B) {
			blas := kernels.LoadBLAS(kernels.BLASOptions{ForceGo: lib.forceGo})
			if !lib.forceGo && !blas.IsOpenBLAS() {
				testref.Missing(b, testref.NeedOpenBLAS, blas.FallbackReason())
			}
			tb := &timedBLAS{inner: blas, stats: map[string]*gemmStat{}}
			cfg, err := ParseConfig([]byte(benchConfig), "bench")
			if err != nil {
				b.Fatal(err)
			}
			m := New(cfg, engine.NewCPU(tb, 0), 1)
			batch := benchBatch(cfg, 4, 256)
			a := m.NewActs(4, 256)
			step := func() {
				m.P.ZeroGrad()
				m.Forward(a, batch)
				m.Loss(a, batch, true, 1.0/1020)
				m.Backward(a, batch)
			}
			step() // warm up, fault in the arenas
			tb.stats = map[string]*gemmStat{}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				step()
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N*4*256)/b.Elapsed().Seconds(), "tokens/s")
			reportGEMMEfficiency(b, blas, tb.stats)
		})
	}
}

// reportGEMMEfficiency re-runs each of the model's large GEMM shapes alone
// and reports (time alone)/(time in model) weighted by FLOPs.
func reportGEMMEfficiency(b *testing.B, blas engine.Sgemmer, stats map[string]*gemmStat) {
	var list []*gemmStat
	var inModel time.Duration
	var flops float64
	for _, s := range stats {
		f := 2 * float64(s.m) * float64(s.n) * float64(s.k) * float64(s.calls)
		if s.m*s.n*s.k < 1<<24 { // per-head attention GEMMs are timed too but reported apart
			continue
		}
		list = append(list, s)
		inModel += s.dur
		flops += f
	}
	sort.Slice(list, func(i, j int) bool { return list[i].dur > list[j].dur })
	var alone time.Duration
	for _, s := range list {
		rows := func(tr bool, r, c int) (int, int) {
			if tr {
				return c, r
			}
			return r, c
		}
		ar, ac := rows(s.ta, s.m, s.k)
		br, bc := rows(s.tb, s.k, s.n)
		x, y, z := make([]float32, ar*ac), make([]float32, br*bc), make([]float32, s.m*s.n)
		blas.Sgemm(s.ta, s.tb, s.m, s.n, s.k, 1, x, ac, y, bc, 0, z, s.n)
		reps := s.calls
		start := time.Now()
		for i := 0; i < reps; i++ {
			blas.Sgemm(s.ta, s.tb, s.m, s.n, s.k, 1, x, ac, y, bc, 1, z, s.n)
		}
		alone += time.Since(start)
	}
	if inModel > 0 {
		b.ReportMetric(flops/inModel.Seconds()/1e9, "model_gemm_GFLOP/s")
		b.ReportMetric(flops/alone.Seconds()/1e9, "raw_gemm_GFLOP/s")
		b.ReportMetric(alone.Seconds()/inModel.Seconds(), "gemm_vs_raw")
	}
}
