package tokenizer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/text/unicode/norm"
)

// Load reads dir/tokenizer.json and, when present, dir/tokenizer_config.json.
func Load(dir string) (*Tokenizer, error) {
	cfg := filepath.Join(dir, "tokenizer_config.json")
	if _, err := os.Stat(cfg); err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("load tokenizer %s: %w", dir, err)
		}
		cfg = ""
	}
	return LoadFiles(filepath.Join(dir, "tokenizer.json"), cfg)
}

// LoadFiles loads a tokenizer.json and an optional tokenizer_config.json
// (pass "" to omit it).
func LoadFiles(tokenizerJSON, tokenizerConfigJSON string) (*Tokenizer, error) {
	data, err := os.ReadFile(tokenizerJSON)
	if err != nil {
		return nil, fmt.Errorf("load tokenizer: %w", err)
	}
	t, err := parseTokenizerJSON(data)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", tokenizerJSON, err)
	}
	if tokenizerConfigJSON != "" {
		cdata, err := os.ReadFile(tokenizerConfigJSON)
		if err != nil {
			return nil, fmt.Errorf("load tokenizer config: %w", err)
		}
		if err := t.parseConfig(cdata); err != nil {
			return nil, fmt.Errorf("load %s: %w", tokenizerConfigJSON, err)
		}
	}
	return t, nil
}

// Parse builds a Tokenizer from the bytes of a tokenizer.json (and of a
// tokenizer_config.json, which may be nil).
func Parse(tokenizerJSON, tokenizerConfigJSON []byte) (*Tokenizer, error) {
	t, err := parseTokenizerJSON(tokenizerJSON)
	if err != nil {
		return nil, fmt.Errorf("parse tokenizer.json: %w", err)
	}
	if tokenizerConfigJSON != nil {
		if err := t.parseConfig(tokenizerConfigJSON); err != nil {
			return nil, fmt.Errorf("parse tokenizer_config.json: %w", err)
		}
	}
	return t, nil
}

type fileJSON struct {
	AddedTokens   []addedToken    `json:"added_tokens"`
	Normalizer    json.RawMessage `json:"normalizer"`
	PreTokenizer  json.RawMessage `json:"pre_tokenizer"`
	PostProcessor json.RawMessage `json:"post_processor"`
	Decoder       json.RawMessage `json:"decoder"`
	Model         json.RawMessage `json:"model"`
}

// component is the shape shared by every tokenizer.json component.
type component struct {
	Type string `json:"type"`
	// Sequence members under their various keys.
	Normalizers   []json.RawMessage `json:"normalizers"`
	Pretokenizers []json.RawMessage `json:"pretokenizers"`
	Decoders      []json.RawMessage `json:"decoders"`
	Processors    []json.RawMessage `json:"processors"`
	// ByteLevel.
	AddPrefixSpace bool  `json:"add_prefix_space"`
	UseRegex       *bool `json:"use_regex"`
	// Split.
	Pattern  map[string]string `json:"pattern"`
	Behavior string            `json:"behavior"`
	Invert   bool              `json:"invert"`
}

func isNull(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) == 0 || string(raw) == "null"
}

func parseComponent(raw json.RawMessage, what string) (component, error) {
	var c component
	if err := json.Unmarshal(raw, &c); err != nil {
		return c, fmt.Errorf("%s: %w", what, err)
	}
	return c, nil
}

