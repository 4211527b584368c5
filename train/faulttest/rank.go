package faulttest

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"purpcode/dist"
	"purpcode/internal/crashtest"
)

// RankTest is the name every fault test file gives its rank-process test
// (a test function whose body is RunRank): Uninterrupted and Resume start
// the test binary running only it.
const RankTest = "TestFaultRankProcess"

// rankTimeout bounds every connect and collective of a rank: a rank left
// alone by a crashed peer fails within the test's time instead of after
// the default minutes.
const rankTimeout = 30 * time.Second

// Join joins the group of the rank process it runs in, the way
// cmd/purpcode joins one: torchrun's environment (read through lookup,
// os.LookupEnv in a rank), dist.Connect, then dist.NewGrid splitting the
// world into tensor-parallel groups of tp ranks (tpc) and the
// data-parallel group across them (dpc). The caller closes world.
func Join(ctx context.Context, lookup func(string) (string, bool), tp int) (world *dist.TCPComm, tpc, dpc dist.Comm, err error) {
	env, err := dist.ParseEnv(lookup)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("rank environment: %w", err)
	}
	o := env.Options()
	o.Timeout, o.ConnectTimeout = rankTimeout, rankTimeout
	world, err = dist.Connect(ctx, o)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("join the group: %w", err)
	}
	tpc, dpc, err = dist.NewGrid(world, tp)
	if err != nil {
		world.Close()
		return nil, nil, nil, fmt.Errorf("split the group (tp %d): %w", tp, err)
	}
	return world, tpc, dpc, nil
}

// Rank is what a rank process trains with: its tensor- and data-parallel
// groups and crashtest's hooks, which block at the kill point the
// process's environment names until the parent kills every rank.
type Rank struct {
	TP, DP   dist.Comm
	AfterLog func(step int64)
	Save     func(stage string)
}

// RunRank is the body of a fault test's rank process (RankTest), which
// the test starts as one rank of a TP×DP group (torchrun's environment,
// as `purpcode launch` gives it). Outside a rank process it returns at
// once (not a skip: testsummary would list one on every run). Inside one
// it decodes the config C the parent passed, joins the group the way
// cmd/purpcode joins one (Join, lookup as there) with tp(cfg)
// tensor-parallel ranks, and calls train, whose hooks block at the kill
// point the process's environment names until the parent kills every
// rank. It exits 0 when train returned nil, 1 with the error on stderr
// otherwise (crashtest.RunGroup shows it).
func RunRank[C any](lookup func(string) (string, bool), tp func(C) int, train func(ctx context.Context, cfg C, r Rank) error) {
	raw, ok := crashtest.Config()
	if !ok {
		return
	}
	if err := runRank(raw, lookup, tp, train); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(0)
}

func runRank[C any](raw []byte, lookup func(string) (string, bool), tp func(C) int, train func(ctx context.Context, cfg C, r Rank) error) error {
	var cfg C
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return fmt.Errorf("rank config: %w", err)
	}
	ctx := context.Background()
	world, tpc, dpc, err := Join(ctx, lookup, tp(cfg))
	if err != nil {
		return err
	}
	defer world.Close()
	afterLog, save := crashtest.Hooks()
	return train(ctx, cfg, Rank{TP: tpc, DP: dpc, AfterLog: afterLog, Save: save})
}
