package main

import (
	"fmt"
	"io"

	"purpcode/engine"
	"purpcode/model/qwen2"
)

// runInit writes a randomly initialised model directory from a config.json:
// the start of pretraining runs and the source of small test fixtures.
func runInit(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("init", stderr)
	config := fs.String("config", "", "Hugging Face config.json describing the model")
	out := fs.String("out", "", "output model directory (replaced atomically)")
	seed := fs.Uint64("seed", 1, "initialisation seed")
	dtype := fs.String("dtype", "F32", "storage dtype: F32, BF16 or F16")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *config == "" || *out == "" {
		fmt.Fprintln(stderr, "purpcode init: --config and --out are required")
		return errUsage
	}
	dt, err := engine.ParseDType(*dtype)
	if err != nil {
		return fmt.Errorf("--dtype: %w", err)
	}
	cfg, err := qwen2.LoadConfig(*config)
	if err != nil {
		return err
	}
	m := qwen2.New(cfg, engine.NewDefaultCPU(engine.CPUOptions{Workers: 1}), *seed)
	if err := m.Save(*out, qwen2.SaveOptions{DType: dt}); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s: %d parameters, seed %d, %s\n", *out, m.P.Count(), *seed, dt)
	return nil
}