func parseTokenizerJSON(data []byte) (*Tokenizer, error) {
	var f fileJSON
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, err
	}
	t := &Tokenizer{}
	var err error
	if t.norm, err = parseNormalizer(f.Normalizer); err != nil {
		return nil, err
	}
	byteLevel := false
	if t.pre, err = parsePreTokenizer(f.PreTokenizer, &byteLevel); err != nil {
		return nil, err
	}
	// A ByteLevel step without regex or prefix space only marks the model
	// as byte-level; drop it so the common case is a single split.
	steps := t.pre[:0]
	for _, st := range t.pre {
		if st.sp != nil || st.prefixSpace {
			steps = append(steps, st)
		}
	}
	t.pre = steps
	if !byteLevel {
		return nil, errors.New("pre_tokenizer: no ByteLevel pre-tokenizer; only byte-level BPE tokenizers are supported")
	}
	if err := checkDecoder(f.Decoder); err != nil {
		return nil, err
	}
	if err := checkPostProcessor(f.PostProcessor); err != nil {
		return nil, err
	}
	vocab, err := t.parseModel(f.Model)
	if err != nil {
		return nil, err
	}
	return t, t.finish(vocab, f.AddedTokens)
}

func parseNormalizer(raw json.RawMessage) (normalizer, error) {
	var n normalizer
	if isNull(raw) {
		return n, nil
	}
	c, err := parseComponent(raw, "normalizer")
	if err != nil {
		return n, err
	}
	switch c.Type {
	case "NFC":
		n.forms = append(n.forms, norm.NFC)
	case "NFD":
		n.forms = append(n.forms, norm.NFD)
	case "NFKC":
		n.forms = append(n.forms, norm.NFKC)
	case "NFKD":
		n.forms = append(n.forms, norm.NFKD)
	case "Sequence":
		for i, sub := range c.Normalizers {
			s, err := parseNormalizer(sub)
			if err != nil {
				return n, fmt.Errorf("normalizer Sequence[%d]: %w", i, err)
			}
			n.forms = append(n.forms, s.forms...)
		}
	default:
		return n, fmt.Errorf("normalizer: unsupported type %q (supported: NFC, NFD, NFKC, NFKD, Sequence)", c.Type)
	}
	return n, nil
}

// preStep is one pre-tokenizer of the (flattened) sequence.
type preStep struct {
	sp          splitter // nil: pieces pass through unsplit
	prefixSpace bool     // ByteLevel add_prefix_space: prepend " " to a piece not starting with one
}

func parsePreTokenizer(raw json.RawMessage, byteLevel *bool) ([]preStep, error) {
	if isNull(raw) {
		return nil, nil
	}
	c, err := parseComponent(raw, "pre_tokenizer")
	if err != nil {
		return nil, err
	}
	switch c.Type {
	case "Sequence":
		var steps []preStep
		for i, sub := range c.Pretokenizers {
			s, err := parsePreTokenizer(sub, byteLevel)
			if err != nil {
				return nil, fmt.Errorf("pre_tokenizer Sequence[%d]: %w", i, err)
			}
			steps = append(steps, s...)
		}
		return steps, nil
	case "ByteLevel":
		*byteLevel = true
		st := preStep{prefixSpace: c.AddPrefixSpace}
		if c.UseRegex == nil || *c.UseRegex { // HF's default is true
			st.sp, _ = newSplitter(patternGPT2, false)
		}
		return []preStep{st}, nil
	case "Split":
		if c.Behavior != "Isolated" {
			return nil, fmt.Errorf("pre_tokenizer Split: unsupported behavior %q (supported: Isolated)", c.Behavior)
		}
		// With Isolated both matches and gaps become pieces, so invert
		// changes nothing.
		var sp splitter
		if re, ok := c.Pattern["Regex"]; ok {
			sp, err = newSplitter(re, false)
		} else if s, ok := c.Pattern["String"]; ok {
			sp, err = newSplitter(s, true)
		} else {
			return nil, errors.New("pre_tokenizer Split: pattern has neither Regex nor String")
		}
		if err != nil {
			return nil, fmt.Errorf("pre_tokenizer Split: %w", err)
		}
		return []preStep{{sp: sp}}, nil
	default:
		return nil, fmt.Errorf("pre_tokenizer: unsupported type %q (supported: ByteLevel, Split, Sequence)", c.Type)
	}
}

