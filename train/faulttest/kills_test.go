package faulttest

import (
	"strconv"
	"strings"
	"testing"

	"purpcode/internal/crashtest"
)

// TestPlanKillsReachEveryStage draws many plans for the trainers' fault
// test runs (SFT: 18 steps saving every 3; GRPO: 8 saving every 2) and
// checks what the tests rely on: whatever the seed, a plan reaches every
// save stage (Resume would refuse it otherwise: a flaky test), each kill
// lies past the checkpoint the previous one left (a resumed run reaches
// it), after-step kills never fall on a save step, shard kills hit a
// writer rank and save-stage kills otherwise the leader, and Latest is
// the checkpoint the kill leaves.
func TestPlanKillsReachEveryStage(t *testing.T) {
	for _, c := range []struct {
		total, every   int64
		ranks, writers int
	}{{18, 3, 2, 2}, {18, 3, 4, 2}, {8, 2, 2, 2}, {8, 2, 4, 2}} {
		for seed := range uint64(500) {
			plan := PlanKills(seed, c.total, c.every, c.ranks, c.writers)
			if len(plan) < minPlan {
				t.Fatalf("%+v seed %d: plan %+v misses a save stage", c, seed, plan)
			}
			var cur int64
			var saves []string
			for _, k := range plan {
				if k.Rank < 0 || k.Rank >= c.ranks {
					t.Fatalf("%+v seed %d: kill %+v on no rank", c, seed, k)
				}
				if k.Stage == "" {
					s, ok := strings.CutPrefix(k.Env, crashtest.AfterStep+"=")
					step, err := strconv.ParseInt(s, 10, 64)
					if !ok || err != nil {
						t.Fatalf("%+v seed %d: after-step kill %+v", c, seed, k)
					}
					if step <= cur || step >= c.total || step%c.every == 0 || k.Latest != step/c.every*c.every {
						t.Fatalf("%+v seed %d: after-step kill %+v after checkpoint %d", c, seed, k, cur)
					}
				} else {
					saves = append(saves, k.Stage)
					if k.Step <= cur || k.Step > c.total || k.Step%c.every != 0 {
						t.Fatalf("%+v seed %d: save kill %+v after checkpoint %d", c, seed, k, cur)
					}
					want := k.Step - c.every
					if k.Stage == "renamed" {
						want = k.Step
					}
					if k.Latest != want || k.Stage == "model" && k.Rank >= c.writers || k.Stage != "model" && k.Rank != 0 {
						t.Fatalf("%+v seed %d: save kill %+v", c, seed, k)
					}
				}
				cur = k.Latest
			}
			if strings.Join(saves, ",") != "model,state,renamed" {
				t.Fatalf("%+v seed %d: save stages %v", c, seed, saves)
			}
		}
	}
}
