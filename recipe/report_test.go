package recipe

import (
	"encoding/json"
	"image"
	"math"
	"os"
	"path/filepath"
	"testing"

	"purpcode/internal/chart"
	"purpcode/internal/chart/charttest"
	"purpcode/oracle"
	"purpcode/train/grpo"
	"purpcode/train/sft"
)

func writeRows(t *testing.T, path string, rows ...any) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	enc := json.NewEncoder(f)
	for _, r := range rows {
		if err := enc.Encode(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// checkPNG checks the PNG against its layout and, with $CHART_OUT set,
// keeps a copy to look at.
func checkPNG(t *testing.T, path string, l chart.Layout) image.Image {
	t.Helper()
	if err := charttest.Check(path, l); err != nil {
		t.Fatalf("%s: %v", filepath.Base(path), err)
	}
	img, err := charttest.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if dir := os.Getenv("CHART_OUT"); dir != "" {
		b, _ := os.ReadFile(path)
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(path)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return img
}

func legendCounts(l chart.Layout) []int {
	var n []int
	for _, p := range l.Panels {
		n = append(n, len(p.Colours))
	}
	return n
}

func TestPlotSFTPNG(t *testing.T) {
	dir := t.TempDir()
	// Three epochs of 15 steps, held-out loss every 10 steps and at the end,
	// in the trainer's own row types.
	rows := []any{sft.DataEvent{Event: "data"}}
	for s := int64(1); s <= 45; s++ {
		m := sft.Metrics{Step: s, Epoch: float64(s) / 15, Loss: 2*math.Exp(-float64(s)/12) + 0.2*math.Sin(float64(s)), LR: 1e-5 * math.Min(1, float64(s)/5)}
		if s%10 == 0 || s == 45 {
			el := 1.5 * math.Exp(-float64(s)/20)
			m.EvalLoss = &el
		}
		rows = append(rows, m)
	}
	metrics := filepath.Join(dir, sft.MetricsFile)
	writeRows(t, metrics, rows...)
	png := filepath.Join(dir, "sft_loss.png")
	l, err := plotSFT(metrics, png)
	if err != nil {
		t.Fatal(err)
	}
	checkPNG(t, png, l)
	// Loss panel: per-step points, their EMA, the held-out loss; then lr.
	if got := legendCounts(l); len(got) != 2 || got[0] != 3 || got[1] != 1 {
		t.Fatalf("legend entries per panel %v, want [3 1]", got)
	}
}

func TestEpochEnds(t *testing.T) {
	steps := []float64{1, 2, 3, 4, 5, 6, 7}
	// Two epochs of 2.5 steps: the first ends during step 3, the second at 5.
	epoch := []float64{0.4, 0.8, 1.2, 1.6, 2.0, 2.4, 2.8}
	got := epochEnds(steps, epoch)
	if len(got) != 2 || got[0].X != 3 || got[1].X != 5 || got[1].Label != "epoch 2" {
		t.Fatalf("epoch markers %+v", got)
	}
}

func TestPlotRLPNG(t *testing.T) {
	dir := t.TempDir()
	var rows []any
	for s := int64(1); s <= 30; s++ {
		by := map[string]float64{
			oracle.OracleCodeSec:     0.3 + 0.02*float64(s),
			oracle.OracleCorrectness: 0.5 + 0.01*float64(s),
		}
		// noreject sampled only at steps 1-10 and 21-30; general-safety never.
		if s <= 10 || s > 20 {
			by[oracle.OracleNoReject] = 0.9
		}
		rows = append(rows, grpo.Metrics{Step: s, LR: 1e-6, Reward: 0.4 + 0.015*float64(s) + 0.05*math.Sin(float64(s)),
			RewardOracle: by, FormatRate: 0.95, KL: 0.001 * float64(s), Entropy: 1 - 0.01*float64(s)})
	}
	metrics := filepath.Join(dir, grpo.MetricsFile)
	writeRows(t, metrics, rows...)
	reward, training := filepath.Join(dir, "rl_reward.png"), filepath.Join(dir, "rl_training.png")
	ls, err := plotRL(metrics, reward, training)
	if err != nil {
		t.Fatal(err)
	}
	img := checkPNG(t, reward, ls[0])
	checkPNG(t, training, ls[1])
	// Reward: points + EMA + format rate; per oracle: the three sampled ones.
	if got := legendCounts(ls[0]); len(got) != 2 || got[0] != 3 || got[1] != 3 {
		t.Fatalf("reward legend entries %v, want [3 3]", got)
	}
	if got := legendCounts(ls[1]); len(got) != 3 || got[0] != 2 || got[1] != 2 || got[2] != 1 {
		t.Fatalf("KL / entropy / lr legend entries %v, want [2 2 1]", got)
	}
	// noreject (the third sampled oracle) has nothing between steps 12 and 19.
	p := ls[0].Panels[1]
	col := func(step float64) int { return p.Data.Min.X + int((step-1)/29*float64(p.Data.Dx())) }
	gap := image.Rect(col(12), p.Data.Min.Y, col(19), p.Data.Max.Y)
	if got := charttest.Colours(img, gap, p.Colours[2:3]); len(got) != 0 {
		t.Error("noreject's reward is joined across steps that did not sample it")
	}
	if got := charttest.Colours(img, gap, p.Colours[:1]); len(got) != 1 {
		t.Error("codesec, sampled every step, is not drawn there")
	}
}
