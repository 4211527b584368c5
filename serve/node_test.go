package serve

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestOpenAINodeClient drives the server with the official openai npm
// package (installed by `make testdeps-node` into testdata/node) and
// checks that it parses every response, stream and error, and that its
// answers are the ones Go's net/http client gets.
func TestOpenAINodeClient(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node not on PATH: the openai npm client test does not run")
	}
	if _, err := os.Stat(filepath.Join("testdata", "node", "node_modules", "openai")); err != nil {
		t.Skip("testdata/node/node_modules/openai missing: run `make testdeps-node` to test with the openai npm client")
	}
	f := startServer(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "client.mjs", f.url+"/v1", modelName)
	cmd.Dir = filepath.Join("testdata", "node")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	raw, err := cmd.Output()
	if err != nil {
		t.Fatalf("node client: %v\n%s", err, stderr.String())
	}
	var got struct {
		Models []string `json:"models"`
		Chat   struct {
			Content, Finish, LogprobTokens string
			TopLogprobs                    [][][2]any
			Usage                          struct {
				TotalTokens int `json:"total_tokens"`
			}
		}
		Stream struct {
			Texts  []string
			Finish []string
			Usage  struct {
				CompletionTokens int `json:"completion_tokens"`
			}
		}
		Completions []struct {
			Index        int
			Text, Tokens string
			TopLogprobs  []map[string]float32
		}
		Errors map[string]struct {
			Status int
			Code   string
			Param  string
			Cls    string
		}
		Abort struct {
			Aborted bool
			Seen    int
		}
	}
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatalf("node output: %v: %s", err, raw)
	}
	if len(got.Models) != 1 || got.Models[0] != modelName {
		t.Errorf("models.list: %v", got.Models)
	}

	prompt := "How do I hash a password?"
	code, body := f.post(t, "/v1/chat/completions", chatBody(prompt, map[string]any{"max_tokens": 40}))
	if code != 200 {
		t.Fatalf("net/http chat: %d %s", code, body)
	}
	want := decode[chatResponse](t, body).Choices[0]
	if got.Chat.Content != want.Message.Content || got.Chat.Finish != want.FinishReason || got.Chat.LogprobTokens != want.Message.Content {
		t.Errorf("node chat %+v, net/http %q (%s)", got.Chat, want.Message.Content, want.FinishReason)
	}
	if got.Chat.Usage.TotalTokens == 0 {
		t.Error("node chat: no usage")
	}
	code, body = f.post(t, "/v1/chat/completions", chatBody(prompt, map[string]any{"max_tokens": 40, "logprobs": true, "top_logprobs": 2}))
	if code != 200 {
		t.Fatalf("net/http chat with top_logprobs: %d %s", code, body)
	}
	wantTop := decode[topChatResponse](t, body).Choices[0].Logprobs.Content
	if len(got.Chat.TopLogprobs) != len(wantTop) {
		t.Fatalf("node chat: %d tokens with top_logprobs, net/http %d", len(got.Chat.TopLogprobs), len(wantTop))
	}
	for i, alts := range got.Chat.TopLogprobs {
		for j, a := range alts {
			w := wantTop[i].TopLogprobs[j]
			// JSON carries the float32's shortest decimal form.
			lp, _ := a[1].(float64)
			if len(alts) != 2 || a[0] != w.Token || float32(lp) != w.Logprob {
				t.Fatalf("node chat token %d alternative %d: %v, net/http %+v", i, j, a, w)
			}
		}
	}

	code, body = f.post(t, "/v1/chat/completions", chatBody(prompt, map[string]any{"max_tokens": 40, "n": 2, "seed": 7, "temperature": 0.9}))
	if code != 200 {
		t.Fatalf("net/http chat n=2: %d %s", code, body)
	}
	sampled := decode[chatResponse](t, body)
	for i, c := range sampled.Choices {
		if i >= len(got.Stream.Texts) || got.Stream.Texts[i] != c.Message.Content || got.Stream.Finish[i] != c.FinishReason {
			t.Errorf("node stream choice %d: %+v, net/http %q (%s)", i, got.Stream, c.Message.Content, c.FinishReason)
		}
	}
	if got.Stream.Usage.CompletionTokens != sampled.Usage.CompletionTokens {
		t.Errorf("node stream usage %d, net/http %d", got.Stream.Usage.CompletionTokens, sampled.Usage.CompletionTokens)
	}

	if len(got.Completions) != 2 {
		t.Fatalf("node completions: %+v", got.Completions)
	}
	for _, c := range got.Completions {
		if c.Tokens != c.Text {
			t.Errorf("completion %d: logprob tokens %q, text %q", c.Index, c.Tokens, c.Text)
		}
		// logprobs: 1 lists the most likely text and the sampled one.
		for i, m := range c.TopLogprobs {
			if len(m) < 1 || len(m) > 2 {
				t.Errorf("completion %d token %d: top_logprobs %v", c.Index, i, m)
			}
		}
	}

	if e := got.Errors["unknown_model"]; e.Status != 404 || e.Code != "model_not_found" || e.Cls != "NotFoundError" {
		t.Errorf("unknown model: %+v", e)
	}
	if e := got.Errors["bad_temperature"]; e.Status != 400 || e.Param != "temperature" || e.Cls != "BadRequestError" {
		t.Errorf("bad temperature: %+v", e)
	}
	if !got.Abort.Aborted || got.Abort.Seen >= 500 {
		t.Errorf("the long stream was not aborted early: %+v", got.Abort)
	}
	wctx, stop := context.WithTimeout(context.Background(), time.Minute)
	defer stop()
	if err := f.srv.WaitIdle(wctx); err != nil {
		t.Fatalf("the aborted stream is still in the engine: %v", err)
	}
	if st := f.srv.Stats(); st.Cancelled != 1 || f.srv.KVInUse() != 0 {
		t.Errorf("after the abort: stats %+v, %d KV blocks in use", st, f.srv.KVInUse())
	}
}
