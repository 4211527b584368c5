package train

import (
	"context"
	"encoding"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"purpcode/checkpoint"
	"purpcode/dist"
	"purpcode/engine"
	"purpcode/model/qwen2"
	"purpcode/train/optim"
)

// Sharded checkpoints. Under tensor parallelism no rank holds the whole
// model, so each TP rank of data-parallel replica 0 writes its own shard
// file (its weights in fp32 and its optimizer buffers, by HF name, shaped
// as its slices) into the step's staging directory, and the leader writes
// manifest.json (checkpoint.Manifest: per tensor the full shape, the split
// dimension and every rank's [lo, hi) and file; per file its size and
// SHA-256; the training State) once every shard is in place, then makes
// the checkpoint visible with the same rename Save uses. A crash of any
// rank before that leaves the previous checkpoint the latest. Loading
// reads each rank's slices by byte range from the shard files, whatever
// TP layout wrote them (a different layout is resharded tensor by tensor).

// stateMetaKey is the manifest Meta entry holding the training State.
const stateMetaKey = "train_state"

// ShardFilePattern matches the shard files of a sharded checkpoint (a
// directory holding such files without a manifest is an unfinished save).
const ShardFilePattern = "tp-*-of-*.safetensors"

// shardFileName is TP rank rank's file in a sharded checkpoint of size ranks.
func shardFileName(rank, size int) string {
	return fmt.Sprintf("tp-%05d-of-%05d.safetensors", rank, size)
}

// IsSharded reports whether the checkpoint at dir is sharded (has a
// manifest) rather than a single HF model directory.
func IsSharded(dir string) bool { return checkpoint.HasManifest(dir) }

// LoadPolicyGroup is LoadPolicy for a rank of g. Without tensor
// parallelism (g.TP nil) it loads the whole model, as LoadPolicy does (a
// sharded checkpoint is assembled tensor by tensor). With it, the rank
// loads only its shard: from baseDir's safetensors by byte range
// (qwen2.LoadShardFrom), or, resuming, from the checkpoint: a sharded one
// written by any TP layout (each tensor slice is assembled from the saved
// slices that hold it) or a plain one. The optimizer is built over the
// shard and its state slices restored the same way.
func LoadPolicyGroup(ctx context.Context, baseDir string, st *State, from Checkpoint, oc OptimizerConfig, be engine.Backend, g Group) (*Policy, error) {
	sharded := st != nil && IsSharded(from.Dir)
	if g.TP == nil && !sharded {
		return loadPolicy(baseDir, st, from, oc, be, g.DP)
	}
	if g.TP != nil && g.Split == nil {
		return nil, fmt.Errorf("load policy: tensor-parallel group without a split")
	}
	dir := baseDir
	if st != nil {
		dir = from.Dir
	}
	cfg, err := qwen2.LoadConfig(filepath.Join(dir, "config.json"))
	if err != nil {
		return nil, err
	}
	if st != nil {
		if err := sameModel(cfg, baseDir, from); err != nil {
			return nil, err
		}
	}
	// weights and opt are where the model and the optimizer state come
	// from; closers release them once everything is copied out.
	var weights, opt checkpoint.Slicer
	var closers []func() error
	defer func() {
		for _, c := range closers {
			c()
		}
	}()
	if sharded {
		sr, err := checkpoint.OpenSharded(from.Dir)
		if err != nil {
			return nil, fmt.Errorf("resume %s: %w", from.Dir, err)
		}
		closers = append(closers, sr.Close)
		weights, opt = sr, sr
	} else {
		r, err := checkpoint.Open(dir)
		if err != nil {
			return nil, fmt.Errorf("load model %s: %w", dir, err)
		}
		closers = append(closers, r.Close)
		weights = r
	}

	var m *qwen2.Model
	if g.TP == nil {
		m, err = qwen2.LoadFromWith(cfg, weights, be, oc.Storage(g.DP))
	} else {
		m, err = qwen2.LoadShardFromWith(ctx, cfg, weights, be, g.TP, g.Split, oc.Storage(g.DP))
	}
	if err != nil {
		return nil, fmt.Errorf("load model %s: %w", dir, err)
	}
	files, err := readTokenizerFiles(baseDir)
	if err != nil {
		return nil, err
	}
	o, err := newOptimizer(oc, m, g.DP)
	if err != nil {
		return nil, err
	}
	p := &Policy{Model: m, Opt: o, Files: files}
	if st == nil {
		return p, nil
	}
	if st.Optimizer != o.Name() {
		return nil, fmt.Errorf("resume %s: optimizer %s in checkpoint, %s configured", from.Dir, st.Optimizer, o.Name())
	}
	state := OptimizerTensors(o, m)
	if opt == nil && len(state) > 0 {
		r, err := checkpoint.Open(filepath.Join(from.Dir, StateDir, OptimizerFile))
		if err != nil {
			return nil, fmt.Errorf("load optimizer state: %w", err)
		}
		closers = append(closers, r.Close)
		opt = r
	}
	if err := restoreOptimizer(opt, state, cfg, g); err != nil {
		return nil, fmt.Errorf("resume %s: %w", from.Dir, err)
	}
	o.PushState()
	optim.ReleaseState(o)
	o.SetSteps(st.OptimizerSteps)
	return p, nil
}

