package tokenizer

import (
	"sync"
)

// Tokenizer is a loaded byte-level BPE tokenizer. It is immutable after
// loading (its caches are concurrency-safe) and may be shared by goroutines.
type Tokenizer struct {
	model     bpe
	norm      normalizer
	pre       []preStep
	rawAdded  addedMatcher // added tokens matched on the raw text
	normAdded addedMatcher // added tokens with normalized=true, matched after normalization

	vocab          map[string]int // model vocab, byte-level spellings
	addedByContent map[string]int
	idTok          []string
	idKnown        []bool
	isAdded        []bool
	isSpecial      []bool
	specialIDs     []int

	hasConfig                      bool
	chatTemplate                   string
	bosTok, eosTok, padTok, unkTok string
	bos, eos, pad, unk             int

	cache     *wordCache
	scratch   sync.Pool // *wordScratch
	templates sync.Map  // template source -> *jinja.Template
}

func (t *Tokenizer) getScratch() *wordScratch {
	if sc, ok := t.scratch.Get().(*wordScratch); ok {
		return sc
	}
	return &wordScratch{}
}

func (t *Tokenizer) putScratch(sc *wordScratch) {
	sc.ops = 0
	t.scratch.Put(sc)
}

// Encode returns the ids of text like HF's encode(text,
// add_special_tokens=False): added and special tokens written in the text
// are recognised, nothing is prepended or appended.
func (t *Tokenizer) Encode(text string) []int {
	ids, _, _ := t.encode(text, false)
	return ids
}

// EncodeWithOffsets is Encode plus, for each id, the [start, end) byte span
// of text it covers. Where NFC normalization rewrote characters, a token
// covers the whole original segment the normalized bytes came from; offsets
// are not trimmed of spaces (HF's trim_offsets is not applied).
func (t *Tokenizer) EncodeWithOffsets(text string) ([]int, [][2]int) {
	ids, offs, _ := t.encode(text, true)
	return ids, offs
}

// encode also returns the number of elementary operations (pair look-ups
// and heap steps) for the linearity test.
func (t *Tokenizer) encode(text string, withOffsets bool) ([]int, [][2]int, int64) {
	sc := t.getScratch()
	ids := make([]int, 0, len(text)/3+1)
	var offs [][2]int
	if withOffsets {
		offs = make([][2]int, 0, len(text)/3+1)
	}
	for pos := 0; pos <= len(text); {
		ms, me, k := t.rawAdded.find(text, pos)
		end := len(text)
		if k >= 0 {
			end = ms
		}
		if end > pos {
			ids, offs = t.encodeChunk(text[pos:end], pos, ids, offs, withOffsets, sc)
		}
		if k < 0 {
			break
		}
		ids = append(ids, t.rawAdded.toks[k].ID)
		if withOffsets {
			offs = append(offs, [2]int{ms, me})
		}
		pos = me
	}
	ops := sc.ops
	t.putScratch(sc)
	return ids, offs, ops
}

// encodeChunk encodes text free of raw-matched added tokens, starting at
// byte base of the caller's text.
func (t *Tokenizer) encodeChunk(chunk string, base int, ids []int, offs [][2]int, withOffsets bool, sc *wordScratch) ([]int, [][2]int) {
	ns, nmap := t.norm.apply(chunk, withOffsets)
	mark := len(offs)
	for pos := 0; pos <= len(ns); {
		ms, me, k := t.normAdded.find(ns, pos)
		end := len(ns)
		if k >= 0 {
			end = ms
		}
		if end > pos {
			ids, offs = t.encodeNormalized(ns[pos:end], pos, ids, offs, withOffsets, sc)
		}
		if k < 0 {
			break
		}
		ids = append(ids, t.normAdded.toks[k].ID)
		if withOffsets {
			offs = append(offs, [2]int{ms, me})
		}
		pos = me
	}
	if withOffsets {
		// Offsets so far are in normalized coordinates of this chunk.
		for i := mark; i < len(offs); i++ {
			a, b := offs[i][0], offs[i][1]
			if nmap != nil {
				switch {
				case a >= len(nmap):
					a, b = len(chunk), len(chunk)
				case b <= a:
					a = int(nmap[a][0])
					b = a
				default:
					a, b = int(nmap[a][0]), int(nmap[b-1][1])
				}
			}
			offs[i] = [2]int{base + a, base + b}
		}
	}
	return ids, offs
}

// piece is a pre-token: its text, and where it sits in the normalized
// chunk. pre counts virtual leading bytes (an added prefix space) that map
// to no input: byte k of text comes from chunk byte base+max(0, k-pre).
type piece struct {
	text      string
	base, pre int
}

