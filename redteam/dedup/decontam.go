package dedup

import (
	"slices"
	"strings"
	"unicode"
)

// Hit says why a training row was dropped: it shares a normalised 13-token
// sequence with item Item of suite Suite ("13-gram"), contains the whole of
// a shorter item or, for items under minShortTokens tokens, equals it
// ("short-prompt"), or is a MinHash near-duplicate of it
// ("minhash", with the exact Jaccard of the normalised shingle sets).
type Hit struct {
	ID, Suite string
	Item      int
	Reason    string
	Jaccard   float64 `json:",omitempty"`
}

// Decontamination reasons of Hit.
const (
	ReasonGram    = "13-gram"
	ReasonShort   = "short-prompt"
	ReasonMinHash = "minhash"
)

// minShortTokens is the shortest evaluation prompt looked for inside a
// longer row when it has fewer tokens than a gram: shorter ones ("how do I
// kill a process") are too generic to call a copy unless they are the whole
// row.
const minShortTokens = 8

// minNearShingles is the fewest shingles an evaluation prompt needs for
// MinHash matching: one changed word moves the Jaccard of shorter texts
// across any threshold ("buy a can of coke" / "buy a can of paint"), so
// they are left to the exact rules.
const minNearShingles = 8

// keywords survive identifier normalisation inside code spans.
var keywords = func() map[string]bool {
	m := map[string]bool{}
	for _, k := range strings.Fields("def return if else elif for while in import from as class try except finally with lambda not and or is none true false pass break continue yield raise global print self int str float list dict set func var const package type struct interface map range go defer select switch case default public private static void new function let this null") {
		m[k] = true
	}
	return m
}()

// codeTokens lowercases text and maps identifiers to "<id>": inside
// backtick spans and fenced blocks every non-keyword word, elsewhere only
// snake_case and camelCase words, so renamed identifiers still match while
// prose keeps its words.
func codeTokens(text string) []string {
	var out []string
	inCode := false
	for i, part := range strings.Split(text, "`") {
		if i > 0 {
			inCode = !inCode
		}
		for _, w := range strings.FieldsFunc(part, func(r rune) bool {
			return !unicode.IsLetter(r) && !unicode.IsDigit(r) && r != '_'
		}) {
			lw := strings.ToLower(w)
			camel := strings.ToLower(w[:1]) == w[:1] && lw != w
			if !keywords[lw] && (inCode || strings.Contains(w, "_") || camel) {
				lw = "<id>"
			}
			out = append(out, lw)
		}
	}
	return out
}

func gramKeys(toks []string, n int) []string {
	if len(toks) < n {
		return nil
	}
	var keys []string
	for i := 0; i+n <= len(toks); i++ {
		keys = append(keys, strings.Join(toks[i:i+n], " "))
	}
	return keys
}

// Decontaminate drops every training row (ids[i], texts[i]) sharing a
// normalised 13-token sequence with an evaluation prompt. Suites are
// visited in sorted name order so the reported item is deterministic.
func Decontaminate(suites map[string][]string, ids, texts []string) (kept []string, hits []Hit) {
	const n = 13
	type ref struct {
		suite string
		item  int
	}
	index := map[string]ref{}
	names := make([]string, 0, len(suites))
	for s := range suites {
		names = append(names, s)
	}
	slices.Sort(names)
	// short[m] indexes the evaluation prompts of m < n tokens as a whole;
	// whole holds those too short to look for inside a longer row.
	short := map[int]map[string]ref{}
	whole := map[string]ref{}
	for _, s := range names {
		for i, p := range suites[s] {
			toks := codeTokens(p)
			if m := len(toks); m == 0 {
				continue // an empty prompt (some MITRE items) matches nothing
			} else if m < minShortTokens {
				if _, ok := whole[strings.Join(toks, " ")]; !ok {
					whole[strings.Join(toks, " ")] = ref{s, i}
				}
			} else if m < n {
				// minShortTokens <= m < n: looked for inside longer rows.
				if short[m] == nil {
					short[m] = map[string]ref{}
				}
				k := strings.Join(toks, " ")
				if _, ok := short[m][k]; !ok {
					short[m][k] = ref{s, i}
				}
			}
			for _, k := range gramKeys(toks, n) {
				if _, ok := index[k]; !ok {
					index[k] = ref{s, i}
				}
			}
		}
	}
	lengths := make([]int, 0, len(short))
	for m := range short {
		lengths = append(lengths, m)
	}
	slices.Sort(lengths)
rows:
	for i, t := range texts {
		toks := codeTokens(t)
		if r, ok := whole[strings.Join(toks, " ")]; ok {
			hits = append(hits, Hit{ID: ids[i], Suite: r.suite, Item: r.item, Reason: ReasonShort})
			continue
		}
		for _, k := range gramKeys(toks, n) {
			if r, ok := index[k]; ok {
				hits = append(hits, Hit{ID: ids[i], Suite: r.suite, Item: r.item, Reason: ReasonGram})
				continue rows
			}
		}
		for _, m := range lengths {
			for _, k := range gramKeys(toks, m) {
				if r, ok := short[m][k]; ok {
					hits = append(hits, Hit{ID: ids[i], Suite: r.suite, Item: r.item, Reason: ReasonShort})
					continue rows
				}
			}
		}
		kept = append(kept, ids[i])
	}
	return kept, hits
}

