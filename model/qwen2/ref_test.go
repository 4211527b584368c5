package qwen2

import (
	"bufio"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"purpcode/checkpoint"
	"purpcode/engine"
	"purpcode/internal/testref"
)

type refRow struct {
	InputIDs []int32 `json:"input_ids"`
	Labels   []int32 `json:"labels"`
}

// refBatch reads qwen2-tiny/batch.jsonl as one (B, T) batch.
func refBatch(t *testing.T, dir string) *Batch {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, "batch.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := &Batch{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r refRow
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatal(err)
		}
		if b.T == 0 {
			b.T = len(r.InputIDs)
		} else if b.T != len(r.InputIDs) {
			t.Fatalf("rows of different length %d and %d", b.T, len(r.InputIDs))
		}
		b.B++
		b.IDs = append(b.IDs, r.InputIDs...)
		b.Targets = append(b.Targets, ShiftLabels(r.Labels)...)
	}
	return b
}

type refExpected struct {
	Loss     float64 `json:"loss"`
	GradNorm float64 `json:"grad_norm"`
	Rows     []struct {
		Loss         float64 `json:"loss"`
		TargetTokens int     `json:"target_tokens"`
	} `json:"rows"`
}

func readExpected(t *testing.T, dir string) refExpected {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	var e refExpected
	if err := json.Unmarshal(data, &e); err != nil {
		t.Fatal(err)
	}
	return e
}

func relErr(a, b []float32) float64 {
	var d, n float64
	for i := range a {
		x := float64(a[i]) - float64(b[i])
		d += x * x
		n += float64(b[i]) * float64(b[i])
	}
	return math.Sqrt(d) / math.Max(math.Sqrt(n), 1e-30)
}

// TestReferenceForwardBackward checks logits, loss and every gradient
// against PyTorch float64 results for the tiny Qwen2 checkpoint.
func TestReferenceForwardBackward(t *testing.T) {
	dir := testref.Dir(t, "qwen2-tiny")
	cpu := engine.NewDefaultCPU(engine.CPUOptions{})
	m, err := Load(dir, cpu)
	if err != nil {
		t.Fatal(err)
	}
	b := refBatch(t, dir)
	if err := m.Validate(b); err != nil {
		t.Fatal(err)
	}
	exp := readExpected(t, dir)

	a := m.NewActs(b.B, b.T)
	m.Forward(a, b)
	rows := make([]int, b.B*b.T)
	for i := range rows {
		rows[i] = i
	}
	logits := engine.New(len(rows), m.Cfg.Vocab)
	m.Logits(a, rows, logits)
	ref, err := checkpoint.Open(filepath.Join(dir, "expected_logits.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	want, err := ref.Tensor("logits")
	if err != nil {
		t.Fatal(err)
	}
	var maxErr float64
	for i, v := range want.ToF32() {
		maxErr = math.Max(maxErr, math.Abs(float64(v)-float64(logits.F32[i])))
	}
	t.Logf("logits max abs error %.3g", maxErr)
	if maxErr > 1e-4 {
		t.Errorf("logits max abs error %.3g > 1e-4", maxErr)
	}

	sum, count := m.Loss(a, b, true, float32(1/float64(exp.Rows[0].TargetTokens+exp.Rows[1].TargetTokens)))
	loss := sum / float64(count)
	t.Logf("loss %.12f (reference %.12f), %d targets", loss, exp.Loss, count)
	if rel := math.Abs(loss-exp.Loss) / exp.Loss; rel > 1e-6 {
		t.Errorf("loss %.10f vs reference %.10f: relative error %.3g > 1e-6", loss, exp.Loss, rel)
	}
	tl := a.TokenLoss()
	for r, row := range exp.Rows {
		var s float64
		for i := r * b.T; i < (r+1)*b.T; i++ {
			s += float64(tl[i])
		}
		if got := s / float64(row.TargetTokens); math.Abs(got-row.Loss)/row.Loss > 1e-6 {
			t.Errorf("row %d loss %.10f vs reference %.10f", r, got, row.Loss)
		}
	}

	m.Backward(a, b)
	gref, err := checkpoint.Open(filepath.Join(dir, "expected_grads.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer gref.Close()
	if len(gref.Names()) != len(m.P.List) {
		t.Errorf("reference has %d gradients, model %d parameters", len(gref.Names()), len(m.P.List))
	}
	for _, p := range m.P.List {
		g, err := gref.Tensor(p.Name)
		if err != nil {
			t.Errorf("%s: %v", p.Name, err)
			continue
		}
		if e := relErr(p.G.F32, g.ToF32()); e > 1e-4 {
			t.Errorf("%s: gradient relative error %.3g > 1e-4", p.Name, e)
		} else {
			t.Logf("%-48s grad rel err %.2g", p.Name, e)
		}
	}
	if gn := m.P.GradNorm(); math.Abs(gn-exp.GradNorm)/exp.GradNorm > 1e-4 {
		t.Errorf("grad norm %.8f vs reference %.8f", gn, exp.GradNorm)
	}
}
