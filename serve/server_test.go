package serve

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"

	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"purpcode/engine"
	"purpcode/generate"
	"purpcode/internal/testref"
	"purpcode/model/qwen2"
	"purpcode/tokenizer"
)

const modelName = "base-model"

// fixture is the embedded base model served over loopback.
type fixture struct {
	srv  *Server
	url  string
	m    *qwen2.Model
	tok  *tokenizer.Tokenizer
	eos  []int
	http *http.Client
}

func baseModelDir(t testing.TB) string {
	t.Helper()
	root, err := testref.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(root, "testdata", "base-model")
}

func loadBase(t testing.TB) (*qwen2.Model, *tokenizer.Tokenizer, []int) {
	t.Helper()
	dir := baseModelDir(t)
	m, err := qwen2.Load(dir, engine.NewDefaultCPU(engine.CPUOptions{}))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	eos, err := generate.StopTokens(dir, m.Cfg, tok)
	if err != nil {
		t.Fatal(err)
	}
	return m, tok, eos
}

// startServer serves cfg's model on 127.0.0.1 with a free port.
func startServer(t testing.TB, mutate func(*Config)) *fixture {
	t.Helper()
	m, tok, eos := loadBase(t)
	cfg := Config{Model: m, Tokenizer: tok, EOS: eos, Name: modelName, MaxBatch: 8}
	if mutate != nil {
		mutate(&cfg)
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: srv.Handler()}
	go hs.Serve(ln)
	t.Cleanup(func() {
		hs.Close()
		if err := srv.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return &fixture{srv: srv, url: "http://" + ln.Addr().String(), m: m, tok: tok, eos: eos, http: &http.Client{}}
}

func (f *fixture) post(t testing.TB, path string, body any) (int, []byte) {
	t.Helper()
	var b []byte
	switch v := body.(type) {
	case string:
		b = []byte(v)
	default:
		var err error
		if b, err = json.Marshal(body); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := f.http.Post(f.url+path, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, out
}

type chatResponse struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Model   string `json:"model"`
	Choices []struct {
		Index   int `json:"index"`
		Message struct {
			Role    string `json:"role"`
			Content string `json:"content"`
		} `json:"message"`
		Text     string `json:"text"`
		Logprobs *struct {
			Content []struct {
				Token   string  `json:"token"`
				Logprob float64 `json:"logprob"`
			} `json:"content"`
			Tokens        []string  `json:"tokens"`
			TokenLogprobs []float64 `json:"token_logprobs"`
		} `json:"logprobs"`
		FinishReason string `json:"finish_reason"`
	} `json:"choices"`
	Usage struct {
		PromptTokens     int `json:"prompt_tokens"`
		CompletionTokens int `json:"completion_tokens"`
		TotalTokens      int `json:"total_tokens"`
	} `json:"usage"`
}

func decode[T any](t testing.TB, b []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%v in %s", err, b)
	}
	return v
}

var prompts = []string{
	"Write a Python function that reads a file given by the user.",
	"How do I hash a password?",
	"hello",
	"Write code to run a shell command from user input.",
}

// inProcess answers a user prompt greedily with the engine directly, as
// the in-process evaluation does.
func (f *fixture) inProcess(t *testing.T, prompt string, maxNew int) string {
	t.Helper()
	ids, _, err := generate.BuildPrompt(f.tok, generate.PromptSpec{Messages: []tokenizer.Message{{Role: "user", Content: prompt}}})
	if err != nil {
		t.Fatal(err)
	}
	e, err := generate.New(f.m, generate.Options{MaxBatch: 2, EOS: f.eos})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	out, err := e.Generate(context.Background(), []generate.Request{{ID: "x", Prompt: ids, Params: generate.SamplingParams{Greedy: true, MaxNewTokens: maxNew}}})
	if err != nil {
		t.Fatal(err)
	}
	return f.tok.Decode(out[0][0].Tokens, true)
}

func chatBody(prompt string, extra map[string]any) map[string]any {
	b := map[string]any{"model": modelName, "messages": []map[string]string{{"role": "user", "content": prompt}},
		"temperature": 0, "max_tokens": 48}
	for k, v := range extra {
		b[k] = v
	}
	return b
}

// TestChatGreedyMatchesInProcess sends the prompts concurrently: the
// shared batch gives each the answer the engine gives it alone.
func TestChatGreedyMatchesInProcess(t *testing.T) {
	f := startServer(t, nil)
	got := make([]chatResponse, len(prompts))
	var wg sync.WaitGroup
	for i, p := range prompts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, body := f.post(t, "/v1/chat/completions", chatBody(p, map[string]any{"logprobs": true}))
			if code != http.StatusOK {
				t.Errorf("prompt %d: status %d: %s", i, code, body)
				return
			}
			got[i] = decode[chatResponse](t, body)
		}()
	}
	wg.Wait()
	for i, p := range prompts {
		want := f.inProcess(t, p, 48)
		r := got[i]
		if len(r.Choices) != 1 {
			t.Fatalf("prompt %d: %d choices", i, len(r.Choices))
		}
		c := r.Choices[0]
		if c.Message.Content != want || c.Message.Role != "assistant" {
			t.Errorf("prompt %d: served %q (role %q), in process %q", i, c.Message.Content, c.Message.Role, want)
		}
		if r.Object != "chat.completion" || r.Model != modelName || !strings.HasPrefix(r.ID, "chatcmpl-") {
			t.Errorf("prompt %d: envelope %q %q %q", i, r.Object, r.Model, r.ID)
		}
		if c.FinishReason != "stop" && c.FinishReason != "length" {
			t.Errorf("prompt %d: finish_reason %q", i, c.FinishReason)
		}
		if c.Logprobs == nil {
			t.Fatalf("prompt %d: no logprobs", i)
		}
		var joined strings.Builder
		for _, lp := range c.Logprobs.Content {
			joined.WriteString(lp.Token)
			if lp.Logprob > 0 {
				t.Errorf("prompt %d: logprob %v > 0", i, lp.Logprob)
			}
		}
		if joined.String() != want {
			t.Errorf("prompt %d: logprob tokens spell %q, content %q", i, joined.String(), want)
		}
		if r.Usage.CompletionTokens < len(c.Logprobs.Content) || r.Usage.TotalTokens != r.Usage.PromptTokens+r.Usage.CompletionTokens || r.Usage.PromptTokens == 0 {
			t.Errorf("prompt %d: usage %+v with %d shown tokens", i, r.Usage, len(c.Logprobs.Content))
		}
	}
}

