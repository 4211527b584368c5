package checkpoint

import (
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"purpcode/engine"
)

// crash runs writeDir with a hook that panics at step, which abandons the
// write with no cleanup, exactly like a process dying there.
func crash(t *testing.T, dir string, tensors []Named, opts WriteOptions, step string) {
	t.Helper()
	reached := false
	func() {
		defer func() {
			if r := recover(); r != nil && r != "crash" {
				panic(r)
			}
		}()
		_ = writeDir(dir, tensors, opts, func(s string) error {
			if s == step {
				reached = true
				panic("crash")
			}
			return nil
		})
	}()
	if !reached {
		t.Fatalf("writeDir never reached step %q", step)
	}
}

// assertHolds opens dir and checks it holds exactly want.
func assertHolds(t *testing.T, dir string, want []Named) {
	t.Helper()
	r, err := Open(dir)
	if err != nil {
		t.Fatalf("checkpoint unreadable: %v", err)
	}
	defer r.Close()
	var names []string
	for _, nt := range want {
		names = append(names, nt.Name)
	}
	if got := r.Names(); !reflect.DeepEqual(got, names) {
		t.Fatalf("Names() = %v, want %v", got, names)
	}
	for _, nt := range want {
		got, err := r.Tensor(nt.Name)
		if err != nil {
			t.Fatal(err)
		}
		sameTensor(t, nt.Name, got, nt.T)
	}
}

func versions() (v1, v2 []Named) {
	rng := rand.New(rand.NewPCG(7, 7))
	v1 = []Named{{"a", randTensor(rng, engine.F32, 30)}, {"b", randTensor(rng, engine.BF16, 40)}, {"c", randTensor(rng, engine.F32, 25)}}
	v2 = []Named{{"a", randTensor(rng, engine.F32, 30)}, {"d", randTensor(rng, engine.F16, 8)}}
	return v1, v2
}

func TestCrashBeforeSwapLeavesOldDir(t *testing.T) {
	v1, v2 := versions()
	for _, step := range []string{"file:model-00001-of-00002.safetensors", "synced"} {
		t.Run(step, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "ckpt")
			if err := WriteDir(dir, v1, WriteOptions{MaxShardBytes: 150}); err != nil {
				t.Fatal(err)
			}
			big := append(append([]Named(nil), v2...), Named{"e", v1[0].T})
			crash(t, dir, big, WriteOptions{MaxShardBytes: 150}, step)
			left := siblings(t, dir)
			if len(left) != 1 || !strings.HasPrefix(left[0], ".ckpt.tmp-") {
				t.Fatalf("after the crash, siblings %v; want one .ckpt.tmp-* dir", left)
			}
			assertHolds(t, dir, v1) // readers ignore the temp dir
			if err := RecoverDir(dir); err != nil {
				t.Fatal(err)
			}
			if left := siblings(t, dir); len(left) != 0 {
				t.Fatalf("RecoverDir left %v", left)
			}
			assertHolds(t, dir, v1)
		})
	}
}

// Between the two renames dir does not exist; the old copy is aside and the
// new one is complete. RecoverDir (also run by the next WriteDir) finishes
// the swap.
func TestCrashMidSwapRecoversNewDir(t *testing.T) {
	v1, v2 := versions()
	dir := filepath.Join(t.TempDir(), "ckpt")
	if err := WriteDir(dir, v1, WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	crash(t, dir, v2, WriteOptions{}, "aside")
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("dir should be aside at this step (stat: %v)", err)
	}
	left := siblings(t, dir)
	var old, tmp string
	for _, n := range left {
		switch {
		case strings.HasPrefix(n, ".ckpt.old-"):
			old = n
		case strings.HasPrefix(n, ".ckpt.tmp-"):
			tmp = n
		}
	}
	if len(left) != 2 || old == "" || tmp == "" {
		t.Fatalf("siblings %v, want one .ckpt.old-* and one .ckpt.tmp-*", left)
	}
	// Both copies are complete checkpoints under recognisable names.
	assertHolds(t, filepath.Join(filepath.Dir(dir), old), v1)
	assertHolds(t, filepath.Join(filepath.Dir(dir), tmp), v2)

	if err := RecoverDir(dir); err != nil {
		t.Fatal(err)
	}
	assertHolds(t, dir, v2)
	if left := siblings(t, dir); len(left) != 0 {
		t.Fatalf("RecoverDir left %v", left)
	}
}

func TestRecoverRestoresOldWhenNewIsMissing(t *testing.T) {
	v1, _ := versions()
	dir := filepath.Join(t.TempDir(), "ckpt")
	if err := WriteDir(dir, v1, WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(dir, filepath.Join(filepath.Dir(dir), ".ckpt.old-123")); err != nil {
		t.Fatal(err)
	}
	if err := RecoverDir(dir); err != nil {
		t.Fatal(err)
	}
	assertHolds(t, dir, v1)
}

// An ordinary failure (not a crash) cleans up after itself and, if it
// happens after the old dir was moved aside, moves it back.
func TestFailedWriteDirKeepsOldDir(t *testing.T) {
	v1, v2 := versions()
	for _, step := range []string{"file:model.safetensors", "synced", "aside"} {
		t.Run(step, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "ckpt")
			if err := WriteDir(dir, v1, WriteOptions{}); err != nil {
				t.Fatal(err)
			}
			boom := errors.New("disk full")
			err := writeDir(dir, v2, WriteOptions{}, func(s string) error {
				if s == step {
					return boom
				}
				return nil
			})
			if !errors.Is(err, boom) || !strings.Contains(err.Error(), dir) {
				t.Fatalf("error = %v, want the hook's error wrapped with %s", err, dir)
			}
			assertHolds(t, dir, v1)
			if left := siblings(t, dir); len(left) != 0 {
				t.Fatalf("failure left %v", left)
			}
		})
	}
}

// A crashed first write (no previous dir) leaves no dir, and the next
// WriteDir cleans the stale temp dir.
func TestNextWriteDirCleansCrashLeftovers(t *testing.T) {
	v1, v2 := versions()
	dir := filepath.Join(t.TempDir(), "ckpt")
	crash(t, dir, v1, WriteOptions{}, "synced")
	if _, err := Open(dir); err == nil {
		t.Fatal("Open succeeded on a dir whose first write crashed")
	}
	if err := WriteDir(dir, v2, WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	assertHolds(t, dir, v2)
	if left := siblings(t, dir); len(left) != 0 {
		t.Fatalf("leftovers %v", left)
	}
}
