package qwen2

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	"purpcode/checkpoint"
	"purpcode/engine"
)

// Load reads a Hugging Face model directory (config.json plus
// model.safetensors or a sharded index) into a new model. Every tensor's
// name, shape and dtype is checked; all missing and unexpected tensors are
// named in one error. The model computes on be.
func Load(dir string, be engine.Backend) (*Model, error) {
	cfg, err := LoadConfig(filepath.Join(dir, "config.json"))
	if err != nil {
		return nil, err
	}
	r, err := checkpoint.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("load model %s: %w", dir, err)
	}
	defer r.Close()
	m := newEmpty(cfg)
	if err := m.loadWeights(r, dir); err != nil {
		return nil, err
	}
	m.bind(be)
	return m, nil
}

// ignoredTensor reports buffers some exporters save that are not parameters.
func ignoredTensor(name string) bool {
	return strings.HasSuffix(name, "rotary_emb.inv_freq")
}

func (m *Model) loadWeights(r *checkpoint.Reader, dir string) error {
	want := map[string]*Param{}
	for _, p := range m.P.List {
		want[p.Name] = p
	}
	var missing, unexpected, bad []string
	seen := map[string]bool{}
	for _, name := range r.Names() {
		p, ok := want[name]
		if !ok {
			// Some exporters write lm_head.weight for tied models too;
			// transformers ignores it then, and so do we.
			if name == "lm_head.weight" && m.Cfg.TieEmbeddings {
				continue
			}
			if !ignoredTensor(name) {
				unexpected = append(unexpected, name)
			}
			continue
		}
		seen[name] = true
		info, _ := r.Info(name)
		if !engine.SameShape(info.Shape, p.W.Shape) {
			bad = append(bad, fmt.Sprintf("%s: shape %s in %s, config wants %s", name, engine.ShapeString(info.Shape), info.File, engine.ShapeString(p.W.Shape)))
			continue
		}
		t, err := r.Tensor(name)
		if err != nil {
			bad = append(bad, err.Error())
			continue
		}
		copy(p.W.F32, t.ToF32())
	}
	for _, p := range m.P.List {
		if !seen[p.Name] {
			missing = append(missing, p.Name)
		}
	}
	if len(missing)+len(unexpected)+len(bad) == 0 {
		return nil
	}
	sort.Strings(missing)
	sort.Strings(unexpected)
	var msg []string
	if len(bad) > 0 {
		msg = append(msg, "bad tensors: "+strings.Join(bad, "; "))
	}
	if len(missing) > 0 {
		msg = append(msg, fmt.Sprintf("%d missing tensors: %s", len(missing), listNames(missing)))
	}
	if len(unexpected) > 0 {
		msg = append(msg, fmt.Sprintf("%d unexpected tensors: %s", len(unexpected), listNames(unexpected)))
	}
	return fmt.Errorf("load model %s (model_type %s, %d layers): %s", dir, m.Cfg.ModelType, m.Cfg.Layers, strings.Join(msg, "; "))
}

// listNames keeps an error readable when a whole checkpoint mismatches.
func listNames(names []string) string {
	const show = 12
	if len(names) <= show {
		return strings.Join(names, ", ")
	}
	return strings.Join(names[:show], ", ") + fmt.Sprintf(", ... (%d more)", len(names)-show)
}

// SaveOptions controls Save.
type SaveOptions struct {
	DType         engine.DType      // storage dtype of the weights
	MaxShardBytes int64             // 0: one file
	Files         map[string][]byte // extra files for the directory (tokenizer files, ...)
}

// Save writes the model as a Hugging Face directory (config.json and
// safetensors), atomically, from the master weights (pulled from the
// device first when the model is on one).
func (m *Model) Save(dir string, opts SaveOptions) error {
	if m.tp != nil {
		return fmt.Errorf("save %s: the model is a tensor-parallel shard (rank %d of %d), not a whole model", dir, m.tp.rank, m.tp.world)
	}
	m.P.Pull()
	cfg := *m.Cfg
	switch opts.DType {
	case engine.BF16:
		cfg.TorchDType = "bfloat16"
	case engine.F16:
		cfg.TorchDType = "float16"
	default:
		cfg.TorchDType = "float32"
	}
	conf, err := cfg.JSON()
	if err != nil {
		return fmt.Errorf("save %s: config: %w", dir, err)
	}
	files := map[string][]byte{"config.json": conf}
	for k, v := range opts.Files {
		files[k] = v
	}
	tensors := make([]checkpoint.Named, 0, len(m.P.List))
	for _, p := range m.P.List {
		t := p.W
		if opts.DType != engine.F32 {
			t = p.W.Convert(opts.DType)
		}
		tensors = append(tensors, checkpoint.Named{Name: p.Name, T: t})
	}
	return checkpoint.WriteDir(dir, tensors, checkpoint.WriteOptions{
		MaxShardBytes: opts.MaxShardBytes,
		Metadata:      map[string]string{"format": "pt"},
		Files:         files,
	})
}