func (t *Tokenizer) encodeNormalized(s string, base int, ids []int, offs [][2]int, withOffsets bool, sc *wordScratch) ([]int, [][2]int) {
	if len(t.pre) == 1 && !t.pre[0].prefixSpace && t.pre[0].sp != nil {
		// The usual case (one split, no prefix space): pieces are plain
		// substrings, so skip building piece values, and with a
		// hand-written splitter stream them without a span list.
		if h, ok := t.pre[0].sp.(handSplitter); ok {
			for i := 0; i < len(s); {
				j := h.next(s, i)
				ids, offs = t.encodePiece(piece{text: s[i:j], base: base + i}, ids, offs, withOffsets, sc)
				i = j
			}
			return ids, offs
		}
		var err error
		spans := sc.subs[:0]
		spans, err = t.pre[0].sp.split(s, spans)
		if err == nil {
			for _, sp := range spans {
				ids, offs = t.encodePiece(piece{text: s[sp[0]:sp[1]], base: base + sp[0]}, ids, offs, withOffsets, sc)
			}
			sc.subs = spans
			return ids, offs
		}
	}
	cur := []piece{{text: s, base: base}}
	for _, st := range t.pre {
		var nxt []piece
		for _, p := range cur {
			if st.prefixSpace && (len(p.text) == 0 || p.text[0] != ' ') {
				p.text = " " + p.text
				p.pre++
			}
			if st.sp == nil {
				nxt = append(nxt, p)
				continue
			}
			var err error
			sc.spans, err = st.sp.split(p.text, sc.spans[:0])
			if err != nil {
				// Only regexp2's backtracking limit can fail here; keep the
				// piece whole rather than dropping text.
				nxt = append(nxt, p)
				continue
			}
			for _, sp := range sc.spans {
				a, b := sp[0], sp[1]
				nxt = append(nxt, piece{text: p.text[a:b], base: p.base + max(0, a-p.pre), pre: max(0, p.pre-a)})
			}
		}
		cur = nxt
	}
	for _, p := range cur {
		ids, offs = t.encodePiece(p, ids, offs, withOffsets, sc)
	}
	return ids, offs
}

// encodePiece runs BPE on one pre-token, through the word cache.
func (t *Tokenizer) encodePiece(p piece, ids []int, offs [][2]int, withOffsets bool, sc *wordScratch) ([]int, [][2]int) {
	var lens []int32
	sc.ops++
	cacheable := t.cache != nil && len(p.text) <= cacheMaxWord
	hit := false
	if cacheable {
		var w cachedWord
		if w, hit = t.cache.get(p.text); hit {
			for _, id := range w.ids {
				ids = append(ids, int(id))
			}
			lens = w.lens
		}
	}
	if !hit {
		n0 := len(ids)
		lens = sc.lensBuf[:0]
		ids = t.model.encodeWord(p.text, sc, ids, &lens)
		sc.lensBuf = lens
		if cacheable {
			t.cache.put(p.text, ids[n0:], lens)
		}
	}
	if withOffsets {
		k := 0
		for _, l := range lens {
			a := p.base + max(0, k-p.pre)
			b := p.base + max(0, k+int(l)-p.pre)
			offs = append(offs, [2]int{a, b})
			k += int(l)
		}
	}
	return ids, offs
}

// Decode turns ids back into text like HF's decode: byte-level tokens are
// joined into bytes and invalid UTF-8 becomes U+FFFD per maximal invalid
// subpart. With skipSpecial, added tokens marked special are left out.
// Unknown ids are skipped.
func (t *Tokenizer) Decode(ids []int, skipSpecial bool) string {
	buf := make([]byte, 0, len(ids)*4)
	for _, id := range ids {
		if id < 0 || id >= len(t.idTok) || !t.idKnown[id] {
			continue
		}
		if skipSpecial && t.isSpecial[id] {
			continue
		}
		buf = appendByteLevelDecoded(buf, t.idTok[id])
	}
	return lossyUTF8(buf)
}

// TokenID returns the id of a token given as an added token's content or
// as its vocab spelling (byte-level, e.g. "Ġthe" for " the").
func (t *Tokenizer) TokenID(tok string) (int, bool) {
	if id, ok := t.addedByContent[tok]; ok {
		return id, true
	}
	id, ok := t.vocab[tok]
	return id, ok
}

// Token returns the spelling of id as stored in tokenizer.json (byte-level
// for vocab tokens), or "" for an unknown id.
func (t *Tokenizer) Token(id int) string {
	if id < 0 || id >= len(t.idTok) {
		return ""
	}
	return t.idTok[id]
}

// VocabSize is the largest id (vocab or added token) plus one.
func (t *Tokenizer) VocabSize() int { return len(t.idTok) }

// SpecialIDs returns the ids of added tokens marked special, ascending.
func (t *Tokenizer) SpecialIDs() []int { return append([]int(nil), t.specialIDs...) }

// IsSpecial reports whether id is an added token marked special.
func (t *Tokenizer) IsSpecial(id int) bool {
	return id >= 0 && id < len(t.isSpecial) && t.isSpecial[id]
}

// EOS returns the id of tokenizer_config.json's eos_token.
func (t *Tokenizer) EOS() (int, bool) { return t.eos, t.eos >= 0 }

// BOS returns the id of tokenizer_config.json's bos_token.
func (t *Tokenizer) BOS() (int, bool) { return t.bos, t.bos >= 0 }

// PAD returns the id of tokenizer_config.json's pad_token.
func (t *Tokenizer) PAD() (int, bool) { return t.pad, t.pad >= 0 }

// ChatTemplate returns tokenizer_config.json's chat template ("" if none).
func (t *Tokenizer) ChatTemplate() string { return t.chatTemplate }
