package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"

	"purpcode/generate"
	"purpcode/tokenizer"
)

// promptRow is one line of the --data file: chat messages or a raw prompt.
type promptRow struct {
	ID       json.RawMessage     `json:"id"`
	Messages []tokenizer.Message `json:"messages"`
	Prompt   string              `json:"prompt"`
}

// sampleRow is one line of output.
type sampleRow struct {
	ID               json.RawMessage `json:"id"`
	Sample           int             `json:"sample"`
	Text             string          `json:"text"`
	TokenIDs         []int           `json:"token_ids"`
	LogProbs         []float32       `json:"logprobs"`          // raw model log-softmax
	SamplingLogProbs []float32       `json:"sampling_logprobs"` // after temperature/top-k/top-p
	FinishReason     string          `json:"finish_reason"`
}

func runGenerate(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("generate", stderr)
	modelDir := fs.String("model", "", "Hugging Face model directory (config.json, safetensors, tokenizer.json)")
	data := fs.String("data", "", `JSONL prompts: {"id","messages":[{"role","content"}...]} or {"id","prompt"}`)
	n := fs.Int("n", 8, "samples per prompt")
	temp := fs.Float64("temperature", 1, "sampling temperature (0 = greedy)")
	topP := fs.Float64("top-p", 1, "nucleus sampling mass (1 = off)")
	topK := fs.Int("top-k", 0, "keep the k most likely tokens (0 = off)")
	maxNew := fs.Int("max-new-tokens", 512, "most tokens per completion")
	seed := fs.Uint64("seed", 0, "random seed (a sample's stream depends on seed, prompt id and sample index)")
	prefix := fs.String("prefix", "", `assistant prefix prefilled after the chat template, e.g. "## Analysis\n" (escapes are interpreted)`)
	batch := fs.Int("batch", 32, "most sequences decoded at once")
	kvBlocks := fs.Int("kv-blocks", 0, "KV cache capacity in 16-token blocks (0 = enough for --batch sequences)")
	outPath := fs.String("out", "", "output JSONL file (default stdout)")
	cpuFlags := addCPUFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *modelDir == "" || *data == "" {
		fmt.Fprintln(stderr, "purpcode generate: --model and --data are required")
		fs.Usage()
		return errUsage
	}
	pre, err := unescapePrefix(*prefix)
	if err != nil {
		return fmt.Errorf("--prefix: %w", err)
	}
	params := generate.SamplingParams{Temperature: *temp, TopP: *topP, TopK: *topK, MaxNewTokens: *maxNew}
	if *n <= 0 {
		return fmt.Errorf("--n %d: want a positive number of samples", *n)
	}
	rows, lines, err := readPromptRows(*data)
	if err != nil {
		return err
	}
	m, tok, eos, err := loadModelDir(*modelDir, cpuFlags.cpu())
	if err != nil {
		return err
	}
	reqs := make([]generate.Request, len(rows))
	for i, r := range rows {
		ids, _, err := generate.BuildPrompt(tok, generate.PromptSpec{Messages: r.Messages, Prompt: r.Prompt, Prefix: pre})
		if err != nil {
			return fmt.Errorf("%s:%d: %w", *data, lines[i], err)
		}
		reqs[i] = generate.Request{ID: idString(r.ID, lines[i]), Prompt: ids, N: *n, Params: params, Seed: *seed}
	}
	e, err := generate.New(m, generate.Options{
		MaxBatch: *batch, KVBlocks: *kvBlocks, EOS: eos,
		Decode: func(ids []int) string { return tok.Decode(ids, true) },
	})
	if err != nil {
		return err
	}
	defer e.Close()

	var w io.Writer = stdout
	var f *os.File
	if *outPath != "" {
		if f, err = os.Create(*outPath); err != nil {
			return fmt.Errorf("create output: %w", err)
		}
		defer f.Close()
		w = f
	}
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	// Results arrive as prompts finish; write them in input order, each as
	// soon as every earlier prompt is written.
	done := make([][]generate.Sample, len(reqs))
	next := 0
	var werr error
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	err = e.Run(ctx, reqs, func(i int, samples []generate.Sample) {
		done[i] = samples
		for ; next < len(done) && done[next] != nil && werr == nil; next++ {
			for _, s := range done[next] {
				row := sampleRow{
					ID: rows[next].ID, Sample: s.Index, Text: generate.CompletionText(tok, pre, s.Tokens),
					TokenIDs: s.Tokens, LogProbs: s.RawLogProbs, SamplingLogProbs: s.LogProbs, FinishReason: s.FinishReason,
				}
				if row.ID == nil {
					row.ID = json.RawMessage(strconv.Quote(reqs[next].ID))
				}
				werr = enc.Encode(row)
			}
			done[next] = nil
			if werr == nil {
				werr = bw.Flush()
			}
		}
	})
	if err != nil {
		return err
	}
	if werr != nil {
		return fmt.Errorf("write output: %w", werr)
	}
	if f != nil {
		if err := f.Close(); err != nil {
			return fmt.Errorf("write output: %w", err)
		}
	}
	return nil
}

// readPromptRows reads the prompt JSONL file, skipping blank lines; it
// returns the rows and their 1-based line numbers.
func readPromptRows(path string) ([]promptRow, []int, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read prompts: %w", err)
	}
	var rows []promptRow
	var lines []int
	for i, line := range bytes.Split(data, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		var r promptRow
		dec := json.NewDecoder(bytes.NewReader(line))
		if err := dec.Decode(&r); err != nil {
			return nil, nil, fmt.Errorf("%s:%d: %w", path, i+1, err)
		}
		switch {
		case len(r.Messages) == 0 && r.Prompt == "":
			return nil, nil, fmt.Errorf("%s:%d: row has neither \"messages\" nor \"prompt\"", path, i+1)
		case len(r.Messages) > 0 && r.Prompt != "":
			return nil, nil, fmt.Errorf("%s:%d: row has both \"messages\" and \"prompt\"", path, i+1)
		}
		for j, m := range r.Messages {
			if m.Role == "" {
				return nil, nil, fmt.Errorf("%s:%d: messages[%d] has no \"role\"", path, i+1, j)
			}
		}
		if string(r.ID) == "null" {
			r.ID = nil
		}
		rows = append(rows, r)
		lines = append(lines, i+1)
	}
	if len(rows) == 0 {
		return nil, nil, fmt.Errorf("%s: no prompts", path)
	}
	return rows, lines, nil
}

// idString is a row's id as a seed string: a JSON string's value, another
// JSON value's text, or "line:N" when the row has no id.
func idString(raw json.RawMessage, line int) string {
	if raw == nil {
		return "line:" + strconv.Itoa(line)
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	return string(raw)
}

// unescapePrefix interprets Go string escapes (\n, \t, \", \\, \u...) so
// a shell user can pass "## Analysis\n".
func unescapePrefix(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	out, err := strconv.Unquote(`"` + s + `"`)
	if err != nil {
		return "", fmt.Errorf("%q: invalid escape sequence", s)
	}
	return out, nil
}
