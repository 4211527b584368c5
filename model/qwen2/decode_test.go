package qwen2

import (
	"math"
	"math/rand/v2"
	"testing"

	"purpcode/engine"
	"purpcode/internal/testref"
)

// tinyRandomModel is a small model that needs no reference files: GQA
// (4 query heads over 2 kv heads), tied embeddings, q/k/v bias.
func tinyRandomModel(t testing.TB, cpu *engine.CPU) *Model {
	t.Helper()
	cfg, err := ParseConfig([]byte(`{"model_type":"qwen2","hidden_size":32,"intermediate_size":48,
		"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"vocab_size":97,
		"max_position_embeddings":80,"rope_theta":10000,"rms_norm_eps":1e-6,"tie_word_embeddings":true}`), "tiny")
	if err != nil {
		t.Fatal(err)
	}
	m := New(cfg, cpu, 7)
	// HF init leaves biases at zero and norms at one; randomise them so the
	// test exercises them.
	r := rand.New(rand.NewPCG(1, 2))
	for _, p := range m.P.List {
		if !p.Decay {
			for i := range p.W.F32 {
				p.W.F32[i] += float32(r.NormFloat64() * 0.1)
			}
		}
	}
	return m
}

// decodeModels returns the models the decode tests run on: the random one
// always, the PyTorch-checked reference checkpoint when present.
func decodeModels(t *testing.T) map[string]*Model {
	cpu := engine.NewDefaultCPU(engine.CPUOptions{})
	ms := map[string]*Model{"random": tinyRandomModel(t, cpu)}
	// A subtest, so that a missing reference skips only this model.
	t.Run("load-ref", func(t *testing.T) {
		dir := testref.Dir(t, "qwen2-tiny")
		m, err := Load(dir, cpu)
		if err != nil {
			t.Fatal(err)
		}
		ms["ref"] = m
	})
	return ms
}

// fullLogits runs the training forward pass over ids and returns (T, V).
func fullLogits(m *Model, ids []int32) []float32 {
	b := &Batch{B: 1, T: len(ids), IDs: ids}
	a := m.NewActs(1, len(ids))
	m.Forward(a, b)
	rows := make([]int, len(ids))
	for i := range rows {
		rows[i] = i
	}
	out := engine.New(len(ids), m.Cfg.Vocab)
	m.Logits(a, rows, out)
	return out.F32
}

func randomIDs(r *rand.Rand, n, vocab int) []int32 {
	ids := make([]int32, n)
	for i := range ids {
		ids[i] = int32(r.IntN(vocab))
	}
	return ids
}

// rowErr is the max abs difference of two logit rows relative to the max
// abs value of the reference row.
func rowErr(got, want []float32) float64 {
	var d, s float64
	for i := range want {
		d = math.Max(d, math.Abs(float64(got[i])-float64(want[i])))
		s = math.Max(s, math.Abs(float64(want[i])))
	}
	return d / math.Max(s, 1e-30)
}

const decodeTol = 1e-5

// TestDecodeMatchesForward feeds several sequences through the decoder
// together in uneven chunks (fresh prefill, chunked prefill over a cached
// prefix, single-token decode, mixed in one step) with small blocks so
// block boundaries are crossed, and compares every returned logit row with
// the full forward pass over the same tokens.
func TestDecodeMatchesForward(t *testing.T) {
	for name, m := range decodeModels(t) {
		t.Run(name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(3, 4))
			lengths := []int{1, 2, 5, 16, 17, 33, m.Cfg.MaxPositions}
			// chunk schedules: step k feeds chunk[min(k, len-1)] tokens.
			schedules := [][]int{{1}, {7, 1}, {3, 5, 1, 2}, {16, 16, 1}}
			for _, bs := range []int{4, 16} {
				for si, sched := range schedules {
					kv := m.NewKVCache(bs, 64)
					dec := m.NewDecoder(kv)
					toks := make([][]int32, len(lengths))
					seqs := make([]*SeqCache, len(lengths))
					want := make([][]float32, len(lengths))
					for i, n := range lengths {
						toks[i] = randomIDs(r, n, m.Cfg.Vocab)
						seqs[i] = kv.NewSeq()
						want[i] = fullLogits(m, toks[i])
					}
					worst := 0.0
					for step := 0; ; step++ {
						var in []StepSeq
						var which []int
						for i := range toks {
							done := seqs[i].Len()
							if done == len(toks[i]) {
								continue
							}
							c := sched[min(step, len(sched)-1)]
							// Stagger sequences so a step mixes prefill and decode.
							c = max(1, c-i%2)
							end := min(done+c, len(toks[i]))
							in = append(in, StepSeq{Seq: seqs[i], Tokens: toks[i][done:end]})
							which = append(which, i)
						}
						if len(in) == 0 {
							break
						}
						all := step%2 == 0
						starts := make([]int, len(in))
						for j, s := range in {
							starts[j] = s.Seq.Len()
						}
						logits, err := dec.Step(in, all)
						if err != nil {
							t.Fatal(err)
						}
						v := m.Cfg.Vocab
						row := 0
						for j, s := range in {
							i := which[j]
							for p := starts[j]; p < starts[j]+len(s.Tokens); p++ {
								if !all && p != starts[j]+len(s.Tokens)-1 {
									continue
								}
								e := rowErr(logits.F32[row*v:(row+1)*v], want[i][p*v:(p+1)*v])
								worst = math.Max(worst, e)
								if e > decodeTol {
									t.Fatalf("block %d schedule %d: seq len %d position %d: relative error %.3g > %g", bs, si, len(toks[i]), p, e, decodeTol)
								}
								row++
							}
						}
						if row != logits.Shape[0] {
							t.Fatalf("checked %d rows of %d", row, logits.Shape[0])
						}
					}
					for _, s := range seqs {
						kv.Free(s)
					}
					if kv.FreeBlocks() != kv.NumBlocks() {
						t.Errorf("%d of %d blocks free after freeing every sequence", kv.FreeBlocks(), kv.NumBlocks())
					}
					dec.Close()
					t.Logf("block %d schedule %v: worst relative error %.2g", bs, sched, worst)
				}
			}
		})
	}
}

