package serve

import (
	"context"
	"net/http"
	"testing"

	"purpcode/generate"
	"purpcode/tokenizer"
)

type altJSON struct {
	Token   string  `json:"token"`
	Logprob float32 `json:"logprob"`
	Bytes   []int   `json:"bytes"`
}

type topChatResponse struct {
	Choices []struct {
		Message struct {
			Content string `json:"content"`
		} `json:"message"`
		Logprobs struct {
			Content []struct {
				altJSON
				TopLogprobs []altJSON `json:"top_logprobs"`
			} `json:"content"`
		} `json:"logprobs"`
	} `json:"choices"`
}

type topChunk struct {
	Choices []struct {
		Logprobs *struct {
			Content []struct {
				altJSON
				TopLogprobs []altJSON `json:"top_logprobs"`
			} `json:"content"`
		} `json:"logprobs"`
	} `json:"choices"`
}

// TestChatTopLogprobs: the alternatives the server lists are the engine's
// (itself checked against a brute-force softmax in package generate) for
// the same greedy request, in order, with the greedy token first; a stream
// lists the same ones.
func TestChatTopLogprobs(t *testing.T) {
	f := startServer(t, nil)
	const k, maxNew = 3, 24
	prompt := "How do I hash a password?"
	code, body := f.post(t, "/v1/chat/completions", chatBody(prompt, map[string]any{"logprobs": true, "top_logprobs": k, "max_tokens": maxNew}))
	if code != http.StatusOK {
		t.Fatalf("status %d: %s", code, body)
	}
	got := decode[topChatResponse](t, body).Choices[0].Logprobs.Content

	ids, _, err := generate.BuildPrompt(f.tok, generate.PromptSpec{Messages: []tokenizer.Message{{Role: "user", Content: prompt}}})
	if err != nil {
		t.Fatal(err)
	}
	e, err := generate.New(f.m, generate.Options{MaxBatch: 1, EOS: f.eos})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	out, err := e.Generate(context.Background(), []generate.Request{{ID: "x", Prompt: ids,
		Params: generate.SamplingParams{Greedy: true, MaxNewTokens: maxNew, TopLogProbs: k}}})
	if err != nil {
		t.Fatal(err)
	}
	s := out[0][0]
	var want [][]generate.TokenLogProb
	for i, id := range s.Tokens {
		if !f.tok.IsSpecial(id) {
			want = append(want, s.TopLogProbs[i])
		}
	}
	if len(got) != len(want) || len(got) == 0 {
		t.Fatalf("%d tokens with alternatives, engine has %d", len(got), len(want))
	}
	for i, tl := range got {
		if len(tl.TopLogprobs) != k {
			t.Fatalf("token %d: %d alternatives, want %d", i, len(tl.TopLogprobs), k)
		}
		for j, alt := range tl.TopLogprobs {
			w := want[i][j]
			if alt.Token != f.tok.Decode([]int{w.ID}, false) || alt.Logprob != w.LogProb || len(alt.Bytes) != len(alt.Token) {
				t.Fatalf("token %d alternative %d: served %+v, engine id %d %v", i, j, alt, w.ID, w.LogProb)
			}
		}
		if tl.TopLogprobs[0].Token != tl.Token || tl.TopLogprobs[0].Logprob != tl.Logprob {
			t.Fatalf("token %d: greedy token %q (%v) is not the first alternative %+v", i, tl.Token, tl.Logprob, tl.TopLogprobs[0])
		}
	}

	// Streamed, the same alternatives arrive spread over the chunks.
	var streamed []altJSON
	events := f.stream(t, "/v1/chat/completions", chatBody(prompt, map[string]any{"logprobs": true, "top_logprobs": k, "max_tokens": maxNew}))
	for _, ev := range events[:len(events)-1] {
		for _, ch := range decode[topChunk](t, []byte(ev)).Choices {
			if ch.Logprobs == nil {
				continue
			}
			for _, tl := range ch.Logprobs.Content {
				streamed = append(streamed, tl.TopLogprobs...)
			}
		}
	}
	if len(streamed) != k*len(got) {
		t.Fatalf("stream listed %d alternatives, non-stream %d", len(streamed), k*len(got))
	}
	for i, alt := range streamed {
		if w := got[i/k].TopLogprobs[i%k]; alt.Token != w.Token || alt.Logprob != w.Logprob {
			t.Fatalf("streamed alternative %d %+v, non-stream %+v", i, alt, w)
		}
	}

	// Without top_logprobs the lists are empty, as OpenAI sends them.
	code, body = f.post(t, "/v1/chat/completions", chatBody(prompt, map[string]any{"logprobs": true, "max_tokens": 4}))
	if code != http.StatusOK {
		t.Fatalf("status %d: %s", code, body)
	}
	for i, tl := range decode[topChatResponse](t, body).Choices[0].Logprobs.Content {
		if tl.TopLogprobs == nil || len(tl.TopLogprobs) != 0 {
			t.Fatalf("token %d: top_logprobs %v without being asked for", i, tl.TopLogprobs)
		}
	}
}

// TestCompletionsTopLogprobs: "logprobs": N lists, per token, the N most
// likely texts and the sampled token (up to N+1 entries), none more likely
// than the most likely alternative.
func TestCompletionsTopLogprobs(t *testing.T) {
	f := startServer(t, nil)
	for _, n := range []int{0, 2} {
		code, b := f.post(t, "/v1/completions", map[string]any{"model": modelName, "prompt": "def read_file(path):",
			"max_tokens": 12, "temperature": 1, "seed": 3, "logprobs": n})
		if code != http.StatusOK {
			t.Fatalf("logprobs %d: status %d: %s", n, code, b)
		}
		r := decode[struct {
			Choices []struct {
				Logprobs struct {
					Tokens        []string             `json:"tokens"`
					TokenLogprobs []float32            `json:"token_logprobs"`
					TopLogprobs   []map[string]float32 `json:"top_logprobs"`
				} `json:"logprobs"`
			} `json:"choices"`
		}](t, b)
		lp := r.Choices[0].Logprobs
		if len(lp.TopLogprobs) != len(lp.Tokens) || len(lp.Tokens) == 0 {
			t.Fatalf("logprobs %d: %d top_logprobs for %d tokens", n, len(lp.TopLogprobs), len(lp.Tokens))
		}
		for i, m := range lp.TopLogprobs {
			if v, ok := m[lp.Tokens[i]]; !ok || v != lp.TokenLogprobs[i] {
				t.Fatalf("logprobs %d token %d: sampled %q (%v) missing from %v", n, i, lp.Tokens[i], lp.TokenLogprobs[i], m)
			}
			if len(m) < max(n, 1) || len(m) > n+1 {
				t.Fatalf("logprobs %d token %d: %d entries %v", n, i, len(m), m)
			}
		}
	}
}
