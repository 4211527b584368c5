package dedup

import (
	"slices"
	"strings"
	"unicode"
)

// Hit says why a training row was dropped: it shares a normalised
// Gram-token sequence with item Item of suite Suite.
type Hit struct {
	ID, Suite string
	Item      int
	Reason    string // "13-gram"
}

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
	for _, s := range names {
		for i, p := range suites[s] {
			for _, k := range gramKeys(codeTokens(p), n) {
				if _, ok := index[k]; !ok {
					index[k] = ref{s, i}
				}
			}
		}
	}
rows:
	for i, t := range texts {
		for _, k := range gramKeys(codeTokens(t), n) {
			if r, ok := index[k]; ok {
				hits = append(hits, Hit{ID: ids[i], Suite: r.suite, Item: r.item, Reason: "13-gram"})
				continue rows
			}
		}
		kept = append(kept, ids[i])
	}
	return kept, hits
}
