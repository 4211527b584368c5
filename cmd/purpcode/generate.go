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
	"strings"

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
	return generateMain(args, os.Stdin, stdout, stderr)
}

func generateMain(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlags("generate", stderr)
	modelDir := fs.String("model", "", "Hugging Face model `dir` (config.json, safetensors, tokenizer.json)")
	data := fs.String("data", "", `JSONL prompts `+"`file`"+` ("-": standard input): {"id","messages":[{"role","content"}...]} or {"id","prompt"}`)
	prompt := fs.String("prompt", "", "one prompt `text`, sent as the user turn of a chat (id \"prompt\"); instead of --data")
	raw := fs.Bool("raw", false, "with --prompt: the text is the raw prompt, without the chat template")
	textOnly := fs.Bool("text", false, "print only each sample's completion text, samples separated by a blank line")
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
	switch {
	case *modelDir == "" || (*data == "") == (*prompt == ""):
		fmt.Fprintln(stderr, "purpcode generate: want --model and exactly one of --prompt and --data")
		return errUsage
	case fs.NArg() > 0:
		fmt.Fprintf(stderr, "purpcode generate: unexpected argument %q (quote the prompt: --prompt \"...\")\n", fs.Arg(0))
		return errUsage
	case *raw && *prompt == "":
		fmt.Fprintln(stderr, "purpcode generate: --raw applies to --prompt only")
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
	var rows []promptRow
	var lines []int
	source := *data
	switch {
	case *prompt != "":
		source = "--prompt"
		r := promptRow{ID: json.RawMessage(`"prompt"`), Messages: []tokenizer.Message{{Role: "user", Content: *prompt}}}
		if *raw {
			r.Messages, r.Prompt = nil, *prompt
		}
		rows, lines = []promptRow{r}, []int{1}
	case *data == "-":
		source = "stdin"
		src, err := io.ReadAll(stdin)
		if err != nil {
			return fmt.Errorf("read prompts from stdin: %w", err)
		}
		rows, lines, err = parsePromptRows(source, src)
		if err != nil {
			return err
		}
	default:
		src, err := os.ReadFile(*data)
		if err != nil {
			return fmt.Errorf("read prompts: %w", err)
		}
		if rows, lines, err = parsePromptRows(*data, src); err != nil {
			return err
		}
	}
	be, closeBE, err := cpuFlags.backend(stderr)
	if err != nil {
		return err
	}
	defer closeBE()
	m, tok, eos, err := loadModelDir(*modelDir, be)
	if err != nil {
		return err
	}
	reqs := make([]generate.Request, len(rows))
	for i, r := range rows {
		ids, _, err := generate.BuildPrompt(tok, generate.PromptSpec{Messages: r.Messages, Prompt: r.Prompt, Prefix: pre})
		if err != nil {
			return fmt.Errorf("%s:%d: %w", source, lines[i], err)
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
				if *textOnly {
					if werr == nil && (next > 0 || s.Index > 0) {
						_, werr = bw.WriteString("\n")
					}
					if werr == nil {
						_, werr = bw.WriteString(row.Text + "\n")
					}
					continue
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

// parsePromptRows parses prompt JSONL read from path (a name for errors),
// skipping blank lines; it returns the rows and their 1-based line numbers.
func parsePromptRows(path string, data []byte) ([]promptRow, []int, error) {
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
	if !strings.Contains(s, `\`) {
		return s, nil // nothing escaped (e.g. a real newline from a YAML config)
	}
	out, err := strconv.Unquote(`"` + s + `"`)
	if err != nil {
		return "", fmt.Errorf("%q: invalid escape sequence", s)
	}
	return out, nil
}
