package sft

import (
	"bytes"
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"purpcode/checkpoint"
	"purpcode/engine"
	"purpcode/internal/testref"
	"purpcode/model/qwen2"
	"purpcode/train"
	"purpcode/train/data"
	"purpcode/train/optim"
)

func relErr(a, b []float32) float64 {
	var d, n float64
	for i := range a {
		x := float64(a[i]) - float64(b[i])
		d += x * x
		n += float64(b[i]) * float64(b[i])
	}
	return math.Sqrt(d) / math.Max(math.Sqrt(n), 1e-30)
}

// batchLoss is the token-mean loss of a model on one batch.
func batchLoss(m *qwen2.Model, b *qwen2.Batch) float64 {
	a := m.NewActs(b.B, b.T)
	s, c := EvalLoss(m, a, b)
	return s / float64(c)
}

// TestSGDStepMatchesReferenceGradient: one SGD step (lr 1, no clipping, no
// weight decay) over the two reference rows moves every parameter by
// exactly -grad_ref, and the saved checkpoint scores the new loss.
func TestSGDStepMatchesReferenceGradient(t *testing.T) {
	ref := testref.Dir(t, "qwen2-tiny")
	cfg := DefaultConfig()
	cfg.Model = ref
	cfg.Data = []string{filepath.Join(ref, "batch.jsonl")}
	cfg.Out = filepath.Join(t.TempDir(), "out")
	cfg.SeqLen, cfg.MicroBatch, cfg.GradAccum = 24, 2, 1
	cfg.Optimizer, cfg.LR, cfg.Schedule, cfg.Warmup = "sgd", 1, optim.Constant, 0
	cfg.Clip, cfg.WeightDecay, cfg.MaxSteps = 0, 0, 1
	res, err := Run(context.Background(), cfg, Options{Backend: testCPU()})
	if err != nil {
		t.Fatal(err)
	}
	old, err := qwen2.Load(ref, testCPU())
	if err != nil {
		t.Fatal(err)
	}
	saved, err := qwen2.Load(res.Checkpoint, testCPU())
	if err != nil {
		t.Fatal(err)
	}
	grads, err := checkpoint.Open(filepath.Join(ref, "expected_grads.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer grads.Close()
	for i, p := range old.P.List {
		g, err := grads.Tensor(p.Name)
		if err != nil {
			t.Fatal(err)
		}
		delta := make([]float32, p.W.Numel())
		for j := range delta {
			delta[j] = p.W.F32[j] - saved.P.List[i].W.F32[j]
		}
		if e := relErr(delta, g.ToF32()); e > 1e-4 {
			t.Errorf("%s: ||(old-new) - g_ref|| / ||g_ref|| = %.3g > 1e-4", p.Name, e)
		}
	}
	// The saved directory scores exactly the in-memory new loss.
	lay := data.Layout{B: 2, T: 24}
	d, err := data.Load(cfg.Data, data.Options{SeqLen: 24, Vocab: old.Cfg.Vocab})
	if err != nil {
		t.Fatal(err)
	}
	b := lay.NewBatch()
	data.NewEpoch(d, nil, lay).Fill(0, b)
	inMem, fromDisk, before := batchLoss(res.Model, b), batchLoss(saved, b), batchLoss(old, b)
	if inMem != fromDisk {
		t.Errorf("saved checkpoint loss %.17g, in-memory model %.17g", fromDisk, inMem)
	}
	if !(inMem < before) {
		t.Errorf("loss did not drop: %.6f -> %.6f", before, inMem)
	}
	for _, f := range []string{"config.json", "model.safetensors", "training_state/state.json"} {
		if _, err := os.Stat(filepath.Join(res.Checkpoint, f)); err != nil {
			t.Errorf("checkpoint lacks %s: %v", f, err)
		}
	}
	// The training state has no optimizer buffers for plain SGD.
	if _, err := os.Stat(filepath.Join(res.Checkpoint, train.StateDir, train.OptimizerFile)); !os.IsNotExist(err) {
		t.Errorf("plain SGD wrote optimizer state: %v", err)
	}
}

// rowsBatch lays rows out one per sequence in a (len(rows), t) batch.
func rowsBatch(rows []tokRow, t int) *qwen2.Batch {
	lay := data.Layout{B: len(rows), T: t}
	d := &data.Dataset{}
	for _, r := range rows {
		d.Rows = append(d.Rows, data.Row{IDs: r.InputIDs, Labels: r.Labels})
	}
	b := lay.NewBatch()
	data.NewEpoch(d, nil, lay).Fill(0, b)
	return b
}

// TestGradAccumulationEqualsFullBatch: 4 micro-batches of 2 rows give the
// same loss and gradients as one batch of the 8 rows, although the rows
// have different numbers of target tokens (so a mean of micro-batch means
// would differ).
func TestGradAccumulationEqualsFullBatch(t *testing.T) {
	m := writeTinyModel(t, t.TempDir(), 5)
	rows := synthRows(8, 4, 24, 64, 9)
	full := rowsBatch(rows, 24)
	sumF, totF := AccumulateGradients(m, m.NewActs(8, 24), []*qwen2.Batch{full})
	gFull := append([]float32(nil), m.P.Grad...)

	var micro []*qwen2.Batch
	var meanOfMeans float64
	counts := map[int]bool{}
	for i := 0; i < 8; i += 2 {
		b := rowsBatch(rows[i:i+2], 24)
		micro = append(micro, b)
		s, c := EvalLoss(m, m.NewActs(2, 24), b)
		meanOfMeans += s / float64(c) / 4
		counts[c] = true
	}
	if len(counts) < 2 {
		t.Fatalf("micro-batches all have the same target count %v; the test needs different ones", counts)
	}
	sumA, totA := AccumulateGradients(m, m.NewActs(2, 24), micro)
	if totA != totF {
		t.Fatalf("target tokens %d accumulated vs %d full", totA, totF)
	}
	lossF, lossA := sumF/float64(totF), sumA/float64(totA)
	if math.Abs(lossF-lossA) > 1e-6*lossF {
		t.Errorf("loss %.9f accumulated vs %.9f full batch", lossA, lossF)
	}
	if math.Abs(meanOfMeans-lossF) < 1e-4 {
		t.Errorf("mean of micro-batch means %.6f equals the token mean %.6f: the rows do not exercise the normalisation", meanOfMeans, lossF)
	}
	off := 0
	for _, p := range m.P.List {
		n := p.W.Numel()
		if e := relErr(m.P.Grad[off:off+n], gFull[off:off+n]); e > 1e-5 {
			t.Errorf("%s: accumulated gradient differs from the full batch's by %.3g (relative)", p.Name, e)
		}
		off += n
	}
}

// TestPackingMatchesSeparateRows: rows packed into one sequence (segments,
// restarted positions, no cross-row targets) give the same summed loss and
// gradients as the rows in separate sequences.
func TestPackingMatchesSeparateRows(t *testing.T) {
	m := writeTinyModel(t, t.TempDir(), 6)
	rows := synthRows(3, 5, 9, 64, 4)
	d := &data.Dataset{}
	for _, r := range rows {
		d.Rows = append(d.Rows, data.Row{IDs: r.InputIDs, Labels: r.Labels})
	}
	packLay := data.Layout{B: 1, T: 32, Pack: true}
	ep := data.NewEpoch(d, nil, packLay)
	if ep.Sequences() != 1 {
		t.Fatalf("3 rows of <= 9 tokens packed into %d sequences of 32", ep.Sequences())
	}
	packed := packLay.NewBatch()
	ep.Fill(0, packed)
	sumP, totP := AccumulateGradients(m, m.NewActs(1, 32), []*qwen2.Batch{packed})
	gP := append([]float32(nil), m.P.Grad...)
	sep := rowsBatch(rows, 9)
	sumS, totS := AccumulateGradients(m, m.NewActs(3, 9), []*qwen2.Batch{sep})
	if totP != totS {
		t.Fatalf("packed batch has %d targets, separate rows %d", totP, totS)
	}
	if math.Abs(sumP-sumS) > 1e-5*math.Abs(sumS) {
		t.Errorf("packed loss sum %.9f vs separate %.9f", sumP, sumS)
	}
	if e := relErr(gP, m.P.Grad); e > 1e-5 {
		t.Errorf("packed gradients differ from separate rows by %.3g", e)
	}
}

func TestRefusesExistingRunWithoutResume(t *testing.T) {
	dir := t.TempDir()
	cfg := tinySetup(t, dir)
	cfg.Epochs, cfg.MaxSteps = 0, 2
	if _, err := Run(context.Background(), cfg, Options{Backend: testCPU()}); err != nil {
		t.Fatal(err)
	}
	_, err := Run(context.Background(), cfg, Options{Backend: testCPU()})
	if err == nil || !strings.Contains(err.Error(), "--resume") {
		t.Fatalf("second fresh run into the same out: %v, want an error pointing at --resume", err)
	}
	// Resuming with a changed setting names the setting.
	cfg.Resume, cfg.LR = true, 0.5
	_, err = Run(context.Background(), cfg, Options{Backend: testCPU()})
	if err == nil || !strings.Contains(err.Error(), "lr:") {
		t.Fatalf("resume with another lr: %v, want an error naming lr", err)
	}
	// Resuming a finished run does nothing and succeeds.
	cfg.LR = 1e-2
	res, err := Run(context.Background(), cfg, Options{Backend: testCPU()})
	if err != nil || res.Steps != 2 {
		t.Fatalf("resume of a finished run: steps %v, err %v", res, err)
	}
}

// TestBadDataLosesNothing: a malformed line stops the run with file:line
// before the output directory is touched, also when resuming.
func TestBadDataLosesNothing(t *testing.T) {
	dir := t.TempDir()
	cfg := tinySetup(t, dir)
	cfg.Epochs, cfg.MaxSteps = 0, 3
	if _, err := Run(context.Background(), cfg, Options{Backend: testCPU()}); err != nil {
		t.Fatal(err)
	}
	snapshot := func() string {
		var b strings.Builder
		filepath.Walk(cfg.Out, func(p string, info os.FileInfo, err error) error {
			if err == nil && !info.IsDir() {
				data, _ := os.ReadFile(p)
				b.WriteString(p + "\n" + string(data))
			}
			return nil
		})
		return b.String()
	}
	before := snapshot()
	bad := filepath.Join(dir, "bad.jsonl")
	writeJSONL(t, bad, []string{`{"input_ids":[1,2,3],"labels":[1,2,3]}`, `{"input_ids":[1,2,`})
	cfg.Data = []string{bad}
	cfg.Resume = true
	_, err := Run(context.Background(), cfg, Options{Backend: testCPU()})
	if err == nil || !strings.Contains(err.Error(), bad+":2") {
		t.Fatalf("err = %v, want one naming %s:2", err, bad)
	}
	if snapshot() != before {
		t.Errorf("the failed run changed the output directory")
	}
}

func TestMetricsAndDataEvent(t *testing.T) {
	dir := t.TempDir()
	cfg := tinySetup(t, dir)
	cfg.Epochs, cfg.MaxSteps, cfg.EvalEvery, cfg.SaveEvery = 0, 4, 2, 0
	// One over-long row to count.
	long := synthRows(1, 40, 40, 64, 8)
	writeJSONL(t, filepath.Join(dir, "long.jsonl"), long)
	cfg.Data = append(cfg.Data, filepath.Join(dir, "long.jsonl"))
	var log bytes.Buffer
	var seen []int64
	res, err := Run(context.Background(), cfg, Options{Backend: testCPU(), Log: &log, OnStep: func(r Metrics, total int64) {
		seen = append(seen, r.Step)
		if total != 4 {
			t.Errorf("OnStep total %d, want 4", total)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	rows := readMetrics(t, cfg.Out)
	if len(rows) != 5 || rows[0]["event"] != "data" {
		t.Fatalf("metrics rows %v: want a data event and 4 steps", rows)
	}
	if tr := rows[0]["train"].(map[string]any); tr["truncated"].(float64) != 1 {
		t.Errorf("data event %v: want 1 truncated row", tr)
	}
	if !strings.Contains(log.String(), "1 truncated") {
		t.Errorf("run log does not report the truncation:\n%s", log.String())
	}
	for i, r := range rows[1:] {
		for _, k := range []string{"step", "epoch", "loss", "lr", "grad_norm", "target_tokens", "tokens_per_s", "elapsed_s"} {
			if _, ok := r[k]; !ok {
				t.Errorf("row %d lacks %s: %v", i+1, k, r)
			}
		}
		_, hasEval := r["eval_loss"]
		if want := (i+1)%2 == 0; hasEval != want {
			t.Errorf("step %d: eval_loss present %v, want %v", i+1, hasEval, want)
		}
	}
	if len(seen) != 4 || res.EvalLoss == nil {
		t.Errorf("OnStep saw %v, eval loss %v", seen, res.EvalLoss)
	}
	// save_every 0 still saves the final step.
	if ck, ok, _ := train.Latest(cfg.Out); !ok || ck.Step != 4 {
		t.Errorf("final checkpoint %v %v, want step 4", ck, ok)
	}
	if b, err := os.ReadFile(filepath.Join(res.Checkpoint, "tokenizer.json")); err != nil || !bytes.Contains(b, []byte("stand-in")) {
		t.Errorf("tokenizer.json not copied into the checkpoint: %v", err)
	}
}

// TestChatDataWithRealTokenizer trains two steps on chat rows rendered with
// the Qwen3 tokenizer and template from the reference data.
func TestChatDataWithRealTokenizer(t *testing.T) {
	tokDir := testref.Dir(t, "tokenizer/qwen3")
	dir := t.TempDir()
	// A model dir with the tokenizer files and a vocabulary covering them.
	cfgJSON := strings.Replace(tinyConfig, `"vocab_size":64`, `"vocab_size":151669`, 1)
	cfgJSON = strings.Replace(cfgJSON, `"hidden_size":32`, `"hidden_size":8`, 1)
	cfgJSON = strings.Replace(cfgJSON, `"num_attention_heads":4,"num_key_value_heads":2`, `"num_attention_heads":2,"num_key_value_heads":1`, 1)
	mc, err := qwen2.ParseConfig([]byte(cfgJSON), "chat-tiny")
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for _, f := range []string{"tokenizer.json", "tokenizer_config.json"} {
		b, err := os.ReadFile(filepath.Join(tokDir, f))
		if err != nil {
			t.Fatal(err)
		}
		files[f] = b
	}
	modelDir := filepath.Join(dir, "model")
	if err := qwen2.New(mc, testCPU(), 1).Save(modelDir, qwen2.SaveOptions{DType: engine.F32, Files: files}); err != nil {
		t.Fatal(err)
	}
	writeJSONL(t, filepath.Join(dir, "chat.jsonl"), []string{
		`{"messages":[{"role":"user","content":"Write a safe copy."},{"role":"assistant","content":"Use shutil.copy."}]}`,
		`{"messages":[{"role":"system","content":"Be careful."},{"role":"user","content":"hi"},{"role":"assistant","content":"Hello!"},{"role":"user","content":"bye"},{"role":"assistant","content":"Goodbye."}]}`,
		`{"messages":[{"role":"user","content":"no answer here"}]}`,
	})
	cfg := DefaultConfig()
	cfg.Model, cfg.Data, cfg.Out = modelDir, []string{filepath.Join(dir, "chat.jsonl")}, filepath.Join(dir, "out")
	cfg.SeqLen, cfg.MicroBatch, cfg.MaxSteps, cfg.Epochs = 64, 2, 1, 0
	for _, on := range []string{data.TrainLastAssistant, data.TrainAllAssistant} {
		cfg.TrainOn = on
		cfg.Out = filepath.Join(dir, "out-"+on)
		res, err := Run(context.Background(), cfg, Options{Backend: testCPU()})
		if err != nil {
			t.Fatalf("%s: %v", on, err)
		}
		if res.Train.Rows != 2 || res.Train.Skipped[data.SkipNoAssistant] != 1 {
			t.Errorf("%s: stats %+v, want 2 rows and 1 skipped without assistant turn", on, res.Train)
		}
		t.Logf("%s: %d target tokens", on, res.Train.Targets)
	}
}

// TestInterruptSavesAndResumes: cancelling the context (SIGINT in the CLI)
// stops at a step boundary with a checkpoint, and resuming reproduces the
// uninterrupted metrics.
func TestInterruptSavesAndResumes(t *testing.T) {
	dir := t.TempDir()
	cfg := tinySetup(t, dir)
	cfg.Epochs, cfg.MaxSteps, cfg.SaveEvery = 0, 5, 0
	ref := cfg
	ref.Out = filepath.Join(dir, "ref")
	if _, err := Run(context.Background(), ref, Options{Backend: testCPU()}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, err := Run(ctx, cfg, Options{Backend: testCPU(), OnStep: func(r Metrics, _ int64) {
		if r.Step == 2 {
			cancel()
		}
	}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted run returned %v", err)
	}
	if ck, ok, _ := train.Latest(cfg.Out); !ok || ck.Step != 2 {
		t.Fatalf("after interrupt: checkpoint %v %v, want step 2", ck, ok)
	}
	cfg.Resume = true
	if _, err := Run(context.Background(), cfg, Options{Backend: testCPU()}); err != nil {
		t.Fatal(err)
	}
	if got, want := stripTiming(t, readMetrics(t, cfg.Out)), stripTiming(t, readMetrics(t, ref.Out)); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("metrics after interrupt+resume differ:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
