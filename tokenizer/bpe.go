package tokenizer

import "math"

// bpe holds the merge table of a byte-level BPE model in the form the
// encoder needs: symbol ids for raw bytes and merges keyed by id pairs.
type bpe struct {
	byteIDs      [256]int32        // id of each byte's one-character token; -1 when missing
	merges       map[uint64]uint64 // left<<32|right -> rank<<32|merged id
	unk          int32             // unknown-token id or -1 (used only for bytes without a token)
	ignoreMerges bool              // Llama-3: a pre-token that is itself in the vocab is emitted as is
	rawVocab     map[string]int32  // raw-byte spelling -> id, only with ignoreMerges
}

const noRank = math.MaxInt32

// shortWord is the length up to which a word is merged by rescanning its
// pair ranks (quadratic but allocation-free and fastest for typical words);
// longer words use a heap so that a pathological input stays n log n.
const shortWord = 48

func pairKey(a, b int32) uint64 { return uint64(uint32(a))<<32 | uint64(uint32(b)) }

func (m *bpe) lookup(a, b int32) (rank, id int32) {
	v, ok := m.merges[pairKey(a, b)]
	if !ok {
		return noRank, -1
	}
	return int32(v >> 32), int32(uint32(v))
}

// wordScratch is per-call working memory, pooled by the Tokenizer.
type wordScratch struct {
	sym     []int32
	lens    []int32
	ranks   []int32
	prev    []int32
	next    []int32
	heap    mergeHeap
	spans   [][2]int
	subs    [][2]int
	lensBuf []int32
	// ops counts pair look-ups and heap operations; tests use it to check
	// that encoding is linear without timing anything.
	ops int64
}

// encodeWord appends the ids of one pre-token (raw bytes) to ids and, when
// lens is non-nil, the byte length of each id to *lens.
func (m *bpe) encodeWord(word string, sc *wordScratch, ids []int, lens *[]int32) []int {
	if m.ignoreMerges {
		if id, ok := m.rawVocab[word]; ok {
			if lens != nil {
				*lens = append(*lens, int32(len(word)))
			}
			return append(ids, int(id))
		}
	}
	sym, ln := sc.sym[:0], sc.lens[:0]
	for i := 0; i < len(word); i++ {
		id := m.byteIDs[word[i]]
		if id < 0 {
			if m.unk < 0 {
				// HF drops a character it has neither a token nor an unk for.
				continue
			}
			id = m.unk
		}
		sym = append(sym, id)
		ln = append(ln, 1)
	}
	var n int
	if len(sym) <= shortWord {
		n = m.mergeShort(sym, ln, sc)
	} else {
		n = m.mergeLong(sym, ln, sc)
	}
	for i := 0; i < n; i++ {
		ids = append(ids, int(sym[i]))
	}
	if lens != nil {
		*lens = append(*lens, ln[:n]...)
	}
	sc.sym, sc.lens = sym, ln
	return ids
}

// mergeShort repeatedly merges the lowest-ranked adjacent pair (leftmost on
// ties), which is exactly the order HF's (rank, position) heap produces.
func (m *bpe) mergeShort(sym, ln []int32, sc *wordScratch) int {
	n := len(sym)
	if n < 2 {
		return n
	}
	ranks := sc.ranks[:0]
	for i := 0; i+1 < n; i++ {
		r, _ := m.lookup(sym[i], sym[i+1])
		ranks = append(ranks, r)
	}
	sc.ops += int64(n)
	for n > 1 {
		best, bestRank := -1, int32(noRank)
		sc.ops += int64(n)
		for i := 0; i+1 < n; i++ {
			if ranks[i] < bestRank {
				best, bestRank = i, ranks[i]
			}
		}
		if best < 0 {
			break
		}
		_, id := m.lookup(sym[best], sym[best+1])
		sym[best] = id
		ln[best] += ln[best+1]
		copy(sym[best+1:n-1], sym[best+2:n])
		copy(ln[best+1:n-1], ln[best+2:n])
		copy(ranks[best:n-2], ranks[best+1:n-1])
		n--
		if best > 0 {
			ranks[best-1], _ = m.lookup(sym[best-1], sym[best])
		}
		if best+1 < n {
			ranks[best], _ = m.lookup(sym[best], sym[best+1])
		}
		sc.ops += 3
	}
	sc.ranks = ranks
	return n
}

// mergeLong is HF's algorithm: a linked list of symbols and a heap of
// candidate merges ordered by (rank, position); stale entries are skipped
// when popped.
func (m *bpe) mergeLong(sym, ln []int32, sc *wordScratch) int {
	n := len(sym)
	prev, next := grow32(sc.prev, n), grow32(sc.next, n)
	for i := 0; i < n; i++ {
		prev[i], next[i] = int32(i-1), int32(i+1)
	}
	next[n-1] = -1
	h := sc.heap[:0]
	for i := 0; i+1 < n; i++ {
		if r, id := m.lookup(sym[i], sym[i+1]); r != noRank {
			h = append(h, mergeCand{rank: r, pos: int32(i), id: id})
		}
	}
	sc.ops += int64(n)
	h.init()
	for len(h) > 0 {
		c := h.pop()
		sc.ops++
		p := c.pos
		if ln[p] == 0 || next[p] < 0 {
			continue
		}
		q := next[p]
		if r, id := m.lookup(sym[p], sym[q]); r != c.rank || id != c.id {
			continue
		}
		sym[p] = c.id
		ln[p] += ln[q]
		ln[q] = 0
		next[p] = next[q]
		if next[q] >= 0 {
			prev[next[q]] = p
		}
		if pp := prev[p]; pp >= 0 {
			if r, id := m.lookup(sym[pp], sym[p]); r != noRank {
				h.push(mergeCand{rank: r, pos: pp, id: id})
			}
		}
		if nq := next[p]; nq >= 0 {
			if r, id := m.lookup(sym[p], sym[nq]); r != noRank {
				h.push(mergeCand{rank: r, pos: p, id: id})
			}
		}
		sc.ops += 2
	}
	sc.heap, sc.prev, sc.next = h, prev, next
	k := 0
	for i := int32(0); i >= 0; i = next[i] {
		sym[k], ln[k] = sym[i], ln[i]
		k++
	}
	return k
}

func grow32(s []int32, n int) []int32 {
	if cap(s) < n {
		return make([]int32, n)
	}
	return s[:n]
}

type mergeCand struct {
	rank, pos, id int32
}

// before orders merges by rank, then leftmost position first (HF's order).
func (a mergeCand) before(b mergeCand) bool {
	if a.rank != b.rank {
		return a.rank < b.rank
	}
	return a.pos < b.pos
}

// mergeHeap is a min-heap of merge candidates.
type mergeHeap = binHeap[mergeCand]
