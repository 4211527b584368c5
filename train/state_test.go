package train

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"purpcode/checkpoint"
	"purpcode/engine"
)

func saveTiny(t *testing.T, out string, step int64, hook func(string)) string {
	t.Helper()
	w := engine.FromF32([]float32{float32(step), 2}, 2)
	m := engine.FromF32([]float32{0.5, float32(step)}, 2)
	dir, err := Save(out, SaveOptions{
		WriteModel: func(dir string) error {
			return checkpoint.WriteDir(dir, []checkpoint.Named{{Name: "w", T: w}}, checkpoint.WriteOptions{})
		},
		State:     &State{Trainer: "test", Step: step, RNG: []byte{1, 2}, Config: map[string]string{"lr": "1"}, ConfigHash: HashConfig(map[string]string{"lr": "1"})},
		Optimizer: []checkpoint.Named{{Name: "exp_avg/w", T: m}},
		Hook:      hook,
	})
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestSaveListPruneLoad(t *testing.T) {
	out := t.TempDir()
	for _, s := range []int64{2, 10, 4} {
		saveTiny(t, out, s, nil)
	}
	// Directories that are not complete checkpoints are never listed.
	os.MkdirAll(filepath.Join(out, "checkpoint-99", "training_state"), 0o755)
	os.MkdirAll(filepath.Join(out, ".checkpoint-50.tmp-x"), 0o755)
	os.MkdirAll(filepath.Join(out, "checkpoint-abc"), 0o755)
	cks, err := List(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(cks) != 3 || cks[0].Step != 2 || cks[1].Step != 4 || cks[2].Step != 10 {
		t.Fatalf("List = %v, want steps 2, 4, 10", cks)
	}
	if err := Prune(out, 2); err != nil {
		t.Fatal(err)
	}
	if cks, _ = List(out); len(cks) != 2 || cks[0].Step != 4 {
		t.Errorf("after Prune(2): %v", cks)
	}
	if err := CleanStale(out); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(out, ".checkpoint-50.tmp-x")); !os.IsNotExist(err) {
		t.Errorf("CleanStale left the staging dir: %v", err)
	}
	latest, ok, err := Latest(out)
	if err != nil || !ok || latest.Step != 10 {
		t.Fatalf("Latest = %v %v %v", latest, ok, err)
	}
	st, err := LoadState(latest.Dir)
	if err != nil || st.Step != 10 || st.Schema != StateSchema || string(st.RNG) != "\x01\x02" {
		t.Fatalf("LoadState = %+v, %v", st, err)
	}
	m := engine.New(2)
	if err := LoadOptimizer(latest.Dir, []checkpoint.Named{{Name: "exp_avg/w", T: m}}); err != nil || m.F32[1] != 10 {
		t.Errorf("LoadOptimizer: %v, values %v", err, m.F32)
	}
	if err := LoadOptimizer(latest.Dir, []checkpoint.Named{{Name: "exp_avg/w", T: engine.New(3)}}); err == nil {
		t.Error("LoadOptimizer accepted a wrong shape")
	}
	if err := LoadOptimizer(latest.Dir, []checkpoint.Named{{Name: "exp_avg/v", T: engine.New(2)}}); err == nil {
		t.Error("LoadOptimizer accepted a missing tensor")
	}
	if err := st.CheckCompatible(map[string]string{"lr": "1"}); err != nil {
		t.Errorf("same settings: %v", err)
	}
	err = st.CheckCompatible(map[string]string{"lr": "2", "seed": "1"})
	if err == nil || !strings.Contains(err.Error(), `lr: checkpoint "1", now "2"`) || !strings.Contains(err.Error(), "seed:") {
		t.Errorf("changed settings: %v", err)
	}
}

func TestSchemaMismatchRefused(t *testing.T) {
	out := t.TempDir()
	dir := saveTiny(t, out, 1, nil)
	p := filepath.Join(dir, StateDir, StateFile)
	b, _ := os.ReadFile(p)
	os.WriteFile(p, []byte(strings.Replace(string(b), `"schema": 1`, `"schema": 99`, 1)), 0o644)
	if _, err := LoadState(dir); err == nil || !strings.Contains(err.Error(), "schema version 99") {
		t.Errorf("LoadState of a future schema: %v", err)
	}
}

// TestFailedSaveKeepsPrevious: a save that fails part-way (here: the model
// writer fails) leaves no visible checkpoint and the previous one intact;
// a save replacing the same step swaps it atomically.
func TestFailedSaveKeepsPrevious(t *testing.T) {
	out := t.TempDir()
	saveTiny(t, out, 1, nil)
	_, err := Save(out, SaveOptions{
		WriteModel: func(string) error { return os.ErrPermission },
		State:      &State{Step: 2},
	})
	if err == nil {
		t.Fatal("save with a failing model writer succeeded")
	}
	cks, _ := List(out)
	if len(cks) != 1 || cks[0].Step != 1 {
		t.Errorf("after a failed save: %v", cks)
	}
	entries, _ := os.ReadDir(out)
	if len(entries) != 1 {
		t.Errorf("failed save left %d entries in out", len(entries))
	}
	saveTiny(t, out, 1, nil) // replace the same step
	if cks, _ = List(out); len(cks) != 1 {
		t.Errorf("replacing a step: %v", cks)
	}
}
