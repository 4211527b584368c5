package tokenizer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"golang.org/x/text/unicode/norm"
)

// Train learns a byte-level BPE tokenizer from corpus and returns its
// tokenizer.json, laid out like Qwen's: NFC normalizer, the Qwen split
// regex followed by a ByteLevel pre-tokenizer, ByteLevel decoder, the 256
// byte tokens first (id = byte value), merged tokens next, and the special
// tokens as added tokens after them. vocabSize counts all three; training
// stops early when no pair occurs any more.
//
// Merges are chosen by highest pair count; ties go to the pair with the
// smaller (left id, right id), the rule HF's trainer uses, so the result
// depends only on the corpus. Pair counts are updated incrementally, only
// in words containing the merged pair.
func Train(corpus []string, vocabSize int, special []string) ([]byte, error) {
	if vocabSize < 256+len(special) {
		return nil, fmt.Errorf("train: vocab size %d is below 256 byte tokens + %d special tokens", vocabSize, len(special))
	}
	seen := map[string]bool{}
	for i, s := range special {
		if s == "" || seen[s] {
			return nil, fmt.Errorf("train: special token %d %q is empty or repeated", i, s)
		}
		seen[s] = true
	}
	tr := newTrainer(corpus, special)
	tr.run(vocabSize - len(special))
	return tr.json(special)
}

type trainWord struct {
	sym   []int32
	count int64
}

type trainer struct {
	words  []trainWord
	toks   []string // byte-level spelling by id
	tokID  map[string]int32
	merges [][2]int32
	pairs  map[uint64]int64
	where  map[uint64][]int32
	heap   pairHeap
}

func newTrainer(corpus []string, special []string) *trainer {
	counts := map[string]int64{}
	split := handSplitter{kind: splitQwen, maxDigits: 1}
	for _, doc := range corpus {
		doc = norm.NFC.String(doc)
		// Special tokens are matched whole at encode time; keep their
		// text out of the merge statistics.
		for _, part := range splitOnAll(doc, special) {
			for i := 0; i < len(part); {
				j := split.next(part, i)
				counts[part[i:j]]++
				i = j
			}
		}
	}
	uniq := make([]string, 0, len(counts))
	for w := range counts {
		uniq = append(uniq, w)
	}
	sort.Strings(uniq)
	tr := &trainer{tokID: map[string]int32{}, pairs: map[uint64]int64{}, where: map[uint64][]int32{}}
	for b := 0; b < 256; b++ {
		s := string(byteToRune[b])
		tr.toks = append(tr.toks, s)
		tr.tokID[s] = int32(b)
	}
	for wi, w := range uniq {
		tw := trainWord{sym: make([]int32, len(w)), count: counts[w]}
		for i := 0; i < len(w); i++ {
			tw.sym[i] = int32(w[i])
		}
		tr.words = append(tr.words, tw)
		for i := 0; i+1 < len(tw.sym); i++ {
			k := pairKey(tw.sym[i], tw.sym[i+1])
			tr.pairs[k] += tw.count
			if l := tr.where[k]; len(l) == 0 || l[len(l)-1] != int32(wi) {
				tr.where[k] = append(l, int32(wi))
			}
		}
	}
	for k, c := range tr.pairs {
		tr.heap = append(tr.heap, pairCount{count: c, key: k})
	}
	tr.heap.init()
	return tr
}

// splitOnAll cuts s at every occurrence of any of the seps, dropping them.
func splitOnAll(s string, seps []string) []string {
	parts := []string{s}
	for _, sep := range seps {
		var next []string
		for _, p := range parts {
			next = append(next, strings.Split(p, sep)...)
		}
		parts = next
	}
	return parts
}

