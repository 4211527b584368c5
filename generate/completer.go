package generate

import (
	"context"
	"fmt"
	"sync"

	"purpcode/tokenizer"
)

// Completer turns the engine into a chat-completion function that many
// goroutines may call at once (a judge model scoring rollouts in parallel):
// calls that arrive while a batch is decoding are queued and decoded
// together in the next batch, so concurrent callers share the engine's
// continuous batching instead of taking turns one prompt at a time.
type Completer struct {
	q      *completerQueue
	params SamplingParams
}

// completerQueue is the engine and its queue, shared by a Completer and
// the views WithParams makes of it.
type completerQueue struct {
	eng *Engine
	tok *tokenizer.Tokenizer

	mu      sync.Mutex
	queue   []*completion
	running bool
}

type completion struct {
	ids    []int
	params SamplingParams
	done   chan completionResult
}

type completionResult struct {
	text string
	err  error
}

// NewCompleter wraps eng (which it then owns for its Run calls). params
// apply to every completion; greedy decoding is the usual choice for a
// judge.
func NewCompleter(eng *Engine, tok *tokenizer.Tokenizer, params SamplingParams) *Completer {
	return &Completer{q: &completerQueue{eng: eng, tok: tok}, params: params}
}

// WithParams returns a Completer that decodes with params on c's engine,
// batched with c's calls: one model serving as a judge that answers in a
// word and as a writer of long analyses.
func (c *Completer) WithParams(params SamplingParams) *Completer {
	return &Completer{q: c.q, params: params}
}

// Complete renders prompt as a single user turn with the tokenizer's chat
// template and returns the model's answer (special tokens removed).
func (c *Completer) Complete(ctx context.Context, prompt string) (string, error) {
	q := c.q
	ids, _, err := BuildPrompt(q.tok, PromptSpec{Messages: []tokenizer.Message{{Role: "user", Content: prompt}}})
	if err != nil {
		return "", fmt.Errorf("completer: %w", err)
	}
	p := &completion{ids: ids, params: c.params, done: make(chan completionResult, 1)}
	q.mu.Lock()
	q.queue = append(q.queue, p)
	if !q.running {
		q.running = true
		go q.loop()
	}
	q.mu.Unlock()
	select {
	case r := <-p.done:
		return r.text, r.err
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// loop decodes queued prompts batch by batch until the queue is empty.
func (q *completerQueue) loop() {
	for {
		q.mu.Lock()
		batch := q.queue
		q.queue = nil
		if len(batch) == 0 {
			q.running = false
			q.mu.Unlock()
			return
		}
		q.mu.Unlock()
		reqs := make([]Request, len(batch))
		for i, p := range batch {
			reqs[i] = Request{ID: fmt.Sprint(i), Prompt: p.ids, N: 1, Params: p.params}
		}
		out, err := q.eng.Generate(context.Background(), reqs)
		for i, p := range batch {
			if err != nil {
				p.done <- completionResult{err: err}
				continue
			}
			p.done <- completionResult{text: q.tok.Decode(out[i][0].Tokens, true)}
		}
	}
}
