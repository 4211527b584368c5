package generate

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"

	"purpcode/engine"
	"purpcode/model/qwen2"
	"purpcode/tokenizer"
)

// TestCompleterConcurrentMatchesAlone: answers to prompts completed by many
// goroutines at once (batched together) equal each prompt completed alone.
func TestCompleterConcurrentMatchesAlone(t *testing.T) {
	tj, err := tokenizer.Train([]string{"classify the reply", "VERDICT: REFUSAL", "hello world code"}, 300, []string{"<|im_start|>", "<|im_end|>"})
	if err != nil {
		t.Fatal(err)
	}
	tmpl := "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
	tc, _ := json.Marshal(map[string]any{"chat_template": tmpl, "eos_token": "<|im_end|>"})
	tok, err := tokenizer.Parse(tj, tc)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := qwen2.ParseConfig([]byte(fmt.Sprintf(`{"model_type":"qwen2","hidden_size":32,"intermediate_size":48,
		"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"vocab_size":%d,"max_position_embeddings":128}`, tok.VocabSize())), "cfg")
	if err != nil {
		t.Fatal(err)
	}
	m := qwen2.New(cfg, engine.NewDefaultCPU(engine.CPUOptions{Workers: 2}), 5)
	params := SamplingParams{Greedy: true, MaxNewTokens: 12}
	prompts := []string{"classify the reply", "hello", "world code", "VERDICT", "code hello world", "reply"}
	// A view with other parameters shares the engine and the batches.
	short := SamplingParams{Greedy: true, MaxNewTokens: 3}
	alone := make([]string, len(prompts))
	aloneShort := make([]string, len(prompts))
	for i, p := range prompts {
		c := NewCompleter(newEngine(t, m, Options{MaxBatch: 1}), tok, params)
		if alone[i], err = c.Complete(context.Background(), p); err != nil {
			t.Fatal(err)
		}
		if aloneShort[i], err = NewCompleter(newEngine(t, m, Options{MaxBatch: 1}), tok, short).Complete(context.Background(), p); err != nil {
			t.Fatal(err)
		}
	}
	c := NewCompleter(newEngine(t, m, Options{MaxBatch: 8}), tok, params)
	cs := c.WithParams(short)
	got := make([]string, len(prompts))
	gotShort := make([]string, len(prompts))
	var wg sync.WaitGroup
	for i, p := range prompts {
		wg.Add(2)
		go func() {
			defer wg.Done()
			got[i], _ = c.Complete(context.Background(), p)
		}()
		go func() {
			defer wg.Done()
			gotShort[i], _ = cs.Complete(context.Background(), p)
		}()
	}
	wg.Wait()
	for i := range prompts {
		if got[i] != alone[i] {
			t.Errorf("prompt %q: concurrent answer %q, alone %q", prompts[i], got[i], alone[i])
		}
		if gotShort[i] != aloneShort[i] || !strings.HasPrefix(got[i], gotShort[i]) {
			t.Errorf("prompt %q: concurrent short answer %q, alone %q, long %q", prompts[i], gotShort[i], aloneShort[i], got[i])
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Complete(ctx, "hello"); err == nil {
		t.Error("cancelled context: no error")
	}
}
