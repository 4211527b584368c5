package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"purpcode/checkpoint"
	"purpcode/tokenizer"
)

// chatMLTemplate is the project's ChatML chat template: every turn as
// <|im_start|>role\ncontent<|im_end|>\n, and the assistant header as the
// generation prompt. Unlike Qwen2.5's it adds no default system prompt: a
// tiny model's context is short, and the rule-context system prompt must be
// the only one the model ever sees.
const chatMLTemplate = "{%- for message in messages %}" +
	"{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}" +
	"{%- endfor %}" +
	"{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"

// defaultSpecial are Qwen's special tokens, in Qwen's id order.
var defaultSpecial = []string{"<|endoftext|>", "<|im_start|>", "<|im_end|>"}

// runTrainTokenizer trains a byte-level BPE tokenizer on text files and
// writes a Hugging Face tokenizer directory: tokenizer.json,
// tokenizer_config.json (ChatML template, special tokens) and
// generation_config.json (the stop ids), ready to be copied next to a
// config.json.
func runTrainTokenizer(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("train-tokenizer", stderr)
	var corpora, special []string
	fs.Var(listFlag{&corpora}, "corpus", "plain-text corpus `files` (repeatable or comma-separated)")
	vocab := fs.Int("vocab", 0, "vocabulary size: 256 byte tokens + merges + special tokens; training must reach it exactly")
	out := fs.String("out", "", "output `dir` (created if missing)")
	fs.Var(listFlag{&special}, "special", "special `tokens`, in id order (default "+strings.Join(defaultSpecial, ",")+")")
	eos := fs.String("eos", "<|im_end|>", "end-of-turn token: tokenizer_config eos_token and the first generation stop id")
	pad := fs.String("pad", "<|endoftext|>", "padding token (also a generation stop id)")
	tmplPath := fs.String("chat-template", "", "Jinja chat template `file` (default: the built-in ChatML template)")
	maxLen := fs.Int("model-max-length", 0, "model_max_length written to tokenizer_config.json (0: omitted)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if len(corpora) == 0 || *out == "" || *vocab <= 0 || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "purpcode train-tokenizer: --corpus, --vocab and --out are required; no positional arguments")
		return errUsage
	}
	if len(special) == 0 {
		special = defaultSpecial
	}
	for _, tok := range []struct{ flag, value string }{{"--eos", *eos}, {"--pad", *pad}} {
		if !slices.Contains(special, tok.value) {
			return fmt.Errorf("%s %q is not one of the special tokens %q", tok.flag, tok.value, special)
		}
	}
	tmpl := chatMLTemplate
	if *tmplPath != "" {
		s, err := tokenizer.LoadTemplate(*tmplPath)
		if err != nil {
			return err
		}
		tmpl = s
	}

	var docs []string
	for _, path := range corpora {
		data, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("read corpus: %w", err)
		}
		docs = append(docs, paragraphs(string(data))...)
	}
	if len(docs) == 0 {
		return fmt.Errorf("corpus %s holds no text", strings.Join(corpora, ", "))
	}
	tj, err := tokenizer.Train(docs, *vocab, special)
	if err != nil {
		return err
	}
	cfgJSON, err := tokenizerConfigJSON(special, *vocab-len(special), tmpl, *eos, *pad, *maxLen)
	if err != nil {
		return err
	}
	// Load what was written, so a template that does not compile or a
	// corpus too small for the vocabulary fails here and not in training.
	tok, err := tokenizer.Parse(tj, cfgJSON)
	if err != nil {
		return fmt.Errorf("reload trained tokenizer: %w", err)
	}
	if tok.VocabSize() != *vocab {
		return fmt.Errorf("corpus too small: training stopped at %d tokens, want --vocab %d (no pair left to merge)", tok.VocabSize(), *vocab)
	}
	if _, err := tok.RenderChat([]tokenizer.Message{{Role: "user", Content: "hi"}}, tokenizer.ChatOptions{AddGenerationPrompt: true}); err != nil {
		return fmt.Errorf("chat template: %w", err)
	}
	eosID, _ := tok.TokenID(*eos)
	padID, _ := tok.TokenID(*pad)
	stop := []int{eosID}
	if padID != eosID {
		stop = append(stop, padID)
	}
	genJSON, err := marshalIndent(map[string]any{"eos_token_id": stop, "pad_token_id": padID, "bos_token_id": nil})
	if err != nil {
		return err
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", *out, err)
	}
	for _, f := range []struct {
		name string
		data []byte
	}{{"tokenizer.json", tj}, {"tokenizer_config.json", cfgJSON}, {"generation_config.json", genJSON}} {
		path := filepath.Join(*out, f.name)
		if err := checkpoint.AtomicWriteFile(path, f.data, 0o644); err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
	}
	var ids []string
	for _, s := range special {
		id, _ := tok.TokenID(s)
		ids = append(ids, fmt.Sprintf("%s=%d", s, id))
	}
	fmt.Fprintf(stdout, "trained %d tokens on %d documents; special %s; wrote %s\n", tok.VocabSize(), len(docs), strings.Join(ids, " "), *out)
	return nil
}

// paragraphs splits text at blank lines: one corpus document each, so that
// merge statistics never join the end of one conversation to the next.
func paragraphs(text string) []string {
	text = strings.ReplaceAll(text, "\r\n", "\n")
	var out []string
	for _, p := range strings.Split(text, "\n\n") {
		if strings.TrimSpace(p) != "" {
			out = append(out, p)
		}
	}
	return out
}

// tokenizerConfigJSON writes a Qwen2-style tokenizer_config.json: the
// special tokens as added tokens from id firstID on, no BOS, the chat
// template, and eos/pad tokens.
func tokenizerConfigJSON(special []string, firstID int, tmpl, eos, pad string, maxLen int) ([]byte, error) {
	type added struct {
		Content    string `json:"content"`
		LStrip     bool   `json:"lstrip"`
		Normalized bool   `json:"normalized"`
		RStrip     bool   `json:"rstrip"`
		SingleWord bool   `json:"single_word"`
		Special    bool   `json:"special"`
	}
	decoder := map[string]added{}
	for i, s := range special {
		decoder[fmt.Sprint(firstID+i)] = added{Content: s, Special: true}
	}
	var extra []string
	for _, s := range special {
		if s != eos && s != pad {
			extra = append(extra, s)
		}
	}
	cfg := map[string]any{
		"add_bos_token":                false,
		"add_prefix_space":             false,
		"added_tokens_decoder":         decoder,
		"additional_special_tokens":    extra,
		"bos_token":                    nil,
		"chat_template":                tmpl,
		"clean_up_tokenization_spaces": false,
		"eos_token":                    eos,
		"errors":                       "replace",
		"pad_token":                    pad,
		"split_special_tokens":         false,
		"tokenizer_class":              "Qwen2Tokenizer",
		"unk_token":                    nil,
	}
	if maxLen > 0 {
		cfg["model_max_length"] = maxLen
	}
	return marshalIndent(cfg)
}

// marshalIndent encodes v with two-space indentation, without HTML escaping
// (the template's "<" and ">" stay readable), and a final newline.
func marshalIndent(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("encode json: %w", err)
	}
	return b.Bytes(), nil
}
