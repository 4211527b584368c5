package tokenizer

import (
	"golang.org/x/text/unicode/norm"
)

// normalizer is HF's normalizer restricted to the Unicode forms, the only
// normalizers byte-level BPE tokenizers use.
type normalizer struct {
	forms []norm.Form // applied in order; empty means identity
}

// apply returns the normalized text and, when withMap is set and the text
// changed, the original [start, end) span of each normalized byte (nil
// means the identity mapping).
func (n normalizer) apply(s string, withMap bool) (string, [][2]int32) {
	if len(n.forms) == 0 {
		return s, nil
	}
	changed := false
	for _, f := range n.forms {
		if !f.IsNormalString(s) {
			changed = true
			break
		}
	}
	if !changed {
		return s, nil
	}
	if !withMap {
		for _, f := range n.forms {
			s = f.String(s)
		}
		return s, nil
	}
	// Normalize boundary-delimited segments one at a time: each output
	// byte then maps back to the input segment it came from, which is the
	// granularity HF's alignments have for composed characters.
	out := make([]byte, 0, len(s)+8)
	var spans [][2]int32
	for i := 0; i < len(s); {
		k := n.forms[0].NextBoundaryInString(s[i:], true)
		if k <= 0 {
			k = len(s) - i
		}
		seg := s[i : i+k]
		for _, f := range n.forms {
			seg = f.String(seg)
		}
		out = append(out, seg...)
		for range len(seg) {
			spans = append(spans, [2]int32{int32(i), int32(i + k)})
		}
		i += k
	}
	res := string(out)
	if len(n.forms) > 1 {
		// Segments of the first form need not be independent under the
		// later ones; renormalize the whole and fall back to coarse spans
		// if that changed anything.
		whole := s
		for _, f := range n.forms {
			whole = f.String(whole)
		}
		if whole != res {
			spans = spans[:0]
			for range len(whole) {
				spans = append(spans, [2]int32{0, int32(len(s))})
			}
			res = whole
		}
	}
	return res, spans
}
