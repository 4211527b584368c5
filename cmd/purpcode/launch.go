package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"purpcode/dist"
)

const launchAbout = "Starts N ranks of this binary on this machine, each running the command after --, with torchrun's\n" +
	"environment (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT); rank 0\n" +
	"listens on MASTER_ADDR:MASTER_PORT for the others. Output lines are prefixed with \"[rank N] \" and\n" +
	"each rank's output is also written to --log-dir/rank-N.log. SIGINT/SIGTERM are forwarded to the\n" +
	"ranks (a second one kills them). When a rank fails, the others are stopped and the launch exits 1\n" +
	"naming the rank and its exit status. `sft` and `rl` started this way (or by torchrun or srun) train\n" +
	"on all the ranks: with --tensor-parallel T (config key tensor_parallel) each group of T neighbouring\n" +
	"ranks holds the shards of one model replica (Megatron layout; the rank count must be a multiple of T);\n" +
	"the replicas are data-parallel: each takes a share of every step's micro-batches (sft) or prompts and\n" +
	"packed rows (rl), and gradients are summed over them. Rank 0 alone prints progress and writes\n" +
	"metrics.jsonl; rank 0 writes checkpoints, or with T > 1 each replica-0 rank its shard of them (a\n" +
	"checkpoint is complete once its manifest is written; `purpcode export` consolidates one)."

func runLaunch(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("launch", stderr)
	nproc := fs.Int("nproc-per-node", 0, "number of ranks to start (required)")
	host := fs.String("master-addr", "127.0.0.1", "address rank 0 listens on")
	port := fs.Int("master-port", dist.DefaultMasterPort, "rendezvous port; 0 picks a free one")
	logDir := fs.String("log-dir", "", "directory for rank-N.log files (none when empty)")
	grace := fs.Duration("grace", 10*time.Second, "how long ranks may take to stop after a signal before they are killed")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch {
	case *nproc < 1:
		return flagError{msg: fmt.Sprintf("--nproc-per-node %d: want at least 1", *nproc)}
	case *port < 0 || *port > 65535:
		return flagError{msg: fmt.Sprintf("--master-port %d: want 0..65535", *port)}
	case fs.NArg() == 0:
		return flagError{msg: "no command to run: purpcode launch --nproc-per-node N -- COMMAND [flags]"}
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find this binary: %w", err)
	}
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	err = dist.Launch(context.Background(), dist.LaunchConfig{
		NProc: *nproc, MasterHost: *host, MasterPort: *port,
		Exe: exe, Args: fs.Args(), Env: os.Environ(),
		LogDir: *logDir, Stdout: stdout, Stderr: stderr, Grace: *grace, Signals: sigs,
	})
	if err != nil {
		// Flattened: the rank's *exec.ExitError inside would make mainExit
		// exit with the rank's status (-1 for a signal) and print nothing.
		return errors.New(err.Error())
	}
	return nil
}