func checkDecoder(raw json.RawMessage) error {
	if isNull(raw) {
		return errors.New("decoder: missing; a byte-level tokenizer needs the ByteLevel decoder")
	}
	c, err := parseComponent(raw, "decoder")
	if err != nil {
		return err
	}
	switch c.Type {
	case "ByteLevel":
		return nil
	case "Sequence":
		if len(c.Decoders) != 1 {
			return fmt.Errorf("decoder Sequence: unsupported with %d members (supported: one ByteLevel)", len(c.Decoders))
		}
		return checkDecoder(c.Decoders[0])
	default:
		return fmt.Errorf("decoder: unsupported type %q (supported: ByteLevel)", c.Type)
	}
}

// checkPostProcessor accepts the post-processors of byte-level models.
// They only add special tokens (never done here: Encode is HF's
// add_special_tokens=False) or trim offsets, so they are not applied.
func checkPostProcessor(raw json.RawMessage) error {
	if isNull(raw) {
		return nil
	}
	c, err := parseComponent(raw, "post_processor")
	if err != nil {
		return err
	}
	switch c.Type {
	case "ByteLevel", "TemplateProcessing", "RobertaProcessing", "BertProcessing":
		return nil
	case "Sequence":
		for i, sub := range c.Processors {
			if err := checkPostProcessor(sub); err != nil {
				return fmt.Errorf("post_processor Sequence[%d]: %w", i, err)
			}
		}
		return nil
	default:
		return fmt.Errorf("post_processor: unsupported type %q", c.Type)
	}
}

type modelJSON struct {
	Type                    string          `json:"type"`
	Vocab                   map[string]int  `json:"vocab"`
	Merges                  json.RawMessage `json:"merges"`
	Dropout                 *float64        `json:"dropout"`
	UnkToken                *string         `json:"unk_token"`
	ContinuingSubwordPrefix *string         `json:"continuing_subword_prefix"`
	EndOfWordSuffix         *string         `json:"end_of_word_suffix"`
	ByteFallback            bool            `json:"byte_fallback"`
	IgnoreMerges            bool            `json:"ignore_merges"`
}

func (t *Tokenizer) parseModel(raw json.RawMessage) (map[string]int, error) {
	if isNull(raw) {
		return nil, errors.New("model: missing")
	}
	var m modelJSON
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	if m.Type == "" && !isNull(m.Merges) {
		m.Type = "BPE" // files written before the type field existed
	}
	switch {
	case m.Type != "BPE":
		return nil, fmt.Errorf("model: unsupported type %q (supported: BPE)", m.Type)
	case m.Dropout != nil && *m.Dropout > 0:
		return nil, fmt.Errorf("model BPE: dropout %g is not supported (nondeterministic)", *m.Dropout)
	case m.ContinuingSubwordPrefix != nil && *m.ContinuingSubwordPrefix != "":
		return nil, fmt.Errorf("model BPE: continuing_subword_prefix %q is not supported", *m.ContinuingSubwordPrefix)
	case m.EndOfWordSuffix != nil && *m.EndOfWordSuffix != "":
		return nil, fmt.Errorf("model BPE: end_of_word_suffix %q is not supported", *m.EndOfWordSuffix)
	case m.ByteFallback:
		return nil, errors.New("model BPE: byte_fallback is not supported (not a byte-level model)")
	}
	b := &t.model
	b.unk = -1
	if m.UnkToken != nil {
		id, ok := m.Vocab[*m.UnkToken]
		if !ok {
			return nil, fmt.Errorf("model BPE: unk_token %q is not in the vocab", *m.UnkToken)
		}
		b.unk = int32(id)
	}
	for i := range b.byteIDs {
		b.byteIDs[i] = -1
		if id, ok := m.Vocab[string(byteToRune[i])]; ok {
			b.byteIDs[i] = int32(id)
		}
	}
	merges, err := parseMerges(m.Merges)
	if err != nil {
		return nil, fmt.Errorf("model BPE: %w", err)
	}
	b.merges = make(map[uint64]uint64, len(merges))
	for rank, mr := range merges {
		l, r := mr[0], mr[1]
		li, lok := m.Vocab[l]
		ri, rok := m.Vocab[r]
		ni, nok := m.Vocab[l+r]
		if !lok || !rok || !nok {
			return nil, fmt.Errorf("model BPE: merges[%d] %q %q: a token of the merge is not in the vocab", rank, l, r)
		}
		k := pairKey(int32(li), int32(ri))
		if _, dup := b.merges[k]; dup {
			continue // HF keeps the first (lowest) rank
		}
		b.merges[k] = uint64(rank)<<32 | uint64(uint32(ni))
	}
	if m.IgnoreMerges {
		b.ignoreMerges = true
		b.rawVocab = make(map[string]int32, len(m.Vocab))
		for tok, id := range m.Vocab {
			if raw, ok := byteLevelDecode(tok); ok {
				b.rawVocab[raw] = int32(id)
			}
		}
	}
	return m.Vocab, nil
}

