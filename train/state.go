package train

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"purpcode/checkpoint"
)

// StateSchema is the version of state.json; a checkpoint with another
// version is refused rather than misread.
const StateSchema = 1

// File and directory names inside a checkpoint.
const (
	CheckpointPrefix = "checkpoint-"
	StateDir         = "training_state"
	StateFile        = "state.json"
	OptimizerFile    = "optimizer.safetensors"
)

// State is the resumable position of a training run.
type State struct {
	Schema  int    `json:"schema"`
	Trainer string `json:"trainer"` // "sft", "grpo"
	Step    int64  `json:"step"`    // optimizer steps completed
	// Data position: the epoch being read, the micro-batch index of the
	// next unread micro-batch within it, and the epoch's shuffle seed.
	Epoch      int    `json:"epoch"`
	MicroBatch int    `json:"micro_batch"`
	EpochSeed  uint64 `json:"epoch_seed"`
	// RNG is the marshalled state of the run's random generator (the one
	// that draws epoch seeds) after drawing EpochSeed.
	RNG            []byte  `json:"rng"`
	Optimizer      string  `json:"optimizer"`
	OptimizerSteps int64   `json:"optimizer_steps"`
	ElapsedS       float64 `json:"elapsed_s"`
	// Config holds the settings that determine the run's numbers, as
	// canonical strings; ConfigHash fingerprints them.
	Config     map[string]string `json:"config"`
	ConfigHash string            `json:"config_hash"`
	// Extra holds trainer-specific resumable numbers (GRPO: the usable
	// group fraction that sizes the next step's draw).
	Extra map[string]float64 `json:"extra,omitempty"`
}

// HashConfig fingerprints canonical settings (order-independent).
func HashConfig(cfg map[string]string) string {
	keys := make([]string, 0, len(cfg))
	for k := range cfg {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	h := sha256.New()
	for _, k := range keys {
		fmt.Fprintf(h, "%q=%q\n", k, cfg[k])
	}
	return hex.EncodeToString(h.Sum(nil))
}

// CheckCompatible explains how a run's settings differ from the saved ones,
// naming every differing key with both values; nil when they agree.
func (s *State) CheckCompatible(cfg map[string]string) error {
	if HashConfig(cfg) == s.ConfigHash {
		return nil
	}
	keys := map[string]bool{}
	for k := range cfg {
		keys[k] = true
	}
	for k := range s.Config {
		keys[k] = true
	}
	var diffs []string
	for k := range keys {
		old, okOld := s.Config[k]
		cur, okCur := cfg[k]
		if old != cur || okOld != okCur {
			diffs = append(diffs, fmt.Sprintf("%s: checkpoint %q, now %q", k, old, cur))
		}
	}
	sort.Strings(diffs)
	if len(diffs) == 0 {
		diffs = append(diffs, "config hash differs")
	}
	return fmt.Errorf("settings differ from the checkpoint's (%s); resume with the same settings or start a new output dir", strings.Join(diffs, "; "))
}

// Checkpoint is a complete checkpoint found on disk.
type Checkpoint struct {
	Dir  string
	Step int64
}

// StepDir is the path of the checkpoint for step in out.
func StepDir(out string, step int64) string {
	return filepath.Join(out, CheckpointPrefix+strconv.FormatInt(step, 10))
}

// List returns the complete checkpoints in out, oldest first: plain ones
// with a state file, sharded ones with a valid manifest whose files are
// all present with their sizes (hashes are VerifyCheckpoint's job). Hidden
// staging leftovers are never listed.
func List(out string) ([]Checkpoint, error) {
	entries, err := os.ReadDir(out)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list checkpoints: %w", err)
	}
	var cks []Checkpoint
	for _, e := range entries {
		name := e.Name()
		if !e.IsDir() || !strings.HasPrefix(name, CheckpointPrefix) {
			continue
		}
		step, err := strconv.ParseInt(strings.TrimPrefix(name, CheckpointPrefix), 10, 64)
		if err != nil || step < 0 {
			continue
		}
		dir := filepath.Join(out, name)
		if !complete(dir) {
			continue
		}
		cks = append(cks, Checkpoint{Dir: dir, Step: step})
	}
	sort.Slice(cks, func(i, j int) bool { return cks[i].Step < cks[j].Step })
	return cks, nil
}

