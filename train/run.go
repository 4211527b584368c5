package train

import (
	"bufio"
	"bytes"
	"encoding"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"purpcode/checkpoint"
	"purpcode/engine"
	"purpcode/internal/yamlconf"
	"purpcode/model/qwen2"
	"purpcode/train/optim"
)

// tokenizerFiles are copied from the base model into every checkpoint so
// that it loads unchanged in transformers and vLLM.
var tokenizerFiles = []string{
	"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json",
	"vocab.json", "merges.txt", "added_tokens.json", "chat_template.jinja", "chat_template.json",
}

// WriteMetricsRow appends one JSON line.
func WriteMetricsRow(f *os.File, row any) error {
	b, err := json.Marshal(row)
	if err != nil {
		return err
	}
	_, err = f.Write(append(b, '\n'))
	return err
}

// ReopenMetrics truncates metrics.jsonl back to the rows of steps <= step
// (dropping rows logged after the checkpoint and any torn last line), so
// that a resumed run's file equals an uninterrupted run's, and opens it for
// appending.
func ReopenMetrics(path string, step int64) (*os.File, error) {
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return nil, err
	}
	var keep bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(old))
	sc.Buffer(make([]byte, 1<<16), 1<<26)
	for sc.Scan() {
		var r struct {
			Step *int64 `json:"step"`
		}
		if json.Unmarshal(sc.Bytes(), &r) != nil || r.Step == nil || *r.Step > step {
			break
		}
		keep.Write(sc.Bytes())
		keep.WriteByte('\n')
	}
	if err := checkpoint.AtomicWriteFile(path, keep.Bytes(), 0o644); err != nil {
		return nil, err
	}
	return os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0o644)
}

// CheckFreshOut refuses to start a new run over an existing one, so that
// nothing already saved is overwritten.
func CheckFreshOut(out, metricsFile string) error {
	cks, err := List(out)
	if err != nil {
		return err
	}
	if len(cks) > 0 {
		return fmt.Errorf("output dir %s already holds checkpoints (newest %s); pass --resume to continue that run or choose another --out", out, cks[len(cks)-1].Dir)
	}
	if _, err := os.Stat(filepath.Join(out, metricsFile)); err == nil {
		return fmt.Errorf("output dir %s already holds %s; pass --resume to continue that run or choose another --out", out, metricsFile)
	}
	return nil
}

// OptimizerConfig selects and configures the optimizer of a run.
type OptimizerConfig struct {
	Name                  string // adamw | sgd
	Beta1, Beta2, Eps     float64
	WeightDecay, Momentum float64
}

// NewOptimizer builds the configured optimizer over m's parameters, on m's
// backend.
func NewOptimizer(cfg OptimizerConfig, m *qwen2.Model) (optim.Optimizer, error) {
	segs := Segments(m.P)
	if cfg.Name == "sgd" {
		if m.P.Weights.Master.OnDevice() {
			return nil, fmt.Errorf("optimizer sgd runs on the CPU backend only (device %s); use adamw", m.Backend().Name())
		}
		return optim.NewSGD(segs, m.P.Count(), optim.SGDConfig{Momentum: cfg.Momentum, WeightDecay: cfg.WeightDecay}), nil
	}
	return optim.NewAdamW(m.Backend(), segs, m.P.Count(), optim.AdamWConfig{Beta1: cfg.Beta1, Beta2: cfg.Beta2, Eps: cfg.Eps, WeightDecay: cfg.WeightDecay}), nil
}

// Segments describes a model's parameters inside Params.Flat for the
// optimizers.
func Segments(ps *qwen2.Params) []optim.Segment {
	segs := make([]optim.Segment, len(ps.List))
	off := 0
	for i, p := range ps.List {
		n := p.W.Numel()
		segs[i] = optim.Segment{Name: p.Name, Off: off, N: n, Decay: p.Decay}
		off += n
	}
	return segs
}

// OptimizerTensors views the optimizer buffers per parameter
// ("exp_avg/model.layers.0.mlp.up_proj.weight"), shaped like the weights.
func OptimizerTensors(opt optim.Optimizer, m *qwen2.Model) []checkpoint.Named {
	var out []checkpoint.Named
	for _, b := range opt.State() {
		off := 0
		for _, p := range m.P.List {
			n := p.W.Numel()
			out = append(out, checkpoint.Named{Name: b.Name + "/" + p.Name, T: engine.FromF32(b.Data[off:off+n:off+n], p.W.Shape...)})
			off += n
		}
	}
	return out
}

// readTokenizerFiles reads the tokenizer and generation files of a model
// directory that exist, to copy them into checkpoints.
func readTokenizerFiles(dir string) (map[string][]byte, error) {
	files := map[string][]byte{}
	for _, name := range tokenizerFiles {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("copy tokenizer files: %w", err)
		}
		files[name] = b
	}
	return files, nil
}

