package generate

import (
	"context"
	"runtime"
	"sync"
	"time"
)

// ScoreTiming splits the wall time of RunScored.
type ScoreTiming struct {
	// Generate is the time in Run: decoding, with scoring overlapped.
	Generate float64
	// ScoreWait is the scoring left after the last sample finished.
	ScoreWait float64
}

// RunScored is Run with the scoring of samples overlapped with decoding:
// when all samples of a request are complete, onDone (when not nil) sees
// them on Run's goroutine, then score is called once per sample on a pool
// of at most workers goroutines (0: GOMAXPROCS) while later requests keep
// decoding. It returns once every score call has returned, with Run's error
// or else the first error of score; a score error cancels the rest of the
// run (the context given to score is cancelled too). score may be called
// concurrently and must only touch state of its own sample.
func (e *Engine) RunScored(ctx context.Context, reqs []Request, workers int,
	onDone func(reqIndex int, samples []Sample),
	score func(ctx context.Context, reqIndex int, s Sample) error) (ScoreTiming, error) {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sem := make(chan struct{}, workers)
	var wg sync.WaitGroup
	var once sync.Once
	var scoreErr error
	var timing ScoreTiming
	t0 := time.Now()
	err := e.Run(ctx, reqs, func(i int, samples []Sample) {
		if onDone != nil {
			onDone(i, samples)
		}
		for _, s := range samples {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sem <- struct{}{}
				defer func() { <-sem }()
				if err := score(ctx, i, s); err != nil {
					once.Do(func() { scoreErr = err; cancel() })
				}
			}()
		}
	})
	timing.Generate = time.Since(t0).Seconds()
	t1 := time.Now()
	wg.Wait()
	timing.ScoreWait = time.Since(t1).Seconds()
	if scoreErr != nil {
		// Run's own error is then only the cancellation that scoreErr caused.
		return timing, scoreErr
	}
	return timing, err
}
