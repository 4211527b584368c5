package plan

import (
	"testing"

	"purpcode/dist"
	"purpcode/engine"
)

// TestForRunZeROChunks: under ZeRO-1 each DP rank is planned for its own
// chunk of master and moments, dist's chunk (what optim.ZeRO1 and
// qwen2.Storage hold), so the ranks' chunks add up to the parameters when
// DP does not divide them; with offload both leave the device for the
// host, and offload without ZeRO is refused.
func TestForRunZeROChunks(t *testing.T) {
	cfg := tinyCfg(t)
	const dp = 3
	var sum int64
	for r := range dp {
		p, err := ForRun(cfg, Run{TP: 1, DP: dp, DPRank: r, B: 1, T: 2, ActDType: engine.BF16, ZeRO: true})
		if err != nil {
			t.Fatal(err)
		}
		if p.RankParams%dp == 0 {
			t.Fatalf("%d parameters: DP %d divides them, the test needs uneven chunks", p.RankParams, dp)
		}
		want := int64(dist.ChunkLen(int(p.RankParams), dp, r))
		if p.ShardElems != want || p.Master != 4*want || p.Optimizer != 8*want {
			t.Errorf("DP rank %d: chunk %d (master %d, AdamW %d), want dist's %d", r, p.ShardElems, p.Master, p.Optimizer, want)
		}
		sum += p.ShardElems
		o, err := ForRun(cfg, Run{TP: 1, DP: dp, DPRank: r, B: 1, T: 2, ActDType: engine.BF16, ZeRO: true, Offload: true})
		if err != nil {
			t.Fatal(err)
		}
		if o.HostPerRank != p.Master+p.Optimizer || o.GPUResident != p.GPUResident-p.Master-p.Optimizer {
			t.Errorf("DP rank %d offload: host %d, device %d; want %d and %d", r, o.HostPerRank, o.GPUResident, p.Master+p.Optimizer, p.GPUResident-p.Master-p.Optimizer)
		}
		m := map[string]int64{engine.MemWeights: o.Weights, engine.MemGrads: o.Grads, engine.MemActivations: o.Activations, engine.MemScratch: o.Logits + o.Tables}
		if err := Verify(Compare(o, m)); err != nil {
			t.Errorf("DP rank %d offload: a device without master or optimizer state: %v", r, err)
		}
	}
	p, _ := ForRun(cfg, Run{TP: 1, DP: 1, B: 1, T: 2, ActDType: engine.BF16})
	if sum != p.RankParams {
		t.Errorf("the chunks hold %d elements, the model %d", sum, p.RankParams)
	}
	if _, err := ForRun(cfg, Run{TP: 1, DP: 2, B: 1, T: 2, ActDType: engine.BF16, Offload: true}); err == nil {
		t.Error("offload without ZeRO planned")
	}
	if _, err := ForRun(cfg, Run{TP: 1, DP: 2, DPRank: 2, B: 1, T: 2, ActDType: engine.BF16, ZeRO: true}); err == nil {
		t.Error("DP rank 2 of 2 planned")
	}
}