// TestForkSharesPrefix prefills a prompt once, forks it, and checks that
// each fork decodes its own continuation exactly like a full forward pass,
// and that shared blocks return to the pool only when the last holder
// frees them.
func TestForkSharesPrefix(t *testing.T) {
	cpu := engine.NewDefaultCPU(engine.CPUOptions{})
	m := tinyRandomModel(t, cpu)
	r := rand.New(rand.NewPCG(5, 6))
	for _, plen := range []int{8, 11} { // block-aligned and not
		kv := m.NewKVCache(4, 32)
		dec := m.NewDecoder(kv)
		prompt := randomIDs(r, plen, m.Cfg.Vocab)
		root := kv.NewSeq()
		if _, err := dec.Step([]StepSeq{{Seq: root, Tokens: prompt}}, false); err != nil {
			t.Fatal(err)
		}
		before := kv.FreeBlocks()
		var forks []*SeqCache
		var conts [][]int32
		for i := 0; i < 3; i++ {
			f, err := kv.Fork(root)
			if err != nil {
				t.Fatal(err)
			}
			forks = append(forks, f)
			conts = append(conts, randomIDs(r, 9, m.Cfg.Vocab))
		}
		wantUsed := 0
		if plen%4 != 0 {
			wantUsed = 3
		}
		if used := before - kv.FreeBlocks(); used != wantUsed {
			t.Errorf("prompt %d: forks took %d blocks, want %d (a copy of the partial block each)", plen, used, wantUsed)
		}
		kv.Free(root)
		for step := 0; step < 9; step++ {
			in := make([]StepSeq, len(forks))
			for i, f := range forks {
				in[i] = StepSeq{Seq: f, Tokens: conts[i][step : step+1]}
			}
			logits, err := dec.Step(in, false)
			if err != nil {
				t.Fatal(err)
			}
			v := m.Cfg.Vocab
			for i := range forks {
				full := fullLogits(m, append(append([]int32(nil), prompt...), conts[i][:step+1]...))
				p := plen + step
				if e := rowErr(logits.F32[i*v:(i+1)*v], full[p*v:(p+1)*v]); e > decodeTol {
					t.Fatalf("prompt %d fork %d step %d: relative error %.3g", plen, i, step, e)
				}
			}
		}
		for _, f := range forks {
			kv.Free(f)
		}
		if kv.FreeBlocks() != kv.NumBlocks() {
			t.Errorf("prompt %d: %d of %d blocks free after freeing all forks", plen, kv.FreeBlocks(), kv.NumBlocks())
		}
		dec.Close()
	}
}

// TestStepErrorsLeaveStateUnchanged checks the errors a caller can cause.
func TestStepErrorsLeaveStateUnchanged(t *testing.T) {
	cpu := engine.NewDefaultCPU(engine.CPUOptions{})
	m := tinyRandomModel(t, cpu)
	kv := m.NewKVCache(4, 3)
	dec := m.NewDecoder(kv)
	defer dec.Close()
	a, b := kv.NewSeq(), kv.NewSeq()
	if _, err := dec.Step([]StepSeq{{Seq: a, Tokens: make([]int32, 8)}}, false); err != nil {
		t.Fatal(err)
	}
	cases := map[string][]StepSeq{
		"pool full":     {{Seq: b, Tokens: make([]int32, 5)}},
		"bad id":        {{Seq: b, Tokens: []int32{1, int32(m.Cfg.Vocab)}}},
		"no tokens":     {{Seq: b}},
		"twice":         {{Seq: a, Tokens: []int32{1}}, {Seq: a, Tokens: []int32{2}}},
		"past max pos":  {{Seq: a, Tokens: make([]int32, m.Cfg.MaxPositions)}},
		"empty request": nil,
	}
	for name, in := range cases {
		if _, err := dec.Step(in, false); err == nil {
			t.Errorf("%s: no error", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
		if a.Len() != 8 || b.Len() != 0 || kv.FreeBlocks() != 1 {
			t.Fatalf("%s: state changed: lengths %d %d, %d blocks free", name, a.Len(), b.Len(), kv.FreeBlocks())
		}
	}
}
