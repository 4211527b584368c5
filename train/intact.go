package train

import (
	"fmt"
	"os"
	"path/filepath"

	"purpcode/checkpoint"
)

// VerifyCheckpoint reads a checkpoint back: its training state loads and
// names the checkpoint's own step, and its weight and optimizer files open
// with valid headers; for a sharded checkpoint every file the manifest
// lists is present with its size and SHA-256 and holds the slices the
// manifest places there. It is what a stop message may call "intact".
func VerifyCheckpoint(ck Checkpoint) error {
	st, err := LoadState(ck.Dir)
	if err != nil {
		return err
	}
	if st.Step != ck.Step {
		return fmt.Errorf("verify %s: state is of step %d", ck.Dir, st.Step)
	}
	if IsSharded(ck.Dir) {
		m, err := checkpoint.ReadManifest(ck.Dir)
		if err != nil {
			return fmt.Errorf("verify %s: %w", ck.Dir, err)
		}
		if err := m.CheckFiles(ck.Dir, true); err != nil {
			return fmt.Errorf("verify %s: %w", ck.Dir, err)
		}
		sr, err := checkpoint.OpenSharded(ck.Dir)
		if err != nil {
			return fmt.Errorf("verify %s: %w", ck.Dir, err)
		}
		return sr.Close()
	}
	r, err := checkpoint.Open(ck.Dir)
	if err != nil {
		return fmt.Errorf("verify %s: %w", ck.Dir, err)
	}
	r.Close()
	opt := filepath.Join(ck.Dir, StateDir, OptimizerFile)
	if _, err := os.Stat(opt); err == nil {
		r, err := checkpoint.Open(opt)
		if err != nil {
			return fmt.Errorf("verify %s: %w", ck.Dir, err)
		}
		r.Close()
	}
	return nil
}

// LastIntact returns the newest checkpoint in out that VerifyCheckpoint
// accepts; ok is false when there is none.
func LastIntact(out string) (ck Checkpoint, ok bool, err error) {
	cks, err := List(out)
	if err != nil {
		return Checkpoint{}, false, err
	}
	for i := len(cks) - 1; i >= 0; i-- {
		if VerifyCheckpoint(cks[i]) == nil {
			return cks[i], true, nil
		}
	}
	return Checkpoint{}, false, nil
}

// DescribeLastCheckpoint says, for a message about a stopped run, which
// checkpoint in out a resumed run would continue from — only after reading
// it back — or that there is none.
func DescribeLastCheckpoint(out string) string {
	ck, ok, err := LastIntact(out)
	switch {
	case err != nil:
		return fmt.Sprintf("could not check the checkpoints in %s: %v", out, err)
	case !ok:
		return fmt.Sprintf("no checkpoint was written to %s", out)
	}
	return fmt.Sprintf("the last intact checkpoint is %s (step %d; its state and weights were read back)", ck.Dir, ck.Step)
}