// parseMerges accepts both merge spellings HF writes: "a b" strings
// (tokenizers < 0.20) and ["a", "b"] pairs.
func parseMerges(raw json.RawMessage) ([][2]string, error) {
	if isNull(raw) {
		return nil, nil
	}
	var strs []string
	if err := json.Unmarshal(raw, &strs); err == nil {
		out := make([][2]string, len(strs))
		for i, s := range strs {
			l, r, ok := strings.Cut(s, " ")
			if !ok || strings.Contains(r, " ") {
				return nil, fmt.Errorf("merges[%d] %q is not two space-separated tokens", i, s)
			}
			out[i] = [2]string{l, r}
		}
		return out, nil
	}
	var pairs [][]string
	if err := json.Unmarshal(raw, &pairs); err != nil {
		return nil, fmt.Errorf("merges: want a list of \"a b\" strings or [\"a\", \"b\"] pairs: %w", err)
	}
	out := make([][2]string, len(pairs))
	for i, p := range pairs {
		if len(p) != 2 {
			return nil, fmt.Errorf("merges[%d] has %d tokens, want 2", i, len(p))
		}
		out[i] = [2]string{p[0], p[1]}
	}
	return out, nil
}

// byteLevelDecode maps a byte-level spelling back to raw bytes.
func byteLevelDecode(tok string) (string, bool) {
	buf := make([]byte, 0, len(tok))
	for _, r := range tok {
		b, ok := runeToByte[r]
		if !ok {
			return "", false
		}
		buf = append(buf, b)
	}
	return string(buf), true
}

