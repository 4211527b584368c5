package faulttest

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"purpcode/checkpoint"
	"purpcode/train"
)

// HiddenEntries lists out's hidden entries: staging directories of saves
// (and files) that did not finish.
func HiddenEntries(t *testing.T, out string) []string {
	t.Helper()
	entries, err := os.ReadDir(out)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			names = append(names, e.Name())
		}
	}
	return names
}

// shardFile is TP rank rank's file in a sharded checkpoint of tp ranks
// (train's layout, train.ShardFilePattern).
func shardFile(rank, tp int) string {
	return fmt.Sprintf("tp-%05d-of-%05d.safetensors", rank, tp)
}

// CheckAfterKill checks out after k on a group with tp tensor-parallel
// ranks: the newest complete checkpoint is the one k leaves, it verifies
// (every file's hash) and is sharded (each rank wrote its own shard: a
// whole-model save would hide a broken sharded one); the only hidden
// entries are the staging directory of the save k interrupted (a resumed
// run removes the earlier ones), holding the killed rank's shard file
// without a manifest when the kill came right after the shard was
// written, a complete checkpoint with its manifest when it came right
// before the rename.
func CheckAfterKill(t *testing.T, out string, k Kill, tp int) {
	t.Helper()
	ck, ok, err := train.Latest(out)
	if err != nil {
		t.Fatal(err)
	}
	var got int64
	if ok {
		got = ck.Step
		if err := train.VerifyCheckpoint(ck); err != nil {
			t.Errorf("after kill %s: newest checkpoint unusable: %v", k.Env, err)
		}
		if !train.IsSharded(ck.Dir) {
			t.Errorf("after kill %s: %s is not a sharded checkpoint", k.Env, ck.Dir)
		}
	}
	if got != k.Latest {
		t.Errorf("after kill %s on rank %d: newest complete checkpoint is step %d, want %d", k.Env, k.Rank, got, k.Latest)
	}
	hidden := HiddenEntries(t, out)
	base := filepath.Base(train.StepDir(out, k.Step))
	if k.Stage == "" || k.Stage == "renamed" {
		// After the rename the staging directory is empty or gone.
		for _, h := range hidden {
			if k.Stage == "" || !strings.HasPrefix(h, "."+base) {
				t.Errorf("after kill %s: leftover %s in the output dir", k.Env, h)
			}
		}
		return
	}
	if len(hidden) != 1 || !strings.HasPrefix(hidden[0], "."+base) {
		t.Errorf("after kill %s: hidden entries %v, want the staging directory of %s alone", k.Env, hidden, base)
		return
	}
	dir := filepath.Join(out, hidden[0], base)
	if _, err := os.Stat(filepath.Join(dir, shardFile(k.Rank%tp, tp))); err != nil {
		t.Errorf("after kill %s: the killed rank's shard in staging: %v", k.Env, err)
	}
	if has := checkpoint.HasManifest(dir); has != (k.Stage == "state") {
		t.Errorf("after kill %s: staging %s has a manifest: %v, want %v", k.Env, dir, has, k.Stage == "state")
	}
}

// SameMetrics requires the metrics rows of the run resumed after kills
// kills (got) to be the uninterrupted run's (want), the trainers having
// stripped the wall-clock fields: everything else, JSON keeping a
// float64's bits, must be exactly equal.
func SameMetrics(t *testing.T, got, want []string, kills int) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("metrics after %d kills differ from the uninterrupted run's:\nresumed:\n%s\nuninterrupted:\n%s", kills, strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// CheckResumed requires out, written by a run with tp tensor-parallel
// ranks that was killed and resumed, to hold ref's checkpoints (the
// uninterrupted run's): the same steps, the same tp shard files byte for
// byte (weights, optimizer buffers and their metadata), the same training
// state but for the wall clock, and no hidden leftovers (the last run
// removed every interrupted save's staging directory).
func CheckResumed(t *testing.T, out, ref string, tp int) {
	t.Helper()
	want, err := train.List(ref)
	if err != nil {
		t.Fatal(err)
	}
	got, err := train.List(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("checkpoints %v, uninterrupted run %v", got, want)
	}
	for i, w := range want {
		g := got[i]
		if g.Step != w.Step {
			t.Fatalf("checkpoints %v, uninterrupted run %v", got, want)
		}
		sameShardFiles(t, g.Dir, w.Dir, tp)
		sw, err := train.LoadState(w.Dir)
		if err != nil {
			t.Fatal(err)
		}
		sg, err := train.LoadState(g.Dir)
		if err != nil {
			t.Fatal(err)
		}
		sw.ElapsedS, sg.ElapsedS = 0, 0
		if !reflect.DeepEqual(sg, sw) {
			t.Errorf("%s: training state %+v, uninterrupted run %+v", g.Dir, sg, sw)
		}
	}
	if h := HiddenEntries(t, out); len(h) > 0 {
		t.Errorf("leftovers %v in the output dir", h)
	}
}

// sameShardFiles requires checkpoint directory dir to hold ref's shard
// files, exactly one per TP rank, byte for byte.
func sameShardFiles(t *testing.T, dir, ref string, tp int) {
	t.Helper()
	for _, d := range []string{ref, dir} {
		files, err := filepath.Glob(filepath.Join(d, train.ShardFilePattern))
		if err != nil {
			t.Fatal(err)
		}
		if len(files) != tp {
			t.Errorf("%s: shard files %v, want one per TP rank (%d)", d, files, tp)
		}
	}
	for r := range tp {
		name := shardFile(r, tp)
		a, err := os.ReadFile(filepath.Join(ref, name))
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) {
			t.Errorf("%s differs from the uninterrupted run's", filepath.Join(dir, name))
		}
	}
}
