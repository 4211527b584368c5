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
	eng    *Engine
	tok    *tokenizer.Tokenizer
	params SamplingParams

	mu      sync.Mutex
	queue   []*completion
	running bool
}

type completion struct {
	ids  []int
	done chan completionResult
}

type completionResult struct {
	text string
	err  error
}

// NewCompleter wraps eng (which it then owns for its Run calls). params
// apply to every completion; greedy decoding is the usual choice for a
// judge.
func NewCompleter(eng *Engine, tok *tokenizer.Tokenizer, params SamplingParams) *Completer {
	return &Completer{eng: eng, tok: tok, params: params}
}

// Complete renders prompt as a single user turn with the tokenizer's chat
// template and returns the model's answer (special tokens removed).
func (c *Completer) Complete(ctx context.Context, prompt string) (string, error) {
	ids, _, err := BuildPrompt(c.tok, PromptSpec{Messages: []tokenizer.Message{{Role: "user", Content: prompt}}})
	if err != nil {
		return "", fmt.Errorf("completer: %w", err)
	}
	p := &completion{ids: ids, done: make(chan completionResult, 1)}
	c.mu.Lock()
	c.queue = append(c.queue, p)
	if !c.running {
		c.running = true
		go c.loop()
	}
	c.mu.Unlock()
	select {
	case r := <-p.done:
		return r.text, r.err
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// loop decodes queued prompts batch by batch until the queue is empty.
func (c *Completer) loop() {
	for {
		c.mu.Lock()
		batch := c.queue
		c.queue = nil
		if len(batch) == 0 {
			c.running = false
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		reqs := make([]Request, len(batch))
		for i, p := range batch {
			reqs[i] = Request{ID: fmt.Sprint(i), Prompt: p.ids, N: 1, Params: c.params}
		}
		out, err := c.eng.Generate(context.Background(), reqs)
		for i, p := range batch {
			if err != nil {
				p.done <- completionResult{err: err}
				continue
			}
			p.done <- completionResult{text: c.tok.Decode(out[i][0].Tokens, true)}
		}
	}
}