// sse reads a server-sent event stream into its data payloads.
func sse(t testing.TB, r io.Reader) []string {
	t.Helper()
	var out []string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			t.Fatalf("not an SSE data line: %q", line)
		}
		out = append(out, data)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func (f *fixture) stream(t testing.TB, path string, body map[string]any) []string {
	t.Helper()
	body["stream"] = true
	b, _ := json.Marshal(body)
	resp, err := f.http.Post(f.url+path, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		msg, _ := io.ReadAll(resp.Body)
		t.Fatalf("status %d, content type %q: %s", resp.StatusCode, resp.Header.Get("Content-Type"), msg)
	}
	return sse(t, resp.Body)
}

type chunk struct {
	Object  string `json:"object"`
	Choices []struct {
		Index int `json:"index"`
		Delta struct {
			Role    string `json:"role"`
			Content string `json:"content"`
		} `json:"delta"`
		Text         string  `json:"text"`
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
	Usage *struct {
		CompletionTokens int `json:"completion_tokens"`
	} `json:"usage"`
}

// TestStreamMatchesNonStream: the deltas of a stream (n = 2, sampled with a
// seed) add up to the non-streamed answers, with a stop string held back.
func TestStreamMatchesNonStream(t *testing.T) {
	f := startServer(t, nil)
	for _, stop := range []any{nil, []string{"def", "\n\n"}} {
		extra := map[string]any{"n": 2, "temperature": 0.9, "seed": 7, "stop": stop}
		code, body := f.post(t, "/v1/chat/completions", chatBody(prompts[0], extra))
		if code != http.StatusOK {
			t.Fatalf("status %d: %s", code, body)
		}
		want := decode[chatResponse](t, body)
		b := chatBody(prompts[0], extra)
		b["stream_options"] = map[string]any{"include_usage": true}
		events := f.stream(t, "/v1/chat/completions", b)
		if events[len(events)-1] != "[DONE]" {
			t.Fatalf("stream does not end with [DONE]: %q", events[len(events)-1])
		}
		text := make([]string, 2)
		finish := make([]string, 2)
		usage := 0
		for _, e := range events[:len(events)-1] {
			c := decode[chunk](t, []byte(e))
			if c.Object != "chat.completion.chunk" {
				t.Fatalf("chunk object %q", c.Object)
			}
			if c.Usage != nil {
				usage = c.Usage.CompletionTokens
			}
			for _, ch := range c.Choices {
				text[ch.Index] += ch.Delta.Content
				if ch.FinishReason != nil {
					if finish[ch.Index] != "" {
						t.Errorf("choice %d finished twice", ch.Index)
					}
					finish[ch.Index] = *ch.FinishReason
				}
			}
		}
		for i, c := range want.Choices {
			if text[c.Index] != c.Message.Content || finish[c.Index] != c.FinishReason {
				t.Errorf("stop %v choice %d: streamed %q (%s), non-streamed %q (%s)", stop, i, text[c.Index], finish[c.Index], c.Message.Content, c.FinishReason)
			}
			if stop != nil && (strings.Contains(c.Message.Content, "def") || strings.Contains(c.Message.Content, "\n\n")) {
				t.Errorf("choice %d keeps a stop string: %q", i, c.Message.Content)
			}
		}
		if usage != want.Usage.CompletionTokens {
			t.Errorf("streamed usage %d, non-streamed %d", usage, want.Usage.CompletionTokens)
		}
	}
}

// TestCompletionsPromptsAndSeeds: several prompts (text and token ids)
// times n, reproducible by seed, different without.
func TestCompletionsPromptsAndSeeds(t *testing.T) {
	f := startServer(t, nil)
	ids := f.tok.Encode("def read_file(path):")
	body := map[string]any{"model": modelName, "prompt": []any{"import os\n", "def read_file(path):"}, "n": 3,
		"max_tokens": 20, "temperature": 1, "seed": 42, "logprobs": 1}
	code, b := f.post(t, "/v1/completions", body)
	if code != http.StatusOK {
		t.Fatalf("status %d: %s", code, b)
	}
	r1 := decode[chatResponse](t, b)
	if len(r1.Choices) != 6 {
		t.Fatalf("%d choices, want 6", len(r1.Choices))
	}
	for i, c := range r1.Choices {
		if c.Index != i {
			t.Errorf("choice %d has index %d", i, c.Index)
		}
		if c.Logprobs == nil || len(c.Logprobs.Tokens) != len(c.Logprobs.TokenLogprobs) || strings.Join(c.Logprobs.Tokens, "") != c.Text {
			t.Errorf("choice %d: logprobs %+v for text %q", i, c.Logprobs, c.Text)
		}
	}
	code, b = f.post(t, "/v1/completions", body)
	if code != http.StatusOK {
		t.Fatalf("status %d: %s", code, b)
	}
	r2 := decode[chatResponse](t, b)
	// The same prompt as token ids with the same seed gives the same text.
	body["prompt"] = ids
	code, b = f.post(t, "/v1/completions", body)
	if code != http.StatusOK {
		t.Fatalf("status %d: %s", code, b)
	}
	r3 := decode[chatResponse](t, b)
	differ := false
	for i := range r1.Choices {
		if r1.Choices[i].Text != r2.Choices[i].Text {
			t.Errorf("choice %d: seed 42 gave %q then %q", i, r1.Choices[i].Text, r2.Choices[i].Text)
		}
		if i > 0 && r1.Choices[i].Text != r1.Choices[0].Text {
			differ = true
		}
	}
	for i := range r3.Choices {
		if r3.Choices[i].Text != r1.Choices[3+i].Text {
			t.Errorf("token-id prompt choice %d: %q, text prompt %q", i, r3.Choices[i].Text, r1.Choices[3+i].Text)
		}
	}
	if !differ {
		t.Error("all sampled choices are identical: samples do not get their own streams")
	}
	// Streaming completions add up too.
	body["prompt"] = "import os\n"
	delete(body, "logprobs")
	events := f.stream(t, "/v1/completions", body)
	text := make([]string, 3)
	for _, e := range events[:len(events)-1] {
		c := decode[chunk](t, []byte(e))
		for _, ch := range c.Choices {
			text[ch.Index] += ch.Text
		}
	}
	for i := range text {
		if text[i] != r1.Choices[i].Text {
			t.Errorf("streamed completion %d %q, non-streamed %q", i, text[i], r1.Choices[i].Text)
		}
	}
}

// TestErrors checks status codes and the OpenAI error shape.
func TestErrors(t *testing.T) {
	f := startServer(t, func(c *Config) { c.MaxBodyBytes = 2048 })
	cases := []struct {
		name, method, path string
		body               any
		status             int
		param              string
	}{
		{"not json", "POST", "/v1/chat/completions", "{", 400, ""},
		{"wrong type", "POST", "/v1/chat/completions", `{"model":"base-model","messages":"hi"}`, 400, "messages"},
		{"no messages", "POST", "/v1/chat/completions", map[string]any{"model": modelName}, 400, "messages"},
		{"no model", "POST", "/v1/chat/completions", map[string]any{"messages": []map[string]string{{"role": "user", "content": "x"}}}, 400, "model"},
		{"unknown model", "POST", "/v1/chat/completions", map[string]any{"model": "gpt-4", "messages": []map[string]string{{"role": "user", "content": "x"}}}, 404, "model"},
		{"n zero", "POST", "/v1/chat/completions", chatBody("x", map[string]any{"n": 0}), 400, "n"},
		{"temperature", "POST", "/v1/chat/completions", chatBody("x", map[string]any{"temperature": 3}), 400, "temperature"},
		{"top_p", "POST", "/v1/chat/completions", chatBody("x", map[string]any{"top_p": 0}), 400, "top_p"},
		{"max_tokens", "POST", "/v1/chat/completions", chatBody("x", map[string]any{"max_tokens": 0}), 400, "max_tokens"},
		{"stop list", "POST", "/v1/chat/completions", chatBody("x", map[string]any{"stop": []string{"a", "b", "c", "d", "e"}}), 400, "stop"},
		{"image part", "POST", "/v1/chat/completions", map[string]any{"model": modelName, "messages": []map[string]any{{"role": "user", "content": []map[string]string{{"type": "image_url"}}}}}, 400, "messages[0].content"},
		{"penalty", "POST", "/v1/chat/completions", chatBody("x", map[string]any{"presence_penalty": 1}), 400, "presence_penalty"},
		{"too large", "POST", "/v1/chat/completions", chatBody(strings.Repeat("x", 4096), nil), 413, ""},
		{"context", "POST", "/v1/completions", `{"model":"base-model","prompt":[` + strings.TrimSuffix(strings.Repeat("5,", 700), ",") + `]}`, 422, "prompt"},
		{"bad token", "POST", "/v1/completions", `{"model":"base-model","prompt":[1,99999]}`, 400, "prompt"},
		{"echo", "POST", "/v1/completions", `{"model":"base-model","prompt":"x","echo":true}`, 400, "echo"},
		{"get chat", "GET", "/v1/chat/completions", nil, 405, ""},
		{"post models", "POST", "/v1/models", nil, 405, ""},
		{"unknown path", "GET", "/v1/embeddings", nil, 404, ""},
		{"unknown model card", "GET", "/v1/models/other", nil, 404, "model"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var rd io.Reader
			if c.body != nil {
				b, ok := c.body.(string)
				if !ok {
					raw, _ := json.Marshal(c.body)
					b = string(raw)
				}
				rd = strings.NewReader(b)
			}
			req, _ := http.NewRequest(c.method, f.url+c.path, rd)
			resp, err := f.http.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != c.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, c.status, body)
			}
			if c.status == 405 && resp.Header.Get("Allow") == "" {
				t.Error("405 without an Allow header")
			}
			var e struct {
				Error map[string]*json.RawMessage `json:"error"`
			}
			if err := json.Unmarshal(body, &e); err != nil || e.Error == nil {
				t.Fatalf("not an OpenAI error body: %s", body)
			}
			for _, k := range []string{"message", "type", "param", "code"} {
				if _, ok := e.Error[k]; !ok {
					t.Errorf("error body lacks %q: %s", k, body)
				}
			}
			var param *string
			if p := e.Error["param"]; p != nil {
				json.Unmarshal(*p, &param)
			}
			if (param == nil && c.param != "") || (param != nil && *param != c.param) {
				t.Errorf("param %v, want %q: %s", param, c.param, body)
			}
		})
	}
}

