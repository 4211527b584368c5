package dedup

import (
	"fmt"
	"math"
	"math/bits"
	"slices"
	"strings"
	"unicode"
)

// Options configures a Deduper; zero fields take the defaults.
type Options struct {
	Threshold float64 // Jaccard threshold, default 0.7
	Shingle   int     // words per shingle, default 5
	NumPerm   int     // MinHash permutations, default 128
	Seed      uint64  // permutation seed, default 1
	MaxBucket int     // earlier bucket members visited per band, default 64
}

func (o Options) withDefaults() Options {
	if o.Threshold <= 0 || o.Threshold > 1 {
		o.Threshold = 0.7
	}
	if o.Shingle <= 0 {
		o.Shingle = 5
	}
	if o.NumPerm <= 0 {
		o.NumPerm = 128
	}
	if o.Seed == 0 {
		o.Seed = 1
	}
	if o.MaxBucket <= 0 {
		o.MaxBucket = 64
	}
	return o
}

// Drop is a removed row: DupOf is the kept row of its cluster, Via the
// most similar row it was matched to, Jaccard that pair's exact Jaccard.
type Drop struct {
	ID, DupOf, Via string
	Jaccard        float64
}

// Deduper accumulates rows; Result clusters them.
type Deduper struct {
	opt  Options
	ids  []string
	seen map[string]bool
	sets [][]uint64
}

// New returns an empty Deduper.
func New(opt Options) *Deduper {
	return &Deduper{opt: opt.withDefaults(), seen: map[string]bool{}}
}

// Add records a row; ids must be unique.
func (d *Deduper) Add(id, text string) error {
	if d.seen[id] {
		return fmt.Errorf("dedup: duplicate row id %q", id)
	}
	d.seen[id] = true
	d.ids = append(d.ids, id)
	d.sets = append(d.sets, Shingles(text, d.opt.Shingle))
	return nil
}

func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

