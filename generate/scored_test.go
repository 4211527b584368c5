package generate

import (
	"context"
	"errors"
	"sync"
	"testing"
)

// TestRunScored: every sample is scored exactly once, after its request's
// onDone, with the same tokens Generate draws; a score error ends the run
// and is returned.
func TestRunScored(t *testing.T) {
	m := testModel(t)
	reqs := mixedRequests(m.Cfg.Vocab)
	want, err := newEngine(t, m, Options{MaxBatch: 4}).Generate(context.Background(), reqs)
	if err != nil {
		t.Fatal(err)
	}
	e := newEngine(t, m, Options{MaxBatch: 4})
	var mu sync.Mutex
	done := map[int]bool{}
	got := make([][]Sample, len(reqs))
	for i := range reqs {
		got[i] = make([]Sample, max(reqs[i].N, 1))
	}
	calls := 0
	_, err = e.RunScored(context.Background(), reqs, 2, func(i int, _ []Sample) {
		mu.Lock()
		done[i] = true
		mu.Unlock()
	}, func(_ context.Context, i int, s Sample) error {
		mu.Lock()
		defer mu.Unlock()
		if !done[i] {
			t.Errorf("request %d sample %d scored before its onDone", i, s.Index)
		}
		if got[i][s.Index].Tokens != nil {
			t.Errorf("request %d sample %d scored twice", i, s.Index)
		}
		got[i][s.Index] = s
		calls++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for i := range reqs {
		sameSamples(t, reqs[i].ID, got[i], want[i])
		total += len(want[i])
	}
	if calls != total {
		t.Fatalf("%d score calls for %d samples", calls, total)
	}

	boom := errors.New("boom")
	_, err = e.RunScored(context.Background(), reqs, 1, nil, func(context.Context, int, Sample) error { return boom })
	if !errors.Is(err, boom) {
		t.Fatalf("error %v, want the score error", err)
	}
	// The engine is reusable after an aborted run.
	if _, err := e.Generate(context.Background(), reqs[:1]); err != nil {
		t.Fatalf("engine after a score error: %v", err)
	}
}
