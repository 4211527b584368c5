package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"purpcode/checkpoint"
	"purpcode/engine"
	"purpcode/model/qwen2"
	"purpcode/train"
)

// exportAbout is export's help paragraph.
const exportAbout = "Consolidates a training checkpoint — sharded (manifest.json and one file per tensor-parallel\n" +
	"rank) or plain — into a Hugging Face model directory that transformers and vLLM load: config.json,\n" +
	"model-0000i-of-0000N.safetensors with model.safetensors.index.json (or one model.safetensors), and\n" +
	"the tokenizer files. A sharded checkpoint is verified in full (every file's size and SHA-256) first;\n" +
	"an incomplete one, or a non-empty --out, is refused. Each tensor is assembled from its slices one at\n" +
	"a time; the whole model in the output dtype is held once, for the write."

// runExport writes a consolidated HF directory from a checkpoint.
func runExport(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("export", stderr)
	from := fs.String("from", "", "checkpoint directory (checkpoint-STEP, sharded or plain)")
	out := fs.String("out", "", "output model directory (must not exist or be empty)")
	dtype := fs.String("dtype", "bf16", "storage dtype of the weights: bf16 or f32")
	maxShard := fs.Int64("max-shard-bytes", 5_000_000_000, "largest safetensors file (transformers' default 5GB); 0: one file")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *from == "" || *out == "" {
		fmt.Fprintln(stderr, "purpcode export: --from and --out are required")
		return errUsage
	}
	var dt engine.DType
	switch strings.ToLower(*dtype) {
	case "bf16", "bfloat16":
		dt = engine.BF16
	case "f32", "fp32", "float32":
		dt = engine.F32
	default:
		return fmt.Errorf("--dtype %q: want bf16 or f32", *dtype)
	}
	if *maxShard < 0 {
		return fmt.Errorf("--max-shard-bytes %d is negative", *maxShard)
	}
	if err := checkEmptyOut(*out); err != nil {
		return err
	}
	src, closeSrc, err := openCheckpoint(*from)
	if err != nil {
		return err
	}
	defer closeSrc()
	cfg, err := qwen2.LoadConfig(filepath.Join(*from, "config.json"))
	if err != nil {
		return fmt.Errorf("export %s: %w", *from, err)
	}
	tensors, err := consolidate(cfg, src, dt)
	if err != nil {
		return fmt.Errorf("export %s: %w", *from, err)
	}
	files, err := train.TokenizerFiles(*from)
	if err != nil {
		return err
	}
	c := *cfg
	c.TorchDType = map[engine.DType]string{engine.BF16: "bfloat16", engine.F32: "float32"}[dt]
	conf, err := c.JSON()
	if err != nil {
		return fmt.Errorf("export: config: %w", err)
	}
	files["config.json"] = conf
	if err := checkpoint.WriteDir(*out, tensors, checkpoint.WriteOptions{MaxShardBytes: *maxShard, Files: files}); err != nil {
		return err
	}
	var total int64
	for _, t := range tensors {
		total += int64(t.T.Numel() * t.T.DType.Size())
	}
	fmt.Fprintf(stdout, "exported %s to %s: %d tensors, %d bytes of %s weights\n", *from, *out, len(tensors), total, dt)
	return nil
}

// checkEmptyOut refuses an --out that holds anything, so that an export
// never replaces a model directory.
func checkEmptyOut(out string) error {
	entries, err := os.ReadDir(out)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("--out %s: %w", out, err)
	case len(entries) > 0:
		return fmt.Errorf("--out %s is not empty (%d entries); choose a new directory", out, len(entries))
	}
	return nil
}

// openCheckpoint opens a sharded checkpoint (after verifying every file's
// size and hash) or a plain model directory.
func openCheckpoint(dir string) (checkpoint.Slicer, func() error, error) {
	if train.IsSharded(dir) {
		m, err := checkpoint.ReadManifest(dir)
		if err != nil {
			return nil, nil, err
		}
		if err := m.CheckFiles(dir, true); err != nil {
			return nil, nil, err
		}
		sr, err := checkpoint.OpenSharded(dir)
		if err != nil {
			return nil, nil, err
		}
		return sr, sr.Close, nil
	}
	if matches, _ := filepath.Glob(filepath.Join(dir, train.ShardFilePattern)); len(matches) > 0 {
		return nil, nil, fmt.Errorf("export %s: incomplete sharded checkpoint: %d shard files but no %s (the save did not finish)", dir, len(matches), checkpoint.ManifestFileName)
	}
	r, err := checkpoint.Open(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("export %s: %w", dir, err)
	}
	return r, r.Close, nil
}

// consolidate reads every parameter of cfg whole from src, in HF order,
// converted to dt; optimizer state and other tensors are left out.
func consolidate(cfg *qwen2.Config, src checkpoint.Slicer, dt engine.DType) ([]checkpoint.Named, error) {
	var out []checkpoint.Named
	for _, p := range qwen2.ParamSpecs(cfg) {
		info, ok := src.Info(p.Name)
		if !ok {
			return nil, fmt.Errorf("no tensor %s", p.Name)
		}
		if !engine.SameShape(info.Shape, p.Shape) {
			return nil, fmt.Errorf("tensor %s has shape %v, config.json wants %v", p.Name, info.Shape, p.Shape)
		}
		t, err := src.ReadSlice(p.Name, -1, 0, 0)
		if err != nil {
			return nil, err
		}
		if t.DType != dt {
			t = t.Convert(dt)
		}
		out = append(out, checkpoint.Named{Name: p.Name, T: t})
	}
	return out, nil
}