// restoreOptimizer copies the rank's slice of every saved optimizer
// buffer ("exp_avg/<param>") into dst, which OptimizerTensors laid out over
// the rank's model. src must hold exactly the buffers dst names: another
// optimizer's (or model's) state is refused.
func restoreOptimizer(src checkpoint.Slicer, dst []checkpoint.Named, cfg *qwen2.Config, g Group) error {
	if len(dst) == 0 {
		return nil
	}
	shapes := map[string][]int{}
	for _, s := range qwen2.ParamSpecs(cfg) {
		shapes[s.Name] = s.Shape
	}
	want := map[string]bool{}
	for _, n := range dst {
		want[n.Name] = true
		_, param, ok := strings.Cut(n.Name, "/")
		shape := shapes[param]
		if !ok || shape == nil {
			return fmt.Errorf("optimizer buffer %s names no parameter", n.Name)
		}
		dim, lo, hi := -1, 0, 0
		if g.TP != nil {
			var err error
			if dim, lo, hi, err = g.Split(param, shape, g.TP.Rank()); err != nil {
				return err
			}
		}
		info, ok := src.Info(n.Name)
		if !ok {
			return fmt.Errorf("load optimizer state: no tensor %s (different optimizer or model?)", n.Name)
		}
		if !engine.SameShape(info.Shape, shape) {
			return fmt.Errorf("load optimizer state: tensor %s has shape %v, want %v", n.Name, info.Shape, shape)
		}
		t, err := src.ReadSlice(n.Name, dim, lo, hi)
		if err != nil {
			return fmt.Errorf("load optimizer state: %w", err)
		}
		if !engine.SameShape(t.Shape, n.T.Shape) {
			return fmt.Errorf("load optimizer state: slice of %s has shape %v, want %v", n.Name, t.Shape, n.T.Shape)
		}
		copy(n.T.F32, t.ToF32())
	}
	for _, name := range src.Names() {
		if strings.Contains(name, "/") && !want[name] {
			return fmt.Errorf("load optimizer state: unexpected tensor %s (different optimizer or model?)", name)
		}
	}
	return nil
}

// SaveGroup saves the policy as checkpoint st.Step in out from every rank
// of g, which all call it at the same step, and returns the checkpoint's
// directory on every rank once it is visible (or the same error
// everywhere: a rank that failed, or a lost one, fails the save on all).
//
// Without tensor parallelism DP rank 0 writes it with Save and the other
// ranks wait for the outcome. With it, the TP ranks of DP replica 0 write
// a sharded checkpoint: each rank its shard file (hook "model" after it is
// written, on every writing rank), the leader the config and tokenizer
// files and then the manifest (hook "state": complete but not visible),
// the rename that makes it visible (hook "renamed"), and pruning to keep.
// Only then do the others return.
func (p *Policy) SaveGroup(ctx context.Context, out string, keep int, st *State, rng encoding.BinaryMarshaler, hook func(string), g Group) (string, error) {
	final := StepDir(out, st.Step)
	if hook == nil {
		hook = func(string) {}
	}
	ctx, cancel := saveContext(ctx)
	defer cancel()
	var err error
	if _, ok := p.Opt.(optim.Collective); ok {
		// The writers need the whole optimizer state and fp32 master, which
		// an optimizer sharded over the data-parallel ranks (ZeRO-1) keeps
		// in pieces: every rank takes part in gathering them.
		err = optim.PrepareSave(ctx, p.Opt, p.Model.P.Weights)
		if err = agreeAny(ctx, g.DP, err); err != nil {
			return "", fmt.Errorf("save checkpoint %s: gather the optimizer state: %w", final, err)
		}
	}
	if g.DP.Leader() {
		if g.TP == nil {
			_, err = p.Save(out, keep, st, rng, hook)
		} else {
			err = p.saveShards(ctx, out, keep, st, rng, hook, g)
		}
	}
	// The gathered optimizer state (ZeRO-1) is a full copy per rank: not
	// kept between checkpoints.
	optim.ReleaseState(p.Opt)
	if err := agree(ctx, g.DP.Comm, err, "save checkpoint "+final+" (data-parallel replica 0)"); err != nil {
		return "", err
	}
	return final, nil
}

