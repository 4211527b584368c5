package main

import (
	"flag"
	"fmt"
	"io"
)

// runConfigSpec describes a trainer's config for runConfig.
type runConfigSpec[T any] struct {
	name, usage string
	defaults    func() T
	register    func(*flag.FlagSet, *T) *string // binds flags, returns the --config path
	load        func(string, *T) error          // reads a YAML file into a config
	validate    func(*T) error
}

// runConfig builds a run config from the defaults, then the --config YAML
// file, then the flags given explicitly on the command line (a flag left at
// its default never overrides the file).
func runConfig[T any](spec runConfigSpec[T], args []string, stderr io.Writer) (T, *cpuFlags, error) {
	var zero T
	fs := newFlags(spec.name, stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: purpcode %s [--config run.yaml] [flags]\n\n%s\n\nflags:\n", spec.name, spec.usage)
		fs.PrintDefaults()
	}
	fl := spec.defaults()
	configPath := spec.register(fs, &fl)
	cpu := addCPUFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return zero, nil, err
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "purpcode %s: unexpected argument %q\n", spec.name, fs.Arg(0))
		return zero, nil, errUsage
	}
	cfg := spec.defaults()
	if *configPath != "" {
		if err := spec.load(*configPath, &cfg); err != nil {
			return zero, nil, err
		}
	}
	// The CPU flags have no config key and are skipped by applyFlag.
	fs.Visit(func(f *flag.Flag) { applyFlag(&cfg, &fl, f.Name) })
	return cfg, cpu, spec.validate(&cfg)
}
