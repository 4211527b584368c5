package suite

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"

	"purpcode/generate"
	"purpcode/model/qwen2"
	"purpcode/tokenizer"
)

// Sampling are the decoding settings of a run; they are part of the cache
// key.
type Sampling struct {
	MaxTokens   int     `json:"max_tokens"`
	Temperature float64 `json:"temperature"`
	TopP        float64 `json:"top_p"`
	Seed        uint64  `json:"seed"`
}

// Request is one prompt to answer.
type Request struct {
	Messages []Message
	Sampling Sampling
}

// Generator answers prompts: a model in process or an endpoint. Generate
// calls done once per request (from any goroutine, one call at a time),
// with the answer text or the error for that request; it returns early
// only when ctx ends or the generator cannot run at all.
type Generator interface {
	// Fingerprint identifies the model for the cache: equal fingerprints
	// give equal answers to equal requests.
	Fingerprint() string
	Generate(ctx context.Context, reqs []Request, done func(i int, text string, err error)) error
}

// Engine is a model in process on the rollout engine.
type Engine struct {
	eng         *generate.Engine
	tok         *tokenizer.Tokenizer
	maxPos      int
	fingerprint string
}

// NewEngine wraps a loaded model; dir is its directory (fingerprinted).
func NewEngine(m *qwen2.Model, tok *tokenizer.Tokenizer, eos []int, dir string, maxBatch int) (*Engine, error) {
	fp, err := DirFingerprint(dir)
	if err != nil {
		return nil, err
	}
	eng, err := generate.New(m, generate.Options{MaxBatch: maxBatch, EOS: eos,
		Decode: func(ids []int) string { return tok.Decode(ids, true) }})
	if err != nil {
		return nil, fmt.Errorf("engine: %w", err)
	}
	return &Engine{eng: eng, tok: tok, maxPos: m.Cfg.MaxPositions, fingerprint: fp}, nil
}

// Close releases the engine.
func (e *Engine) Close() { e.eng.Close() }

// Fingerprint implements Generator.
func (e *Engine) Fingerprint() string { return e.fingerprint }

// Generate renders each conversation with the model's chat template (the
// generation prompt on, no prefix: what an OpenAI-compatible server does),
// and decodes all of them in one continuous batch. A prompt that does not
// fit the context is reported alone; the rest still run.
func (e *Engine) Generate(ctx context.Context, reqs []Request, done func(int, string, error)) error {
	var batch []generate.Request
	var index []int
	for i, r := range reqs {
		msgs := make([]tokenizer.Message, len(r.Messages))
		for j, m := range r.Messages {
			msgs[j] = tokenizer.Message{Role: m.Role, Content: m.Content}
		}
		ids, _, err := generate.BuildPrompt(e.tok, generate.PromptSpec{Messages: msgs})
		if err != nil {
			done(i, "", fmt.Errorf("build prompt: %w", err))
			continue
		}
		if len(ids) >= e.maxPos {
			done(i, "", fmt.Errorf("prompt of %d tokens does not fit the context of %d", len(ids), e.maxPos))
			continue
		}
		p := generate.SamplingParams{Temperature: r.Sampling.Temperature, TopP: r.Sampling.TopP, MaxNewTokens: r.Sampling.MaxTokens}
		// The id "serve" gives the random stream a seeded request to
		// `purpcode serve` gets, so sampled runs match too.
		batch = append(batch, generate.Request{ID: "serve", Prompt: ids, Params: p, Seed: r.Sampling.Seed})
		index = append(index, i)
	}
	if len(batch) == 0 {
		return nil
	}
	return e.eng.Run(ctx, batch, func(k int, s []generate.Sample) {
		done(index[k], e.tok.Decode(s[0].Tokens, true), nil)
	})
}

// DirFingerprint hashes what determines a model directory's answers: the
// JSON configs and tokenizer files in full, and each weight file's name,
// size and first and last MiB (hashing many GB at every eval would cost
// minutes; a changed checkpoint changes its size or its ends).
func DirFingerprint(dir string) (string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", fmt.Errorf("fingerprint %s: %w", dir, err)
	}
	var names []string
	for _, e := range entries {
		if !e.IsDir() {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	h := sha256.New()
	for _, n := range names {
		ext := filepath.Ext(n)
		if ext != ".json" && ext != ".safetensors" && ext != ".jinja" && ext != ".model" {
			continue
		}
		f, err := os.Open(filepath.Join(dir, n))
		if err != nil {
			return "", fmt.Errorf("fingerprint: %w", err)
		}
		st, err := f.Stat()
		if err == nil {
			fmt.Fprintf(h, "%s\x00%d\x00", n, st.Size())
			if ext != ".safetensors" || st.Size() <= 2<<20 {
				_, err = io.Copy(h, f)
			} else {
				_, err = io.Copy(h, io.NewSectionReader(f, 0, 1<<20))
				if err == nil {
					_, err = io.Copy(h, io.NewSectionReader(f, st.Size()-1<<20, 1<<20))
				}
			}
		}
		f.Close()
		if err != nil {
			return "", fmt.Errorf("fingerprint %s: %w", n, err)
		}
	}
	return "model:" + hex.EncodeToString(h.Sum(nil))[:16], nil
}