// agreeAny fails every rank when any rank's err is set, so that all stop
// before the next collective.
func agreeAny(ctx context.Context, dp DP, err error) error {
	failed, aerr := dp.AnyTrue(ctx, err != nil)
	switch {
	case aerr != nil:
		return errors.Join(err, aerr)
	case err != nil:
		return err
	case failed:
		return fmt.Errorf("failed on another data-parallel rank (see its log)")
	}
	return nil
}

// agree makes rank 0's outcome every rank's: rank 0 sends whether err is
// set, and returns err; the others return an error naming it when rank 0
// failed. The broadcast doubles as the barrier that holds every rank until
// rank 0 is done. A nil comm is a group of one.
func agree(ctx context.Context, comm dist.Comm, err error, what string) error {
	if comm == nil || comm.Size() == 1 {
		return err
	}
	buf := []byte{0}
	if err != nil && comm.Rank() == 0 {
		buf[0] = 1
	}
	if berr := comm.Broadcast(collectiveCtx(ctx), buf, 0); berr != nil {
		return errors.Join(err, fmt.Errorf("%s: %w", what, berr))
	}
	if comm.Rank() == 0 {
		return err
	}
	if buf[0] != 0 {
		return fmt.Errorf("%s: failed on rank 0 of the group (see its log)", what)
	}
	return nil
}

// shardResult is what a writing rank reports to the leader.
type shardResult struct {
	File  checkpoint.FileDigest `json:"file"`
	Error string                `json:"error,omitempty"`
}

// saveShards runs on the TP ranks of DP replica 0.
func (p *Policy) saveShards(ctx context.Context, out string, keep int, st *State, rng encoding.BinaryMarshaler, hook func(string), g Group) error {
	tp := g.TP
	rank, size := tp.Rank(), tp.Size()
	final := StepDir(out, st.Step)
	wrap := func(err error) error { return fmt.Errorf("save checkpoint %s: %w", final, err) }
	// The staging name is fixed (ranks cannot agree on a random one
	// without a round trip); CleanStale removes it after a crash.
	staging := filepath.Join(out, "."+filepath.Base(final)+".tmp-sharded")
	dir := filepath.Join(staging, filepath.Base(final))

	st.Optimizer, st.OptimizerSteps = p.Opt.Name(), p.Opt.Steps()
	rs, rngErr := rng.MarshalBinary()
	st.RNG = rs
	var err error
	if rank == 0 {
		// A leftover of an earlier attempt at this step goes first, so
		// that only this save's files end up in the checkpoint.
		err = errors.Join(os.MkdirAll(out, 0o755), os.RemoveAll(staging), os.MkdirAll(dir, 0o755))
	}
	if err := agree(ctx, tp, err, "prepare "+dir); err != nil {
		return wrap(err)
	}

	// Every rank writes its shard.
	pullErr := p.Model.P.Pull()
	p.Opt.PullState()
	optState := OptimizerTensors(p.Opt, p.Model)
	tensors := make([]checkpoint.Named, 0, len(p.Model.P.List)+len(optState))
	for _, q := range p.Model.P.List {
		tensors = append(tensors, checkpoint.Named{Name: q.Name, T: q.W})
	}
	tensors = append(tensors, optState...)
	meta := map[string]string{"format": "pt", "tp_rank": strconv.Itoa(rank), "tp_size": strconv.Itoa(size), "step": strconv.FormatInt(st.Step, 10)}
	res := shardResult{}
	if rngErr != nil {
		// Reported like a failed write, so every rank still takes part in
		// the gather below and all fail together.
		res.Error = fmt.Sprintf("random state: %v", rngErr)
	} else if pullErr != nil {
		res.Error = pullErr.Error()
	} else if res.File, err = checkpoint.WriteFileDigest(filepath.Join(dir, shardFileName(rank, size)), tensors, meta); err != nil {
		res.Error = err.Error()
	} else {
		hook("model")
	}
	payload, err := json.Marshal(res)
	if err != nil {
		return wrap(err)
	}
	all, err := gatherBytes(ctx, tp, payload)
	if err != nil {
		return wrap(err)
	}
	digests := make([]checkpoint.FileDigest, size)
	var errs []error
	for r, b := range all {
		var rr shardResult
		if err := json.Unmarshal(b, &rr); err != nil {
			errs = append(errs, fmt.Errorf("tensor-parallel rank %d: bad report: %w", r, err))
			continue
		}
		if rr.Error != "" {
			errs = append(errs, fmt.Errorf("tensor-parallel rank %d: %s", r, rr.Error))
		}
		digests[r] = rr.File
	}
	if len(errs) > 0 {
		if rank == 0 {
			os.RemoveAll(staging)
		}
		return wrap(errors.Join(errs...))
	}

	if rank == 0 {
		err = p.finishSharded(out, staging, dir, final, keep, st, hook, g, digests)
	}
	if err := agree(ctx, tp, err, "save checkpoint "+final); err != nil {
		return err
	}
	return nil
}

