package tokenizer

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"unicode"

	"github.com/ardanlabs/jinja"
)

// Message is one chat turn.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// ChatOptions control chat rendering.
type ChatOptions struct {
	// AddGenerationPrompt appends the template's assistant header.
	AddGenerationPrompt bool
	// Template overrides the tokenizer_config.json chat template when set.
	Template string
	// Extra holds further template variables (e.g. enable_thinking); they
	// override the defaults, including bos_token and eos_token.
	Extra map[string]any
}

// Chat is a rendered and tokenized conversation.
type Chat struct {
	Text string
	IDs  []int
	// Assistant marks the tokens of every assistant turn, LastAssistant
	// those of the last assistant message only. A turn's tokens are the
	// ones the model must generate after the template's assistant header:
	// everything the template renders for the message (its content, and
	// for templates such as Qwen3's an empty <think></think> block), up to
	// and including the end-of-turn token(s) it emits right after (e.g.
	// <|im_end|>), but not the role header and not the whitespace the
	// template writes after the end-of-turn token. A token straddling a
	// span boundary counts as inside.
	Assistant     []bool
	LastAssistant []bool
}

// LoadTemplate reads a Jinja chat template file. A .json file is read as a
// tokenizer_config.json and its chat_template is returned.
func LoadTemplate(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("load chat template: %w", err)
	}
	if strings.HasSuffix(path, ".json") {
		var c configJSON
		if err := jsonUnmarshal(data, &c); err != nil {
			return "", fmt.Errorf("load chat template %s: %w", path, err)
		}
		s, err := parseChatTemplateField(c.ChatTemplate)
		if err != nil {
			return "", fmt.Errorf("load chat template %s: %w", path, err)
		}
		if s == "" {
			return "", fmt.Errorf("load chat template %s: no chat_template", path)
		}
		return s, nil
	}
	return string(data), nil
}

func (t *Tokenizer) compiled(src string) (*jinja.Template, error) {
	if v, ok := t.templates.Load(src); ok {
		return v.(*jinja.Template), nil
	}
	tmpl, err := jinja.Compile(src)
	if err != nil {
		if !hasLine.MatchString(err.Error()) {
			return nil, fmt.Errorf("compile chat template (%s): %w", locateUnclosed(src, err), err)
		}
		return nil, fmt.Errorf("compile chat template: %w", err)
	}
	t.templates.Store(src, tmpl)
	return tmpl, nil
}

func (t *Tokenizer) templateSource(opts ChatOptions) (string, error) {
	if opts.Template != "" {
		return opts.Template, nil
	}
	if t.chatTemplate == "" {
		return "", errors.New("no chat template: tokenizer_config.json has none and none was given")
	}
	return t.chatTemplate, nil
}

// RenderChat renders msgs with the chat template the way HF transformers'
// apply_chat_template(tokenize=False) does.
func (t *Tokenizer) RenderChat(msgs []Message, opts ChatOptions) (string, error) {
	src, err := t.templateSource(opts)
	if err != nil {
		return "", err
	}
	tmpl, err := t.compiled(src)
	if err != nil {
		return "", err
	}
	return t.render(tmpl, src, msgs, opts.AddGenerationPrompt, opts.Extra)
}

func (t *Tokenizer) render(tmpl *jinja.Template, src string, msgs []Message, genPrompt bool, extra map[string]any) (string, error) {
	// Messages are ordered dicts: HF's tojson keeps insertion order, and a
	// Go map would be emitted with sorted keys.
	items := make([]jinja.Value, len(msgs))
	for i, m := range msgs {
		d := jinja.NewDict()
		d.AsDict().Set("role", jinja.NewString(m.Role))
		d.AsDict().Set("content", jinja.NewString(m.Content))
		items[i] = d
	}
	vars := map[string]jinja.Value{
		"messages":              jinja.NewList(items),
		"add_generation_prompt": jinja.NewBool(genPrompt),
	}
	// HF passes the special tokens that are set, as strings.
	for name, tok := range map[string]string{"bos_token": t.bosTok, "eos_token": t.eosTok, "pad_token": t.padTok, "unk_token": t.unkTok} {
		if tok != "" {
			vars[name] = jinja.NewString(tok)
		}
	}
	for k, v := range extra {
		vars[k] = jinja.FromGoValue(v)
	}
	out, err := tmpl.RenderValues(vars)
	if err != nil {
		return "", fmt.Errorf("render chat template (%s): %w", locateError(src, err), err)
	}
	return out, nil
}