func TestModelsAndHealth(t *testing.T) {
	f := startServer(t, nil)
	for _, path := range []string{"/health", "/v1/models", "/v1/models/" + modelName} {
		resp, err := f.http.Get(f.url + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s: status %d: %s", path, resp.StatusCode, body)
		}
		if path == "/v1/models" {
			var list struct {
				Object string `json:"object"`
				Data   []struct {
					ID string `json:"id"`
				} `json:"data"`
			}
			json.Unmarshal(body, &list)
			if list.Object != "list" || len(list.Data) != 1 || list.Data[0].ID != modelName {
				t.Errorf("models: %s", body)
			}
		}
	}
}

// TestDisconnectFreesSequence: a streaming client that leaves mid-answer
// has its sequence removed from the batch and its KV blocks freed, while
// another request keeps going.
func TestDisconnectFreesSequence(t *testing.T) {
	f := startServer(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	body := chatBody(prompts[1], map[string]any{"max_tokens": 500, "ignore_eos": true, "stream": true, "temperature": 1})
	b, _ := json.Marshal(body)
	req, _ := http.NewRequestWithContext(ctx, "POST", f.url+"/v1/chat/completions", bytes.NewReader(b))
	resp, err := f.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	rd := bufio.NewReader(resp.Body)
	// Wait for text, not just the role chunk: the sequence is decoding.
	for {
		line, err := rd.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(line, `"content":"`) && !strings.Contains(line, `"content":""`) {
			break
		}
	}
	if f.srv.KVInUse() == 0 {
		t.Fatal("no KV blocks in use while a sequence decodes")
	}
	cancel()
	resp.Body.Close()
	wctx, stop := context.WithTimeout(context.Background(), 60*time.Second)
	defer stop()
	if err := f.srv.WaitIdle(wctx); err != nil {
		t.Fatalf("the disconnected request is still in the engine: %v", err)
	}
	st := f.srv.Stats()
	if st.Cancelled != 1 {
		t.Errorf("stats %+v: want 1 cancelled", st)
	}
	if st.GeneratedTokens >= 500 {
		t.Errorf("the disconnected request ran to %d tokens", st.GeneratedTokens)
	}
	if n := f.srv.KVInUse(); n != 0 {
		t.Errorf("%d KV blocks still in use", n)
	}
	// The server still answers.
	if code, b := f.post(t, "/v1/chat/completions", chatBody("hello", nil)); code != 200 {
		t.Errorf("after disconnect: %d %s", code, b)
	}
}