// finishSharded is the leader's part once every shard is written: config
// and tokenizer files, the manifest, the rename, pruning.
func (p *Policy) finishSharded(out, staging, dir, final string, keep int, st *State, hook func(string), g Group, digests []checkpoint.FileDigest) error {
	wrap := func(err error) error { return fmt.Errorf("save checkpoint %s: %w", final, err) }
	fail := func(err error) error {
		os.RemoveAll(staging)
		return wrap(err)
	}
	m, err := p.manifest(st, g, digests)
	if err != nil {
		return fail(err)
	}
	cfg := *p.Model.Cfg
	cfg.TorchDType = "float32"
	conf, err := cfg.JSON()
	if err != nil {
		return fail(err)
	}
	extra := map[string][]byte{"config.json": conf}
	for k, v := range p.Files {
		extra[k] = v
	}
	for _, name := range sortedNames(extra) {
		d, err := checkpoint.WriteFileDigestBytes(filepath.Join(dir, name), extra[name])
		if err != nil {
			return fail(err)
		}
		m.Files = append(m.Files, d)
	}
	// The manifest is written last: with it the directory is complete.
	if err := checkpoint.WriteManifest(dir, m); err != nil {
		return fail(err)
	}
	for _, d := range []string{dir, staging} {
		if err := syncDir(d); err != nil {
			return fail(err)
		}
	}
	hook("state")
	if err := publish(out, staging, dir, final, hook); err != nil {
		return wrap(err)
	}
	if err := Prune(out, keep); err != nil {
		return wrap(err)
	}
	return nil
}

// manifest describes the shard files: every parameter and optimizer
// buffer with every TP rank's slice, as g's split assigns them.
func (p *Policy) manifest(st *State, g Group, digests []checkpoint.FileDigest) (*checkpoint.Manifest, error) {
	size := g.TPSize()
	st.Schema = StateSchema
	js, err := json.Marshal(st)
	if err != nil {
		return nil, err
	}
	m := &checkpoint.Manifest{
		Format: checkpoint.ManifestFormat, Version: checkpoint.ManifestVersion,
		Layout: map[string]int{"tp": size, "dp": g.DP.Size()},
		Files:  digests,
		Meta:   map[string]json.RawMessage{stateMetaKey: js},
	}
	prefixes := []string{""}
	for _, b := range p.Opt.State() {
		prefixes = append(prefixes, b.Name+"/")
	}
	for _, prefix := range prefixes {
		for _, spec := range qwen2.ParamSpecs(p.Model.Cfg) {
			t := checkpoint.ShardedTensor{Name: prefix + spec.Name, DType: engine.F32.String(), Shape: spec.Shape}
			for r := range size {
				dim, lo, hi, err := g.Split(spec.Name, spec.Shape, r)
				if err != nil {
					return nil, err
				}
				if r > 0 && dim != t.Dim {
					return nil, fmt.Errorf("%s: split on dimension %d by rank %d, %d by rank 0", spec.Name, dim, r, t.Dim)
				}
				if dim < 0 {
					lo, hi = 0, 0
				}
				t.Dim = dim
				t.Slices = append(t.Slices, checkpoint.SliceRef{Rank: r, Lo: lo, Hi: hi, File: digests[r].Name})
			}
			m.Tensors = append(m.Tensors, t)
		}
	}
	return m, nil
}

// gatherBytes returns every rank's b (lengths may differ), in rank order:
// each rank broadcasts its length and then its bytes in turn.
func gatherBytes(ctx context.Context, c dist.Comm, b []byte) ([][]byte, error) {
	out := make([][]byte, c.Size())
	for r := range out {
		var n [8]byte
		if r == c.Rank() {
			binary.LittleEndian.PutUint64(n[:], uint64(len(b)))
		}
		if err := c.Broadcast(collectiveCtx(ctx), n[:], r); err != nil {
			return nil, fmt.Errorf("gather from tensor-parallel rank %d: %w", r, err)
		}
		size := binary.LittleEndian.Uint64(n[:])
		if size > 1<<24 {
			return nil, fmt.Errorf("gather from tensor-parallel rank %d: %d bytes announced", r, size)
		}
		buf := b
		if r != c.Rank() {
			buf = make([]byte, size)
		}
		if size > 0 {
			if err := c.Broadcast(collectiveCtx(ctx), buf, r); err != nil {
				return nil, fmt.Errorf("gather from tensor-parallel rank %d: %w", r, err)
			}
		}
		out[r] = buf
	}
	return out, nil
}

func sortedNames(m map[string][]byte) []string {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// TokenizerFiles reads the tokenizer and generation files of a model or
// checkpoint directory that exist (the files every checkpoint carries), by
// file name.
func TokenizerFiles(dir string) (map[string][]byte, error) { return readTokenizerFiles(dir) }