func (tr *trainer) run(target int) {
	stamp := make([]int32, len(tr.words))
	for i := range stamp {
		stamp[i] = -1
	}
	changed := map[uint64]bool{}
	for len(tr.toks) < target && len(tr.heap) > 0 {
		top := tr.heap.pop()
		cur := tr.pairs[top.key]
		if cur != top.count {
			// Stale entry: the count dropped since it was pushed.
			if cur > 0 {
				tr.heap.push(pairCount{count: cur, key: top.key})
			}
			continue
		}
		if cur <= 0 {
			break
		}
		a, b := int32(top.key>>32), int32(uint32(top.key))
		spelled := tr.toks[a] + tr.toks[b]
		id, ok := tr.tokID[spelled]
		if !ok {
			id = int32(len(tr.toks))
			tr.toks = append(tr.toks, spelled)
			tr.tokID[spelled] = id
		}
		tr.merges = append(tr.merges, [2]int32{a, b})
		mergeNo := int32(len(tr.merges))
		clear(changed)
		for _, wi := range tr.where[top.key] {
			if stamp[wi] == mergeNo {
				continue
			}
			stamp[wi] = mergeNo
			tr.mergeWord(wi, a, b, id, changed)
		}
		delete(tr.where, top.key)
		delete(tr.pairs, top.key)
		keys := make([]uint64, 0, len(changed))
		for k := range changed {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
		for _, k := range keys {
			if c := tr.pairs[k]; c > 0 {
				tr.heap.push(pairCount{count: c, key: k})
			}
		}
	}
}

// mergeWord replaces every (a, b) in word wi by id, left to right, and
// moves the word's count from the destroyed pairs to the created ones.
func (tr *trainer) mergeWord(wi int32, a, b, id int32, changed map[uint64]bool) {
	w := &tr.words[wi]
	s := w.sym
	out := s[:0]
	for i := 0; i < len(s); i++ {
		if i+1 < len(s) && s[i] == a && s[i+1] == b {
			if len(out) > 0 {
				x := out[len(out)-1]
				tr.pairs[pairKey(x, a)] -= w.count
				tr.addPair(pairKey(x, id), w.count, wi, changed)
			}
			if i+2 < len(s) {
				y := s[i+2]
				tr.pairs[pairKey(b, y)] -= w.count
				tr.addPair(pairKey(id, y), w.count, wi, changed)
			}
			tr.pairs[pairKey(a, b)] -= w.count
			out = append(out, id)
			i++
			continue
		}
		out = append(out, s[i])
	}
	w.sym = out
}

func (tr *trainer) addPair(k uint64, c int64, wi int32, changed map[uint64]bool) {
	tr.pairs[k] += c
	changed[k] = true
	if l := tr.where[k]; len(l) == 0 || l[len(l)-1] != wi {
		tr.where[k] = append(l, wi)
	}
}

// json writes the tokenizer.json. Merges use the "a b" string form, which
// every tokenizers version reads (byte-level spellings never contain a
// space).
func (tr *trainer) json(special []string) ([]byte, error) {
	var b bytes.Buffer
	str := func(s string) string {
		out, _ := json.Marshal(s)
		return string(out)
	}
	b.WriteString(`{"version":"1.0","truncation":null,"padding":null,"added_tokens":[`)
	for i, s := range special {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"id":%d,"content":%s,"single_word":false,"lstrip":false,"rstrip":false,"normalized":false,"special":true}`, len(tr.toks)+i, str(s))
	}
	bl := `{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":false,"use_regex":false}`
	fmt.Fprintf(&b, `],"normalizer":{"type":"NFC"},"pre_tokenizer":{"type":"Sequence","pretokenizers":[{"type":"Split","pattern":{"Regex":%s},"behavior":"Isolated","invert":false},%s]},"post_processor":%s,"decoder":%s,`, str(patternQwen2), bl, bl, bl)
	b.WriteString(`"model":{"type":"BPE","dropout":null,"unk_token":null,"continuing_subword_prefix":"","end_of_word_suffix":"","fuse_unk":false,"byte_fallback":false,"ignore_merges":false,"vocab":{`)
	for id, tok := range tr.toks {
		if id > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%s:%d", str(tok), id)
	}
	b.WriteString(`},"merges":[`)
	for i, m := range tr.merges {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(str(tr.toks[m[0]] + " " + tr.toks[m[1]]))
	}
	b.WriteString("]}}\n")
	if !json.Valid(b.Bytes()) {
		return nil, errors.New("train: produced invalid JSON")
	}
	return b.Bytes(), nil
}

type pairCount struct {
	count int64
	key   uint64
}

// before puts the most frequent pair first, ties to the smaller pair key
// (left id, then right id).
func (a pairCount) before(b pairCount) bool {
	if a.count != b.count {
		return a.count > b.count
	}
	return a.key < b.key
}

// pairHeap is a max-heap on count.
type pairHeap = binHeap[pairCount]