// complete reports whether dir is a checkpoint List may offer.
func complete(dir string) bool {
	if IsSharded(dir) {
		m, err := checkpoint.ReadManifest(dir)
		if err != nil || m.Meta[stateMetaKey] == nil {
			return false
		}
		return m.CheckFiles(dir, false) == nil
	}
	_, err := os.Stat(filepath.Join(dir, StateDir, StateFile))
	return err == nil
}

// Latest returns the newest complete checkpoint in out, or ok=false.
func Latest(out string) (Checkpoint, bool, error) {
	cks, err := List(out)
	if err != nil || len(cks) == 0 {
		return Checkpoint{}, false, err
	}
	return cks[len(cks)-1], true, nil
}

// CleanStale removes hidden staging directories left in out by a save that
// crashed. Only one trainer may use out at a time.
func CleanStale(out string) error {
	entries, err := os.ReadDir(out)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("clean %s: %w", out, err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "."+CheckpointPrefix) {
			if err := os.RemoveAll(filepath.Join(out, e.Name())); err != nil {
				return fmt.Errorf("clean %s: %w", out, err)
			}
		}
	}
	return nil
}

// Prune deletes the oldest complete checkpoints so that at most keep
// remain (keep <= 0 keeps all). The newest is never deleted.
func Prune(out string, keep int) error {
	if keep <= 0 {
		return nil
	}
	cks, err := List(out)
	if err != nil {
		return err
	}
	for len(cks) > keep {
		// Rename first so that a crash mid-delete never leaves a visible,
		// half-deleted checkpoint that List would offer for resuming.
		dead := filepath.Join(out, "."+filepath.Base(cks[0].Dir)+".tmp-delete")
		if err := os.Rename(cks[0].Dir, dead); err != nil {
			return fmt.Errorf("prune %s: %w", cks[0].Dir, err)
		}
		if err := os.RemoveAll(dead); err != nil {
			return fmt.Errorf("prune %s: %w", cks[0].Dir, err)
		}
		cks = cks[1:]
	}
	return nil
}

// SaveOptions describes one checkpoint to write.
type SaveOptions struct {
	// WriteModel writes the HF model directory at dir (which does not
	// exist yet), e.g. a qwen2.Model.Save.
	WriteModel func(dir string) error
	State      *State
	// Optimizer buffers as named tensors (views are fine: they are only
	// read).
	Optimizer []checkpoint.Named
	// Hook, when set, is called at the named stages "model" (model files
	// written in staging), "state" (training state written, not yet
	// renamed) and "renamed" (checkpoint visible); tests use it to crash
	// the process mid-save.
	Hook func(stage string)
}

// Save writes OUT/checkpoint-STEP (STEP = opts.State.Step) atomically and
// returns its path. An existing checkpoint of the same step is replaced.
func Save(out string, opts SaveOptions) (string, error) {
	st := opts.State
	final := StepDir(out, st.Step)
	hook := opts.Hook
	if hook == nil {
		hook = func(string) {}
	}
	wrap := func(err error) error { return fmt.Errorf("save checkpoint %s: %w", final, err) }
	if err := os.MkdirAll(out, 0o755); err != nil {
		return "", wrap(err)
	}
	staging, err := os.MkdirTemp(out, "."+filepath.Base(final)+".tmp-")
	if err != nil {
		return "", wrap(err)
	}
	fail := func(err error) (string, error) {
		os.RemoveAll(staging)
		return "", wrap(err)
	}
	dir := filepath.Join(staging, filepath.Base(final))
	if err := opts.WriteModel(dir); err != nil {
		return fail(err)
	}
	hook("model")
	sdir := filepath.Join(dir, StateDir)
	if err := os.Mkdir(sdir, 0o755); err != nil {
		return fail(err)
	}
	if len(opts.Optimizer) > 0 {
		meta := map[string]string{"optimizer": st.Optimizer, "step": strconv.FormatInt(st.Step, 10)}
		if err := checkpoint.WriteFile(filepath.Join(sdir, OptimizerFile), opts.Optimizer, meta); err != nil {
			return fail(err)
		}
	}
	st.Schema = StateSchema
	js, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fail(err)
	}
	// The state file is written last: its presence marks a checkpoint
	// complete (List ignores directories without it).
	if err := checkpoint.AtomicWriteFile(filepath.Join(sdir, StateFile), append(js, '\n'), 0o644); err != nil {
		return fail(err)
	}
	for _, d := range []string{dir, staging} {
		if err := syncDir(d); err != nil {
			return fail(err)
		}
	}
	hook("state")
	if err := publish(out, staging, dir, final, hook); err != nil {
		return "", wrap(err)
	}
	return final, nil
}