// Shingles returns the sorted, distinct hashes of text's n-word shingles.
func Shingles(text string, n int) []uint64 {
	words := strings.FieldsFunc(strings.ToLower(text), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r) && r != '_'
	})
	toks := make([]uint64, len(words))
	for i, w := range words {
		h := uint64(14695981039346656037)
		for j := 0; j < len(w); j++ {
			h = (h ^ uint64(w[j])) * 1099511628211
		}
		toks[i] = h
	}
	if len(toks) == 0 {
		return nil
	}
	m := min(n, len(toks))
	out := make([]uint64, 0, len(toks)-m+1)
	for i := 0; i+m <= len(toks); i++ {
		h := uint64(m)
		for _, t := range toks[i : i+m] {
			h = bits.RotateLeft64(h, 23) ^ t
			h *= 0x9e3779b97f4a7c15
		}
		out = append(out, mix64(h))
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Jaccard is the exact Jaccard similarity of two sorted distinct sets.
func Jaccard(a, b []uint64) float64 {
	if len(a) == 0 || len(b) == 0 {
		return 0
	}
	i, j, inter := 0, 0, 0
	for i < len(a) && j < len(b) {
		switch {
		case a[i] < b[j]:
			i++
		case a[i] > b[j]:
			j++
		default:
			inter++
			i++
			j++
		}
	}
	return float64(inter) / float64(len(a)+len(b)-inter)
}

// CandidateProb is the LSH S-curve: the chance that a pair of Jaccard s
// shares at least one of b bands of r rows.
func CandidateProb(s float64, b, r int) float64 {
	return 1 - math.Pow(1-math.Pow(s, float64(r)), float64(b))
}

// ChooseBands picks the largest r (fewest false candidates) whose miss
// chance at the threshold is at most 1%, with b = numPerm/r.
func ChooseBands(numPerm int, t float64) (b, r int) {
	b, r = numPerm, 1
	for rr := 2; rr <= numPerm; rr++ {
		if CandidateProb(t, numPerm/rr, rr) < 0.99 {
			break
		}
		b, r = numPerm/rr, rr
	}
	return b, r
}

func (d *Deduper) signatures() [][]uint64 {
	h := newHasher(d.opt)
	sigs := make([][]uint64, len(d.sets))
	for i, set := range d.sets {
		sigs[i] = h.signature(set)
	}
	return sigs
}

// hasher holds the multiply-add permutations of one Options, so that
// signatures computed for different collections (training rows and
// evaluation prompts) are comparable.
type hasher struct{ a, c []uint64 }

func newHasher(opt Options) hasher {
	h := hasher{a: make([]uint64, opt.NumPerm), c: make([]uint64, opt.NumPerm)}
	s := opt.Seed
	for i := range h.a {
		s += 0x9e3779b97f4a7c15
		h.a[i] = mix64(s) | 1
		s += 0x9e3779b97f4a7c15
		h.c[i] = mix64(s)
	}
	return h
}

func (h hasher) signature(set []uint64) []uint64 {
	sig := make([]uint64, len(h.a))
	for k := range sig {
		m := uint64(math.MaxUint64)
		for _, x := range set {
			m = min(m, h.a[k]*x+h.c[k])
		}
		sig[k] = m
	}
	return sig
}

// bandKey hashes band k of sig (r rows) to one bucket key.
func bandKey(sig []uint64, k, r int) uint64 {
	key := uint64(k + 1)
	for _, v := range sig[k*r : (k+1)*r] {
		key = mix64(key ^ v)
	}
	return key
}

// Result clusters the rows added so far and returns the kept ids (in
// insertion order) and the dropped rows.
func (d *Deduper) Result() (kept []string, dropped []Drop) {
	n := len(d.ids)
	parent := make([]int32, n)
	for i := range parent {
		parent[i] = int32(i)
	}
	find := func(x int32) int32 {
		for parent[x] != x {
			parent[x] = parent[parent[x]]
			x = parent[x]
		}
		return x
	}
	best := make([]int32, n)
	bestJ := make([]float64, n)
	for i := range best {
		best[i] = -1
	}
	b, r := ChooseBands(d.opt.NumPerm, d.opt.Threshold)
	sigs := d.signatures()
	heads := make([]map[uint64]int32, b)
	tails := make([]map[uint64]int32, b)
	for k := range heads {
		heads[k] = map[uint64]int32{}
		tails[k] = map[uint64]int32{}
	}
	next := make([]int32, n*b)
	var cands []int32
	for i := int32(0); int(i) < n; i++ {
		if len(d.sets[i]) == 0 {
			continue
		}
		cands = cands[:0]
		for k := 0; k < b; k++ {
			key := bandKey(sigs[i], k, r)
			slot := int(i)*b + k
			next[slot] = -1
			h, ok := heads[k][key]
			if !ok {
				heads[k][key], tails[k][key] = i, i
				continue
			}
			for j, seen := h, 0; j >= 0 && seen < d.opt.MaxBucket; j, seen = next[int(j)*b+k], seen+1 {
				cands = append(cands, j)
			}
			next[int(tails[k][key])*b+k] = i
			tails[k][key] = i
		}
		slices.Sort(cands)
		for _, j := range slices.Compact(cands) {
			ri, rj := find(i), find(j)
			if ri == rj {
				continue
			}
			jac := Jaccard(d.sets[i], d.sets[j])
			if jac < d.opt.Threshold {
				continue
			}
			parent[max(ri, rj)] = min(ri, rj)
			for _, e := range [2][2]int32{{i, j}, {j, i}} {
				if jac > bestJ[e[0]] {
					best[e[0]], bestJ[e[0]] = e[1], jac
				}
			}
		}
	}
	for i := int32(0); int(i) < n; i++ {
		root := find(i)
		if root == i {
			kept = append(kept, d.ids[i])
			continue
		}
		dropped = append(dropped, Drop{ID: d.ids[i], DupOf: d.ids[root], Via: d.ids[best[i]], Jaccard: bestJ[i]})
	}
	return kept, dropped
}
