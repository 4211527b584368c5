package faulttest

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"purpcode/internal/crashtest"
)

// SeedEnv replays a fault test's kill plan: the tests log the seed they
// drew.
const SeedEnv = "PURPCODE_FAULT_SEED"

// Seed is the seed of the kill plans: SeedEnv's value (read through
// getenv, os.Getenv in a test), else drawn from the clock, so every run
// tries other kill points; it is logged so a failing plan can be replayed.
func Seed(t *testing.T, getenv func(string) string) uint64 {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := getenv(SeedEnv); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("%s: %v", SeedEnv, err)
		}
		seed = v
	}
	t.Logf("kill plan seed %d (replay with %s=%d)", seed, SeedEnv, seed)
	return seed
}

// Kill is one SIGKILL of a whole group: Rank blocks at Env (a crashtest
// kill point) and every rank dies with it, wherever it is.
type Kill struct {
	Rank int
	Env  string
	// Latest is the newest complete checkpoint the kill leaves (0: none).
	Latest int64
	// Stage is the save stage Rank is killed at ("" after a step); Step
	// is that save's step.
	Stage string
	Step  int64
}

// PlanKills draws the kill plan (from seed, on a stream of its own for
// each group size) of a run of total steps saving every every steps, on
// ranks ranks of which the first writers write shards:
// kills after steps (never a save step, so that where every other rank
// stands is determined: inside the next step's collectives) by random
// ranks, alternating with kills inside a save: a writer rank right after
// writing its shard (its peers wait for it, the manifest is never
// written), the leader after writing the manifest into the staging
// directory (complete but not visible) and the leader right after the
// rename that made the checkpoint visible (the old ones not yet pruned).
// Each kill lies past the checkpoint the previous one left, so every
// resumed run reaches it. A run too short for every stage gets a shorter
// plan (Resume refuses one that misses a save stage).
func PlanKills(seed uint64, total, every int64, ranks, writers int) []Kill {
	rnd := rand.New(rand.NewPCG(seed, uint64(ranks)))
	var plan []Kill
	var cur int64 // the checkpoint the next run resumes from
	// After-step kills ("") alternate with each stage of a save.
	for _, stage := range []string{"", "model", "", "state", "", "renamed", ""} {
		if stage == "" {
			var cands []int64
			for k := cur + 1; k < min(cur+2*every, total); k++ {
				if k%every != 0 {
					cands = append(cands, k)
				}
			}
			if len(cands) == 0 {
				break
			}
			k := cands[rnd.IntN(len(cands))]
			cur = k / every * every
			plan = append(plan, Kill{Rank: rnd.IntN(ranks), Env: crashtest.AfterStep + "=" + strconv.FormatInt(k, 10), Latest: cur})
			continue
		}
		s := cur + every*(1+rnd.Int64N(2))
		if s > total {
			s = cur + every
		}
		if s > total {
			break
		}
		k := Kill{Rank: 0, Env: fmt.Sprintf("%s=%d:%s", crashtest.InSave, s, stage), Latest: s - every, Stage: stage, Step: s}
		if stage == "model" {
			k.Rank = rnd.IntN(writers)
		}
		if stage == "renamed" {
			k.Latest = s
		}
		cur = k.Latest
		plan = append(plan, k)
	}
	return plan
}

// Grid is the layout of a fault test's group: TP tensor-parallel ranks
// times DP data-parallel replicas, one process each.
type Grid struct {
	TP, DP int
	// Seed is the seed of the test's kill plans (see Seed), the same for
	// every layout: PlanKills draws each group size's plan from a stream
	// of its own.
	Seed uint64
}

// N is the number of rank processes.
func (g Grid) N() int { return g.TP * g.DP }

// Grids runs test as a subtest for each layout the trainers' fault tests
// cover: TP=2 alone (2 processes: tensor-parallel collectives and sharded
// saves) and TP=2 x DP=2 (4: data-parallel reductions on top, and ranks
// that write no shard), with the seed Seed draws (getenv as there). It
// skips under -short: every layout spawns groups of processes again and
// again.
func Grids(t *testing.T, getenv func(string) string, test func(t *testing.T, g Grid)) {
	t.Helper()
	if testing.Short() {
		t.Skip("spawns subprocesses")
	}
	seed := Seed(t, getenv)
	for _, g := range []Grid{{TP: 2, DP: 1, Seed: seed}, {TP: 2, DP: 2, Seed: seed}} {
		t.Run(fmt.Sprintf("tp%dxdp%d", g.TP, g.DP), func(t *testing.T) { test(t, g) })
	}
}

// NoKill is the environment of a group run without a kill point.
func NoKill(int) []string { return nil }

// Uninterrupted runs cfg to the end on a group of n rank processes
// (RankTest) with no kill: the reference the killed runs must match.
func Uninterrupted(t *testing.T, cfg any, n int) {
	t.Helper()
	crashtest.RunGroup(t, RankTest, cfg, n, NoKill)
}

// minPlan is the shortest plan that reaches every save stage: the three
// save kills and the after-step kills between them.
const minPlan = 6

// Resume runs plan on a group of n rank processes (RankTest) training
// run, which resumes and writes to out, with tp tensor-parallel ranks:
// each kill's run is killed as the kill's rank reaches its point, and out
// is checked (CheckAfterKill) before the next run resumes from it; a last
// run, never killed, trains to the end.
func Resume(t *testing.T, run any, out string, n, tp int, plan []Kill) {
	t.Helper()
	if len(plan) < minPlan {
		t.Fatalf("kill plan %+v: too short to reach every save stage", plan)
	}
	for _, k := range plan {
		t.Logf("kill all %d ranks when rank %d reaches %s", n, k.Rank, k.Env)
		crashtest.RunGroup(t, RankTest, run, n, func(r int) []string {
			if r == k.Rank {
				return []string{k.Env}
			}
			return nil
		})
		CheckAfterKill(t, out, k, tp)
	}
	crashtest.RunGroup(t, RankTest, run, n, NoKill)
}