// NearOptions are DecontaminateNear's defaults: 3-word shingles and
// Jaccard 0.5. Breaking every 13-gram takes one edit per 13 tokens, which
// leaves a 5-word-shingle Jaccard near 0.44 but a 3-word one near 0.6, and
// for decontamination a false drop costs one training row while a miss
// inflates a reported score.
func NearOptions() Options { return Options{Threshold: 0.5, Shingle: 3} }

// DecontaminateNear drops training rows that are MinHash near-duplicates of
// an evaluation prompt: exact Jaccard >= opt.Threshold between the shingle
// sets of the normalised texts (identifiers mapped as in Decontaminate), so
// edits that break every 13-gram are caught. Evaluation prompts with fewer
// than minNearShingles shingles are skipped. Evaluation prompts are indexed by LSH band; each training
// row visits at most opt.MaxBucket of them per band, so the pass is linear
// in the number of training rows.
func DecontaminateNear(opt Options, suites map[string][]string, ids, texts []string) (kept []string, hits []Hit) {
	opt = opt.withDefaults()
	h := newHasher(opt)
	b, r := ChooseBands(opt.NumPerm, opt.Threshold)
	type ref struct {
		suite string
		item  int
		set   []uint64
	}
	var refs []ref
	names := make([]string, 0, len(suites))
	for s := range suites {
		names = append(names, s)
	}
	slices.Sort(names)
	buckets := make([]map[uint64][]int32, b)
	for k := range buckets {
		buckets[k] = map[uint64][]int32{}
	}
	for _, s := range names {
		for i, p := range suites[s] {
			set := normShingles(p, opt.Shingle)
			if len(set) < minNearShingles {
				continue
			}
			sig := h.signature(set)
			for k := range b {
				key := bandKey(sig, k, r)
				if len(buckets[k][key]) < opt.MaxBucket {
					buckets[k][key] = append(buckets[k][key], int32(len(refs)))
				}
			}
			refs = append(refs, ref{s, i, set})
		}
	}
	for i, t := range texts {
		set := normShingles(t, opt.Shingle)
		best, bestJ := -1, 0.0
		if len(set) > 0 {
			sig := h.signature(set)
			for k := range b {
				for _, j := range buckets[k][bandKey(sig, k, r)] {
					if jac := Jaccard(set, refs[j].set); jac >= opt.Threshold && (jac > bestJ || jac == bestJ && int(j) < best) {
						best, bestJ = int(j), jac
					}
				}
			}
		}
		if best < 0 {
			kept = append(kept, ids[i])
			continue
		}
		hits = append(hits, Hit{ID: ids[i], Suite: refs[best].suite, Item: refs[best].item, Reason: ReasonMinHash, Jaccard: bestJ})
	}
	return kept, hits
}

// normShingles is Shingles over the normalised tokens of Decontaminate.
func normShingles(text string, n int) []uint64 {
	return Shingles(strings.Join(codeTokens(text), " "), n)
}

// DecontaminateAll runs Decontaminate, then DecontaminateNear on the rows
// it kept; hits come in row order.
func DecontaminateAll(opt Options, suites map[string][]string, ids, texts []string) (kept []string, hits []Hit) {
	kept1, hits1 := Decontaminate(suites, ids, texts)
	keep := make(map[string]bool, len(kept1))
	for _, id := range kept1 {
		keep[id] = true
	}
	var rest, restTexts []string
	for i, id := range ids {
		if keep[id] {
			rest = append(rest, id)
			restTexts = append(restTexts, texts[i])
		}
	}
	kept, hits2 := DecontaminateNear(opt, suites, rest, restTexts)
	pos := make(map[string]int, len(ids))
	for i, id := range ids {
		pos[id] = i
	}
	hits = append(hits1, hits2...)
	slices.SortStableFunc(hits, func(a, b Hit) int { return pos[a.ID] - pos[b.ID] })
	return kept, hits
}