// publish makes the complete checkpoint dir (inside staging) visible as
// final, replacing a checkpoint of the same step (moved aside first and
// put back if the rename fails), and removes staging; hook is told
// "renamed" once final is visible. Plain and sharded saves both end here.
func publish(out, staging, dir, final string, hook func(string)) error {
	var old string
	if _, err := os.Lstat(final); err == nil {
		old = staging + ".old"
		if err := os.Rename(final, old); err != nil {
			os.RemoveAll(staging)
			return err
		}
	}
	if err := os.Rename(dir, final); err != nil {
		if old != "" {
			os.Rename(old, final)
		}
		os.RemoveAll(staging)
		return err
	}
	if err := syncDir(out); err != nil {
		return err
	}
	hook("renamed")
	if old != "" {
		os.RemoveAll(old)
	}
	return os.RemoveAll(staging)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}

// LoadState reads and checks a checkpoint's training state:
// checkpointDir/training_state/state.json, or for a sharded checkpoint the
// state its manifest holds.
func LoadState(checkpointDir string) (*State, error) {
	path := filepath.Join(checkpointDir, StateDir, StateFile)
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) && IsSharded(checkpointDir) {
		path = filepath.Join(checkpointDir, checkpoint.ManifestFileName)
		m, merr := checkpoint.ReadManifest(checkpointDir)
		if merr != nil {
			return nil, fmt.Errorf("load training state: %w", merr)
		}
		if data, err = m.Meta[stateMetaKey], nil; data == nil {
			return nil, fmt.Errorf("load training state: %s holds no %s", path, stateMetaKey)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("load training state: %w", err)
	}
	var st State
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("load training state %s: %w", path, err)
	}
	if st.Schema != StateSchema {
		return nil, fmt.Errorf("load training state %s: schema version %d, this build reads version %d", path, st.Schema, StateSchema)
	}
	if st.Step < 0 || st.Epoch < 0 || st.MicroBatch < 0 {
		return nil, fmt.Errorf("load training state %s: negative step %d, epoch %d or micro-batch %d", path, st.Step, st.Epoch, st.MicroBatch)
	}
	return &st, nil
}

// LoadOptimizer copies the saved optimizer buffers of checkpointDir into
// dst (matched by name, shapes checked); every name in dst must be present
// and the file must hold nothing else.
func LoadOptimizer(checkpointDir string, dst []checkpoint.Named) error {
	path := filepath.Join(checkpointDir, StateDir, OptimizerFile)
	if len(dst) == 0 {
		return nil
	}
	r, err := checkpoint.Open(path)
	if err != nil {
		return fmt.Errorf("load optimizer state: %w", err)
	}
	defer r.Close()
	want := map[string]bool{}
	for _, n := range dst {
		want[n.Name] = true
		t, err := r.Tensor(n.Name)
		if err != nil {
			return fmt.Errorf("load optimizer state %s: %w", path, err)
		}
		if !slices.Equal(t.Shape, n.T.Shape) {
			return fmt.Errorf("load optimizer state %s: tensor %s has shape %v, want %v", path, n.Name, t.Shape, n.T.Shape)
		}
		copy(n.T.F32, t.ToF32())
	}
	for _, name := range r.Names() {
		if !want[name] {
			return fmt.Errorf("load optimizer state %s: unexpected tensor %s (different optimizer or model?)", path, name)
		}
	}
	return nil
}
