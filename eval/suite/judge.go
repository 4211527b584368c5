package suite

import (
	"context"
	"errors"
)

// EndpointJudge asks a judge model behind an OpenAI-compatible endpoint,
// greedily, one user turn per judging prompt.
type EndpointJudge struct {
	Endpoint *Endpoint
	// MaxTokens bounds the judge's reply (default 64: a label).
	MaxTokens int
}

// Complete implements Judge.
func (j *EndpointJudge) Complete(ctx context.Context, prompt string) (string, error) {
	j.Endpoint.defaults()
	n := j.MaxTokens
	if n <= 0 {
		n = 64
	}
	var text string
	var gerr error
	err := j.Endpoint.Generate(ctx, []Request{{
		Messages: []Message{{Role: "user", Content: prompt}},
		Sampling: Sampling{MaxTokens: n},
	}}, func(_ int, t string, e error) { text, gerr = t, e })
	return text, errors.Join(err, gerr)
}