func (t *Tokenizer) finish(vocab map[string]int, added []addedToken) error {
	maxID := -1
	for _, id := range vocab {
		if id < 0 {
			return fmt.Errorf("model: negative id %d in vocab", id)
		}
		maxID = max(maxID, id)
	}
	// HF ignores the ids written in added_tokens: it gives a token the id
	// its content already has, or else the next id after the model vocab
	// (counted by entries) and the added tokens so far. For well-formed
	// files this is the written id; follow HF where they differ.
	addedIDs := map[string]int{}
	maxAdded := -1
	for i := range added {
		a := &added[i]
		if a.Content == "" {
			return fmt.Errorf("added_tokens[%d] (id %d): empty content", i, a.ID)
		}
		if id, ok := addedIDs[a.Content]; ok {
			a.ID = id
		} else if id, ok := vocab[a.Content]; ok {
			a.ID = id
		} else if maxAdded < 0 || maxAdded < len(vocab) {
			a.ID = len(vocab)
		} else {
			a.ID = maxAdded + 1
		}
		addedIDs[a.Content] = a.ID
		maxAdded = max(maxAdded, a.ID)
		maxID = max(maxID, a.ID)
	}
	t.vocab = vocab
	t.idTok = make([]string, maxID+1)
	t.idKnown = make([]bool, maxID+1)
	t.isSpecial = make([]bool, maxID+1)
	t.isAdded = make([]bool, maxID+1)
	for tok, id := range vocab {
		t.idTok[id] = tok
		t.idKnown[id] = true
	}
	t.addedByContent = make(map[string]int, len(added))
	var raw, normd []addedToken
	var rawPats, normPats []string
	for _, a := range added {
		t.idTok[a.ID] = a.Content
		t.idKnown[a.ID] = true
		t.isAdded[a.ID] = true
		t.addedByContent[a.Content] = a.ID
		if a.Special {
			t.isSpecial[a.ID] = true
			t.specialIDs = append(t.specialIDs, a.ID)
		}
		if a.Normalized {
			p, _ := t.norm.apply(a.Content, false)
			normd, normPats = append(normd, a), append(normPats, p)
		} else {
			raw, rawPats = append(raw, a), append(rawPats, a.Content)
		}
	}
	sort.Ints(t.specialIDs)
	t.rawAdded = newAddedMatcher(raw, rawPats)
	t.normAdded = newAddedMatcher(normd, normPats)
	t.bos, t.eos, t.pad, t.unk = -1, -1, -1, -1
	t.cache = newWordCache()
	return nil
}

// configJSON is the part of tokenizer_config.json used here.
type configJSON struct {
	ChatTemplate json.RawMessage `json:"chat_template"`
	BOS          json.RawMessage `json:"bos_token"`
	EOS          json.RawMessage `json:"eos_token"`
	PAD          json.RawMessage `json:"pad_token"`
	UNK          json.RawMessage `json:"unk_token"`
}

func (t *Tokenizer) parseConfig(data []byte) error {
	var c configJSON
	if err := json.Unmarshal(data, &c); err != nil {
		return err
	}
	var err error
	if t.chatTemplate, err = parseChatTemplateField(c.ChatTemplate); err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		raw  json.RawMessage
		str  *string
		id   *int
	}{
		{"bos_token", c.BOS, &t.bosTok, &t.bos},
		{"eos_token", c.EOS, &t.eosTok, &t.eos},
		{"pad_token", c.PAD, &t.padTok, &t.pad},
		{"unk_token", c.UNK, &t.unkTok, &t.unk},
	} {
		s, ok, err := parseTokenField(f.raw)
		if err != nil {
			return fmt.Errorf("%s: %w", f.name, err)
		}
		if !ok {
			continue
		}
		*f.str = s
		if id, ok := t.TokenID(s); ok {
			*f.id = id
		}
	}
	t.hasConfig = true
	return nil
}

// parseTokenField reads a special token written as a string, null, or an
// AddedToken object {"content": ...}.
func parseTokenField(raw json.RawMessage) (string, bool, error) {
	if isNull(raw) {
		return "", false, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, true, nil
	}
	var obj struct {
		Content *string `json:"content"`
	}
	if err := json.Unmarshal(raw, &obj); err != nil || obj.Content == nil {
		return "", false, fmt.Errorf("want a string, null or {\"content\": ...}, got %.80s", raw)
	}
	return *obj.Content, true, nil
}

// parseChatTemplateField accepts a template string or HF's list of named
// templates, from which the one named "default" is used.
func parseChatTemplateField(raw json.RawMessage) (string, error) {
	if isNull(raw) {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, nil
	}
	var named []struct {
		Name     string `json:"name"`
		Template string `json:"template"`
	}
	if err := json.Unmarshal(raw, &named); err != nil {
		return "", fmt.Errorf("chat_template: want a string or a list of {name, template}: %w", err)
	}
	for _, n := range named {
		if n.Name == "default" {
			return n.Template, nil
		}
	}
	return "", errors.New("chat_template: list has no template named \"default\"")
}

func jsonUnmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }
