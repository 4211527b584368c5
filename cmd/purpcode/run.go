package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"purpcode/engine"
	"purpcode/recipe"
)

// runRecipe is `purpcode run`: the whole recipe (package recipe) on one
// world, or with --seeds N a sweep over N worlds.
func runRecipe(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("run", stderr)
	configPath := fs.String("config", "", "recipe YAML (default: the embedded demo settings)")
	out := fs.String("out", "", "run directory (overrides the config's out)")
	force := fs.Bool("force", false, "replace an existing run directory")
	seeds := fs.Int("seeds", 1, "worlds to run (seeds world_seed, world_seed+1, ...); more than 1 writes a sweep table")
	resume := fs.Bool("resume", false, "continue the run in the run directory: skip finished stages, continue SFT/RL from their last checkpoint (with --seeds: skip finished worlds)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "purpcode run: unexpected argument %q\n", fs.Arg(0))
		return errUsage
	}
	cfg, err := recipe.Load(*configPath)
	if err != nil {
		return err
	}
	if *out != "" {
		cfg.Out = *out
	}
	if *resume && *force {
		fmt.Fprintln(stderr, "purpcode run: --resume continues the run directory and --force replaces it; pass one")
		return errUsage
	}
	if entries, err := os.ReadDir(cfg.Out); err == nil && len(entries) > 0 && !*resume {
		if !*force {
			return fmt.Errorf("run directory %s exists; pass --resume to continue it, --force to replace it, or choose another --out", cfg.Out)
		}
		if err := os.RemoveAll(cfg.Out); err != nil {
			return fmt.Errorf("replace %s: %w", cfg.Out, err)
		}
	}
	ctx, stop := notifyInterrupt()
	defer stop()
	cpu := engine.NewDefaultCPU(engine.CPUOptions{Workers: cfg.Threads})
	judge, err := loadJudge(cfg.JudgeModel, cpu)
	if err != nil {
		return err
	}
	opts := recipe.Options{CPU: cpu, Judge: judge, Log: stderr, Resume: *resume}
	start := time.Now()
	// interrupted reports a run stopped by a signal: the stage it was in
	// and the command that continues it.
	interrupted := func(err error) error {
		var ie *recipe.InterruptedError
		if !ctx.interrupted() || !errors.As(err, &ie) {
			return err
		}
		fmt.Fprintf(stderr, "interrupted during %s; `%s` continues\n", ie.Stage, resumeCommand("run", args))
		return ctx.exit()
	}
	if *seeds > 1 {
		res, err := recipe.Sweep(ctx, cfg, *seeds, *resume, opts)
		if err != nil {
			return interrupted(err)
		}
		fmt.Fprintf(stdout, "\n%s\nreport: %s (%.0f s in all)\n", res.Markdown(), filepath.Join(cfg.Out, "sweep.md"), time.Since(start).Seconds())
		return nil
	}
	res, err := recipe.Run(ctx, cfg, opts)
	if err != nil {
		return interrupted(err)
	}
	fmt.Fprintf(stdout, "\n%s\nreport: %s (%.0f s in all)\n", res.Summary(), filepath.Join(cfg.Out, "report.md"), time.Since(start).Seconds())
	return nil
}