// Begin decides between a fresh run and a resumed one before anything in
// out changes. With resume it returns the newest complete checkpoint's
// state (nil when there is none yet: the run starts from the beginning),
// after checking it was written by trainer with the same settings; without
// resume it refuses an out that already holds a run.
func Begin(out, trainer, metricsFile string, resume bool, settings map[string]string) (*State, Checkpoint, error) {
	if !resume {
		return nil, Checkpoint{}, CheckFreshOut(out, metricsFile)
	}
	ck, ok, err := Latest(out)
	if err != nil || !ok {
		return nil, Checkpoint{}, err
	}
	st, err := LoadState(ck.Dir)
	if err != nil {
		return nil, Checkpoint{}, err
	}
	if st.Trainer != trainer {
		return nil, Checkpoint{}, fmt.Errorf("resume %s: checkpoint of trainer %q, not %s", ck.Dir, st.Trainer, trainer)
	}
	if err := st.CheckCompatible(settings); err != nil {
		return nil, Checkpoint{}, fmt.Errorf("resume %s: %w", ck.Dir, err)
	}
	return st, ck, nil
}

// LoadYAMLFile decodes a YAML run config into cfg (a pointer to a config
// struct): keys not in the file keep cfg's values, unknown keys are errors
// so that a typo is not silently ignored, and every error names the key and
// line as written in the file.
func LoadYAMLFile(path string, cfg any) error { return yamlconf.DecodeFile(path, cfg) }

// Policy is the model and optimizer a trainer continues from.
type Policy struct {
	Model    *qwen2.Model
	Opt      optim.Optimizer
	OptState []checkpoint.Named // the optimizer's buffers, as saved in checkpoints
	// Files are the base model's tokenizer and generation files, copied
	// into every checkpoint so each one is a complete model directory.
	Files map[string][]byte
}

// LoadPolicy loads the model to train — from the resumed checkpoint when st
// is not nil, else from baseDir — builds the optimizer and restores its
// state, and reads baseDir's tokenizer files for the checkpoints. A
// checkpoint whose model shape differs from baseDir's is refused.
func LoadPolicy(baseDir string, st *State, from Checkpoint, oc OptimizerConfig, be engine.Backend) (*Policy, error) {
	dir := baseDir
	if st != nil {
		dir = from.Dir
	}
	m, err := qwen2.Load(dir, be)
	if err != nil {
		return nil, err
	}
	if st != nil {
		base, err := qwen2.LoadConfig(baseDir)
		if err != nil {
			return nil, err
		}
		if m.Cfg.Vocab != base.Vocab || m.Cfg.Hidden != base.Hidden || m.Cfg.Layers != base.Layers {
			return nil, fmt.Errorf("resume %s: checkpoint model differs from %s", from.Dir, baseDir)
		}
	}
	files, err := readTokenizerFiles(baseDir)
	if err != nil {
		return nil, err
	}
	opt, err := NewOptimizer(oc, m)
	if err != nil {
		return nil, err
	}
	p := &Policy{Model: m, Opt: opt, Files: files}
	p.OptState = OptimizerTensors(p.Opt, m)
	if st != nil {
		if st.Optimizer != p.Opt.Name() {
			return nil, fmt.Errorf("resume %s: optimizer %s in checkpoint, %s configured", from.Dir, st.Optimizer, p.Opt.Name())
		}
		if err := LoadOptimizer(from.Dir, p.OptState); err != nil {
			return nil, err
		}
		p.Opt.PushState()
		p.Opt.SetSteps(st.OptimizerSteps)
	}
	return p, nil
}

// Save writes the policy as checkpoint st.Step in out: the model (F32, with
// p.Files copied in), st with the optimizer's name and step count and rng's
// state filled in, and the optimizer buffers; then it prunes out to the
// newest keep checkpoints. hook is SaveOptions.Hook. It returns the
// checkpoint directory.
func (p *Policy) Save(out string, keep int, st *State, rng encoding.BinaryMarshaler, hook func(string)) (string, error) {
	st.Optimizer, st.OptimizerSteps = p.Opt.Name(), p.Opt.Steps()
	p.Opt.PullState()
	rs, err := rng.MarshalBinary()
	if err != nil {
		return "", fmt.Errorf("save %s: random state: %w", out, err)
	}
	st.RNG = rs
	dir, err := Save(out, SaveOptions{
		WriteModel: func(dir string) error {
			return p.Model.Save(dir, qwen2.SaveOptions{DType: engine.F32, Files: p.Files})
		},
		State: st, Optimizer: p.OptState, Hook: hook,
	})
	if err != nil {
		return "", err
	}
	return dir, Prune(out, keep)
}

// OpenMetrics prepares the output directory (creating it, removing the
// temp dirs of an interrupted save) and opens its metrics log: truncated
// back to the resumed step when st is not nil, else new, starting with
// first when first is not nil.
func OpenMetrics(out, metricsFile string, st *State, first any) (*os.File, error) {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return nil, fmt.Errorf("output dir: %w", err)
	}
	if err := CleanStale(out); err != nil {
		return nil, err
	}
	path := filepath.Join(out, metricsFile)
	if st != nil {
		f, err := ReopenMetrics(path, st.Step)
		if err != nil {
			return nil, fmt.Errorf("metrics: %w", err)
		}
		return f, nil
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err == nil && first != nil {
		if err = WriteMetricsRow(f, first); err != nil {
			f.Close()
		}
	}
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	return f, nil
}
