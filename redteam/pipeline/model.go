package pipeline

import (
	"context"
	"fmt"

	"purpcode/generate"
	"purpcode/redteam"
	"purpcode/tokenizer"
)

// ModelGenerator is a Generator over a model loaded in this process.
// Complete may be called from many goroutines: one goroutine owns the
// engine and decodes whatever calls are waiting as one batch, so the
// pipeline's concurrent workers share the engine's continuous batching.
// Each call's sampling seed goes into its request, and every request has
// the same ID, so a reply depends on its seed and not on its batch slot.
type ModelGenerator struct {
	name  string
	tok   *tokenizer.Tokenizer
	calls chan modelCall
	done  chan struct{}
	// stop cancels the batch being decoded; stopped closes when the
	// batching goroutine has returned, so the engine is free.
	stop    context.CancelFunc
	stopped chan struct{}
}

type modelCall struct {
	ctx   context.Context
	req   generate.Request
	reply chan modelReply
}

type modelReply struct {
	text string
	err  error
}

// NewModelGenerator starts the batching goroutine over eng, which it owns
// until Close; name identifies the model in the manifest.
func NewModelGenerator(eng *generate.Engine, tok *tokenizer.Tokenizer, name string) *ModelGenerator {
	ctx, stop := context.WithCancel(context.Background())
	g := &ModelGenerator{name: name, tok: tok, calls: make(chan modelCall), done: make(chan struct{}), stop: stop, stopped: make(chan struct{})}
	go func() {
		defer close(g.stopped)
		g.serve(ctx, eng, max(eng.Options().MaxBatch, 1))
	}()
	return g
}

// Name implements Generator.
func (g *ModelGenerator) Name() string { return "model:" + g.name }

// Close stops the batching goroutine, abandoning the batch in flight, and
// returns once the engine is no longer in use; calls after Close fail.
func (g *ModelGenerator) Close() {
	g.stop()
	close(g.done)
	<-g.stopped
}

// Complete implements Generator.
func (g *ModelGenerator) Complete(ctx context.Context, msgs []redteam.Message, s Sampling) (string, error) {
	tm := make([]tokenizer.Message, len(msgs))
	for i, m := range msgs {
		tm[i] = tokenizer.Message{Role: m.Role, Content: m.Content}
	}
	ids, _, err := generate.BuildPrompt(g.tok, generate.PromptSpec{Messages: tm})
	if err != nil {
		return "", fmt.Errorf("model generator: %w", err)
	}
	c := modelCall{ctx: ctx, reply: make(chan modelReply, 1), req: generate.Request{ID: "redteam", Prompt: ids, N: 1, Seed: s.Seed,
		Params: generate.SamplingParams{Temperature: s.Temperature, MaxNewTokens: s.MaxTokens}}}
	select {
	case g.calls <- c:
	case <-g.done:
		return "", fmt.Errorf("model generator: closed")
	case <-ctx.Done():
		return "", ctx.Err()
	}
	select {
	case r := <-c.reply:
		return r.text, r.err
	case <-g.done:
		return "", fmt.Errorf("model generator: closed")
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// serve decodes batches: it waits for one call, takes every other call
// already waiting (up to limit), and decodes them together.
func (g *ModelGenerator) serve(ctx context.Context, eng *generate.Engine, limit int) {
	for {
		var batch []modelCall
		select {
		case c := <-g.calls:
			batch = append(batch, c)
		case <-g.done:
			return
		}
	more:
		for len(batch) < limit {
			select {
			case c := <-g.calls:
				batch = append(batch, c)
			default:
				break more
			}
		}
		var live []modelCall
		for _, c := range batch {
			if c.ctx.Err() == nil {
				live = append(live, c)
			}
		}
		reqs := make([]generate.Request, len(live))
		for i, c := range live {
			reqs[i] = c.req
		}
		out, err := eng.Generate(ctx, reqs)
		if ctx.Err() != nil {
			return // Close: the callers have gone
		}
		if err != nil {
			// One invalid request (a prompt too long for the model) fails
			// the whole batch; alone, each call gets its own outcome, which
			// then does not depend on what it was batched with.
			for _, c := range live {
				c.reply <- g.one(ctx, eng, c.req)
			}
			continue
		}
		for i, c := range live {
			c.reply <- modelReply{text: g.tok.Decode(out[i][0].Tokens, true)}
		}
	}
}

func (g *ModelGenerator) one(ctx context.Context, eng *generate.Engine, req generate.Request) modelReply {
	out, err := eng.Generate(ctx, []generate.Request{req})
	if err != nil {
		return modelReply{err: fmt.Errorf("model generator: %w", err)}
	}
	return modelReply{text: g.tok.Decode(out[0][0].Tokens, true)}
}