var (
	quoted   = regexp.MustCompile(`["'“]([^"'”]{3,})["'”]`)
	hasLine  = regexp.MustCompile(`line \d+`)
	unclosed = regexp.MustCompile(`unclosed (\w+) block`)
	blockTag = regexp.MustCompile(`\{%[-+]?\s*(\w+)`)
	leadWord = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{2,}`)
)

// locateUnclosed names the line of the block opener left unclosed, for the
// syntax errors the Jinja engine reports without a line.
func locateUnclosed(src string, err error) string {
	m := unclosed.FindStringSubmatch(err.Error())
	if m == nil {
		return "template line unknown"
	}
	kind := m[1]
	var open []int
	for i, l := range strings.Split(src, "\n") {
		for _, tag := range blockTag.FindAllStringSubmatch(l, -1) {
			switch tag[1] {
			case kind:
				open = append(open, i+1)
			case "end" + kind:
				if len(open) > 0 {
					open = open[:len(open)-1]
				}
			}
		}
	}
	if len(open) == 0 {
		return "template line unknown"
	}
	return fmt.Sprintf("template line %d", open[len(open)-1])
}

// locateError names the template line(s) a render error most likely comes
// from. The Jinja engine reports lines for syntax errors only, so this
// searches the source for the raised message or a quoted name from it.
func locateError(src string, err error) string {
	msg := err.Error()
	cands := []string{strings.TrimSpace(msg)}
	for _, m := range quoted.FindAllStringSubmatch(msg, -1) {
		cands = append(cands, m[1])
	}
	if i := strings.LastIndex(msg, ": "); i >= 0 {
		cands = append(cands, strings.TrimSpace(msg[i+2:]))
	}
	if w := leadWord.FindString(msg); w != "" {
		cands = append(cands, w)
	}
	lines := strings.Split(src, "\n")
	for _, c := range cands {
		if len(strings.TrimFunc(c, unicode.IsSpace)) < 3 {
			continue
		}
		for i, l := range lines {
			if strings.Contains(l, c) {
				return fmt.Sprintf("template line %d", i+1)
			}
		}
	}
	return "template line unknown"
}

// ApplyChat renders msgs, tokenizes the text, and marks the tokens of the
// assistant turns (see Chat). Each assistant turn i is located by rendering
// msgs[:i] with the generation prompt (where the turn starts) and msgs[:i+1]
// without it (where it ends); an error is returned when the template does
// not render those prefixes consistently with the whole conversation.
func (t *Tokenizer) ApplyChat(msgs []Message, opts ChatOptions) (*Chat, error) {
	src, err := t.templateSource(opts)
	if err != nil {
		return nil, err
	}
	tmpl, err := t.compiled(src)
	if err != nil {
		return nil, err
	}
	full, err := t.render(tmpl, src, msgs, opts.AddGenerationPrompt, opts.Extra)
	if err != nil {
		return nil, err
	}
	ids, offs := t.EncodeWithOffsets(full)
	c := &Chat{Text: full, IDs: ids, Assistant: make([]bool, len(ids)), LastAssistant: make([]bool, len(ids))}
	last := -1
	for i, m := range msgs {
		if m.Role == "assistant" {
			last = i
		}
	}
	searchFrom := 0
	for i, m := range msgs {
		if m.Role != "assistant" {
			continue
		}
		a, b, err := t.turnSpan(tmpl, src, msgs, i, full, searchFrom, opts.Extra)
		if err != nil {
			return nil, fmt.Errorf("assistant mask for message %d: %w", i, err)
		}
		searchFrom = b
		for k, o := range offs {
			if o[1] > a && o[0] < b {
				c.Assistant[k] = true
				if i == last {
					c.LastAssistant[k] = true
				}
			}
		}
	}
	return c, nil
}

// turnSpan returns the byte span of assistant message i in full.
func (t *Tokenizer) turnSpan(tmpl *jinja.Template, src string, msgs []Message, i int, full string, from int, extra map[string]any) (int, int, error) {
	head, err := t.render(tmpl, src, msgs[:i], true, extra)
	if err != nil {
		return 0, 0, fmt.Errorf("render the prefix before it with the generation prompt: %w", err)
	}
	if !strings.HasPrefix(full, head) {
		return 0, 0, fmt.Errorf("the template renders msgs[:%d] + generation prompt as %q, which is not a prefix of the conversation", i, tail(head))
	}
	start := len(head)
	if start < from {
		return 0, 0, fmt.Errorf("turn starts at byte %d, inside the previous assistant turn ending at %d", start, from)
	}
	through, err := t.render(tmpl, src, msgs[:i+1], false, extra)
	if err != nil {
		return 0, 0, fmt.Errorf("render the conversation through it: %w", err)
	}
	var end int
	if strings.HasPrefix(full, through) && len(through) >= start {
		end = len(through)
	} else {
		// Some templates (Qwen3) render a turn differently once later
		// turns follow it (reasoning is dropped from history). The turn
		// then ends where the rendering through it ends after its content:
		// find that trailer (e.g. "<|im_end|>\n") after the turn start.
		trailer := through
		if k := strings.LastIndex(through, msgs[i].Content); msgs[i].Content != "" && k >= 0 {
			trailer = through[k+len(msgs[i].Content):]
		} else {
			return 0, 0, fmt.Errorf("the template renders msgs[:%d] inconsistently with the conversation and the message content is not found in it", i+1)
		}
		if trailer == "" {
			return 0, 0, fmt.Errorf("the template renders msgs[:%d] inconsistently with the conversation and emits nothing after the content", i+1)
		}
		k := strings.Index(full[start:], msgs[i].Content+trailer)
		if k >= 0 {
			end = start + k + len(msgs[i].Content) + len(trailer)
		} else if k = strings.Index(full[start:], trailer); k >= 0 {
			end = start + k + len(trailer)
		} else {
			return 0, 0, fmt.Errorf("end of turn %q not found after byte %d", trailer, start)
		}
	}
	return start, t.trimTurnEnd(full, start, end), nil
}

// trimTurnEnd drops the whitespace a template writes after a turn's final
// added token (the "\n" after <|im_end|>): the model stops at the token and
// never generates the separator.
func (t *Tokenizer) trimTurnEnd(full string, start, end int) int {
	e := end
	for e > start && (full[e-1] == '\n' || full[e-1] == ' ' || full[e-1] == '\r' || full[e-1] == '\t') {
		e--
	}
	if e == end {
		return end
	}
	for content := range t.addedByContent {
		if strings.HasSuffix(full[start:e], content) {
			return e
		}
	}
	return end
}

func tail(s string) string {
	if len(s) > 80 {
		return "..." + s[len(s)-80:]
	}
	return s
}
