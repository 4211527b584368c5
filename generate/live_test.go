package generate

import (
	"context"
	"errors"
	"sync"
	"testing"
)

// serveCollect submits reqs to a Serve loop one by one, each only after
// the previous one has drawn a token, so they join a batch already
// running, and rebuilds every request's samples from its updates.
func serveCollect(t *testing.T, e *Engine, reqs []Request) [][]Sample {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	in := make(chan *LiveRequest)
	loopErr := make(chan error, 1)
	go func() { loopErr <- e.Serve(ctx, in) }()
	out := make([][]Sample, len(reqs))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range reqs {
		out[i] = make([]Sample, max(reqs[i].N, 1))
		first := make(chan struct{})
		var once sync.Once
		wg.Add(1)
		in <- &LiveRequest{
			Request: reqs[i],
			Progress: func(u Update) {
				mu.Lock()
				s := &out[i][u.Index]
				s.RequestID, s.Index = reqs[i].ID, u.Index
				s.Tokens = append(s.Tokens, u.Tokens...)
				s.LogProbs = append(s.LogProbs, u.LogProbs...)
				s.RawLogProbs = append(s.RawLogProbs, u.RawLogProbs...)
				if u.FinishReason != "" {
					s.FinishReason = u.FinishReason
				}
				mu.Unlock()
				once.Do(func() { close(first) })
			},
			Done: func(err error) {
				if err != nil {
					t.Errorf("request %d: %v", i, err)
				}
				once.Do(func() { close(first) })
				wg.Done()
			},
		}
		<-first
	}
	wg.Wait()
	cancel()
	if err := <-loopErr; !errors.Is(err, context.Canceled) {
		t.Fatalf("Serve returned %v, want context.Canceled", err)
	}
	return out
}

func TestServeMatchesRun(t *testing.T) {
	m := testModel(t)
	reqs := mixedRequests(m.Cfg.Vocab)
	want, err := newEngine(t, m, Options{MaxBatch: 8}).Generate(context.Background(), reqs)
	if err != nil {
		t.Fatal(err)
	}
	// A small batch and pool force requests to wait and join mid-run.
	e := newEngine(t, m, Options{MaxBatch: 3, KVBlocks: 12, BlockSize: 8})
	got := serveCollect(t, e, reqs)
	for i := range reqs {
		for j := range want[i] {
			sameSamples(t, reqs[i].ID, []Sample{got[i][j]}, []Sample{want[i][j]})
		}
	}
	if e.FreeKVBlocks() != e.KVBlocks() {
		t.Errorf("after serving, %d of %d KV blocks free", e.FreeKVBlocks(), e.KVBlocks())
	}
}

// TestServeCancelFreesSequence cancels a request mid-decode: its blocks
// come back and the loop keeps serving others.
func TestServeCancelFreesSequence(t *testing.T) {
	m := testModel(t)
	e := newEngine(t, m, Options{MaxBatch: 4})
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	in := make(chan *LiveRequest)
	loopErr := make(chan error, 1)
	go func() { loopErr <- e.Serve(ctx, in) }()

	reqCtx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	got := 0
	drew := make(chan struct{})
	done := make(chan error, 1)
	in <- &LiveRequest{
		Request: Request{ID: "long", Prompt: []int{1, 2, 3}, N: 2, Params: SamplingParams{Temperature: 1, MaxNewTokens: 80}},
		Ctx:     reqCtx,
		Progress: func(u Update) {
			mu.Lock()
			defer mu.Unlock()
			got += len(u.Tokens)
			if got == 2 {
				cancel()
				close(drew)
			}
		},
		Done: func(err error) { done <- err },
	}
	<-drew
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled request: Done(%v), want context.Canceled", err)
	}
	mu.Lock()
	if got >= 2*80 {
		t.Errorf("cancelled request drew all %d tokens", got)
	}
	mu.Unlock()
	// The next request runs to completion on the same loop: by then the
	// loop has passed the cancellation and freed the blocks.
	ok := make(chan error, 1)
	in <- &LiveRequest{
		Request: Request{ID: "next", Prompt: []int{4, 5}, Params: SamplingParams{Greedy: true, MaxNewTokens: 3}},
		Done:    func(err error) { ok <- err },
	}
	if err := <-ok; err != nil {
		t.Fatal(err)
	}
	if e.FreeKVBlocks() != e.KVBlocks() {
		t.Errorf("after cancel, %d of %d KV blocks free", e.FreeKVBlocks(), e.KVBlocks())
	}
	// A bad request is refused through Done without stopping the loop.
	bad := make(chan error, 1)
	in <- &LiveRequest{Request: Request{ID: "bad"}, Done: func(err error) { bad <- err }}
	if err := <-bad; err == nil {
		t.Error("empty prompt accepted")
	}
	stop()
	if err := <-loopErr; !errors.Is(err, context.Canceled) {
		t.Fatalf("Serve returned %v", err)
	}
}
