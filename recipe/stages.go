package recipe

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"purpcode/checkpoint"
)

// MarkerDir is the directory of a run that holds one completion marker per
// finished stage, <stage>.json, and the config the run started with.
const MarkerDir = "done"

// configMarker is the run's config as it started; a resumed run must have
// the same.
const configMarker = "config.json"

// InterruptedError is a run stopped by its context during a stage. Every
// stage that finished before it has its outputs and marker on disk; the
// interrupted stage has no marker, and Options.Resume runs it again (SFT
// and RL from their last checkpoint).
type InterruptedError struct {
	Stage string
	Err   error
}

func (e *InterruptedError) Error() string {
	return fmt.Sprintf("interrupted during %s: %v", e.Stage, e.Err)
}

func (e *InterruptedError) Unwrap() error { return e.Err }

// markerPath is the completion marker of stage in the run directory out.
func markerPath(out, stage string) string {
	return filepath.Join(out, MarkerDir, stage+".json")
}

// stage runs one stage of the recipe unless its completion marker exists:
// then the marker's content, what the stage returned when it finished, is
// decoded into result instead. After run succeeds, result is written as
// the marker, atomically and after everything run wrote, so a marker
// always means complete outputs. A stage that fails because ctx was
// cancelled gives an *InterruptedError naming it.
func (r *recipe) stage(ctx context.Context, name string, result any, run func() error) error {
	path := markerPath(r.cfg.Out, name)
	raw, err := os.ReadFile(path)
	switch {
	case err == nil:
		if err := json.Unmarshal(raw, result); err != nil {
			return fmt.Errorf("stage %s: completion marker %s: %w", name, path, err)
		}
		r.logf("%s: complete (%s), skipped", name, path)
		return nil
	case !errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("stage %s: %w", name, err)
	}
	if err := ctx.Err(); err != nil {
		return &InterruptedError{Stage: name, Err: err}
	}
	if r.opts.OnStage != nil {
		r.opts.OnStage(name)
	}
	if err := run(); err != nil {
		if ctx.Err() != nil {
			return &InterruptedError{Stage: name, Err: err}
		}
		return err
	}
	return writeMarker(path, result)
}

func writeMarker(path string, v any) error {
	raw, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", path, err)
	}
	return writeMarkerBytes(path, append(raw, '\n'))
}

// Resumable reports whether dir holds a run that Options.Resume can
// continue (one started by this version of the recipe).
func Resumable(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, MarkerDir, configMarker))
	return err == nil
}

// prepareDir checks that cfg.Out may be written: empty or absent for a new
// run; for a resumed one, empty or a run started with the same config. It
// records the config for a later resume.
func prepareDir(cfg Config, resume bool) error {
	want, err := configJSON(cfg)
	if err != nil {
		return err
	}
	path := filepath.Join(cfg.Out, MarkerDir, configMarker)
	entries, err := os.ReadDir(cfg.Out)
	empty := err != nil || len(entries) == 0
	switch {
	case empty:
	case !resume:
		return fmt.Errorf("run directory %s is not empty", cfg.Out)
	default:
		got, err := os.ReadFile(path)
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("run directory %s holds no run to resume (no %s); choose another --out", cfg.Out, filepath.Join(MarkerDir, configMarker))
		}
		if err != nil {
			return fmt.Errorf("resume %s: %w", cfg.Out, err)
		}
		if !bytes.Equal(got, want) {
			return fmt.Errorf("resume %s: the config differs from the one the run started with (%s); resume with the same config or choose another --out", cfg.Out, path)
		}
		return nil
	}
	if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
		return fmt.Errorf("create run directory: %w", err)
	}
	return writeMarkerBytes(path, want)
}

func writeMarkerBytes(path string, raw []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := checkpoint.AtomicWriteFile(path, raw, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// configJSON is the config a resume must match: everything but the run
// directory, which a user may name differently (relative or absolute).
func configJSON(cfg Config) ([]byte, error) {
	cfg.Out = ""
	raw, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode config: %w", err)
	}
	return append(raw, '\n'), nil
}
