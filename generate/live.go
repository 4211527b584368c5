package generate

import (
	"context"
	"errors"
)

// LiveRequest is a request submitted to a running Serve loop: it joins the
// batch as soon as there is room, reports its tokens as they are drawn,
// and leaves the batch (its KV blocks freed) as soon as Ctx is cancelled.
type LiveRequest struct {
	Request
	// Ctx cancels this request only. Nil means never.
	Ctx context.Context
	// Progress is called on the engine goroutine after every step in which
	// a sample of this request drew tokens or finished. It must return
	// quickly: every other request waits for it.
	Progress func(Update)
	// Done is called on the engine goroutine exactly once, after the last
	// Progress call: err is nil when every sample finished, the request's
	// validation error, Ctx's error, or the loop's error.
	Done func(err error)
}

// Update is the news of one sample since its previous Update. The slices
// are copies the receiver owns.
type Update struct {
	Index        int // sample index within the request
	Tokens       []int
	LogProbs     []float32        // as Sample.LogProbs
	RawLogProbs  []float32        // as Sample.RawLogProbs
	TopLogProbs  [][]TokenLogProb // as Sample.TopLogProbs (rows shared, never modified)
	FinishReason string           // set on the sample's last update
}

// live is the loop's record of one admitted or waiting request.
type live struct {
	req  *LiveRequest
	g    *group
	sent []int  // tokens already reported, per sample
	fin  []bool // finish already reported, per sample
	done bool   // all samples finished (set by the run's onDone)
}

// Serve runs the engine as a server: requests arrive on in at any time and
// share the continuous batch with those already running, so a request
// never waits for an unrelated one to finish. It returns when ctx is
// cancelled (every unfinished request then gets Done(ctx.Err())) or on a
// model error (every unfinished request gets it). Serve owns the engine
// while it runs: no Run or Generate may overlap it.
//
// Scheduling and sampling are Run's, so a request's samples are the ones
// Run would return for it alone, whatever else shares the batch.
//
// Serve refuses an engine with Options.Agree: requests arriving on each
// rank's channel at their own times would give the ranks different
// batches, and lockstep needs the same ones.
func (e *Engine) Serve(ctx context.Context, in <-chan *LiveRequest) error {
	if e.opts.Agree != nil {
		return errors.New("generate: Serve cannot run in lockstep with other engines (Options.Agree): requests arrive on each rank at different times; use Run")
	}
	r := &run{e: e}
	byIndex := map[int]*live{}
	var order []*live // arrival order, for deterministic reporting
	r.onDone = func(i int, _ []Sample) { byIndex[i].done = true }
	next := 0
	add := func(lr *LiveRequest) {
		i := next
		next++
		g, err := e.newGroup(i, &lr.Request)
		if err != nil {
			lr.Done(err)
			return
		}
		l := &live{req: lr, g: g, sent: make([]int, g.n), fin: make([]bool, g.n)}
		byIndex[i] = l
		order = append(order, l)
		r.groups = append(r.groups, g)
	}
	remove := func(l *live, err error) {
		if !l.done {
			r.drop(l.g)
		}
		delete(byIndex, l.g.reqIndex)
		l.req.Done(err)
	}
	fail := func(err error) error {
		for _, l := range order {
			remove(l, err)
		}
		r.release()
		return err
	}
	for {
		if len(order) == 0 {
			select {
			case lr := <-in:
				add(lr)
			case <-ctx.Done():
				return fail(ctx.Err())
			}
		}
	drain:
		for {
			select {
			case lr := <-in:
				add(lr)
			default:
				break drain
			}
		}
		if err := ctx.Err(); err != nil {
			return fail(err)
		}
		keep := order[:0]
		for _, l := range order {
			if c := l.req.Ctx; c != nil && c.Err() != nil {
				remove(l, c.Err())
				continue
			}
			keep = append(keep, l)
		}
		clear(order[len(keep):])
		order = keep
		if len(order) == 0 {
			continue
		}
		forked := r.fork()
		r.admit()
		// Admitted groups are tracked in r.active from here on; keep only
		// the waiting ones so a long-running server does not accumulate.
		r.groups = append(r.groups[:0], r.groups[r.pending:]...)
		r.pending = 0
		_, ran, err := r.step()
		if err != nil {
			return fail(err)
		}
		keep = order[:0]
		for _, l := range order {
			l.report()
			if l.done {
				remove(l, nil)
				continue
			}
			keep = append(keep, l)
		}
		clear(order[len(keep):])
		order = keep
		if !ran && forked == 0 && len(order) > 0 {
			return fail(errors.New("generate: serve loop stalled with requests left (internal error)"))
		}
	}
}

// report sends each sample's new tokens and finish reason.
func (l *live) report() {
	if l.req.Progress == nil {
		return
	}
	for i := range l.g.samples {
		s := &l.g.samples[i]
		from := l.sent[i]
		finished := s.FinishReason != "" && !l.fin[i]
		if from == len(s.Tokens) && !finished {
			continue
		}
		u := Update{
			Index:       i,
			Tokens:      append([]int(nil), s.Tokens[from:]...),
			LogProbs:    append([]float32(nil), s.LogProbs[from:]...),
			RawLogProbs: append([]float32(nil), s.RawLogProbs[from:]...),
		}
		if len(s.TopLogProbs) > from {
			u.TopLogProbs = append([][]TokenLogProb(nil), s.TopLogProbs[from:]...)
		}
		if finished {
			u.FinishReason = s.FinishReason
			l.fin[i] = true
		}
		l.sent[i] = len(s.Tokens)
		l.req.Progress(u)
	}
}

// drop removes a request from the run wherever it is (waiting, being
// prefilled, or decoding) and frees its KV blocks at once.
func (r *run) drop(g *group) {
	keep := r.running[:0]
	for _, s := range r.running {
		if s.g == g {
			r.e.kv.Free(s.cache)
			continue
		}
		keep = append(keep, s)
	}
	clear(r.running[len(keep):])
	r.running = keep
	if g.root != nil {
		r.e.kv.Free(g.root)
		g.root, g.logits = nil, nil
	}
	active := r.active[:0]
	for _, a := range r.active {
		if a != g {
			active = append(active, a)
		}
	}
	clear(r.active[len(active):])
	r.active = active
	for i := r.pending; i < len(r.groups); i++ {
		if r.groups[i] == g {
			r.groups = append(r.groups[:i], r.groups[i+1:]...)
			break
		}
	}
}

// FreeKVBlocks is the number of KV blocks not held by any sequence; with
// no request in flight it equals the pool size (a test of release).
func (e *Engine) FreeKVBlocks() int { return e.kv.FreeBlocks() }

// KVBlocks is the pool size in blocks.
func (e *Engine) KVBlocks() int { return e.kv.NumBlocks() }
