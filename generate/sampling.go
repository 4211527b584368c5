package generate

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
)

// SamplingParams control how tokens are drawn and when a sample stops.
type SamplingParams struct {
	// Temperature divides the logits; 0 means greedy.
	Temperature float64
	// TopP keeps the smallest set of most likely tokens whose probability
	// reaches TopP; 0 or 1 disables it.
	TopP float64
	// TopK keeps the K most likely tokens; 0 disables it.
	TopK int
	// MaxNewTokens bounds the completion length (it must be positive; the
	// model's max_position_embeddings bounds it further).
	MaxNewTokens int
	// StopIDs end a sample (in addition to the engine's EOS ids); the stop
	// token is part of the sample.
	StopIDs []int
	// StopStrings end a sample as soon as its decoded text contains one;
	// the tokens that produced it are part of the sample.
	StopStrings []string
	// Greedy takes the most likely token (smallest id on ties).
	Greedy bool
	// TopLogProbs asks for the TopLogProbs most likely tokens of the raw
	// distribution (log-softmax of the logits, as RawLogProbs) at every
	// step, in Sample.TopLogProbs; 0 records none.
	TopLogProbs int
}

// TokenLogProb is a candidate token and its log-prob.
type TokenLogProb struct {
	ID      int
	LogProb float32
}

// validate checks user-supplied parameters against a vocabulary size.
func (p *SamplingParams) validate(vocab int) error {
	switch {
	case math.IsNaN(p.Temperature) || p.Temperature < 0 || math.IsInf(p.Temperature, 0):
		return fmt.Errorf("temperature %v must be a finite number >= 0", p.Temperature)
	case math.IsNaN(p.TopP) || p.TopP < 0 || p.TopP > 1:
		return fmt.Errorf("top_p %v must be in [0, 1]", p.TopP)
	case p.TopK < 0:
		return fmt.Errorf("top_k %d must be >= 0", p.TopK)
	case p.MaxNewTokens <= 0:
		return fmt.Errorf("max_new_tokens %d must be positive", p.MaxNewTokens)
	case p.TopLogProbs < 0 || p.TopLogProbs > vocab:
		return fmt.Errorf("top log-probs %d must be in [0, vocab_size %d]", p.TopLogProbs, vocab)
	}
	for _, id := range p.StopIDs {
		if id < 0 || id >= vocab {
			return fmt.Errorf("stop token id %d outside vocab_size %d", id, vocab)
		}
	}
	for _, s := range p.StopStrings {
		if s == "" {
			return fmt.Errorf("empty stop string")
		}
	}
	return nil
}

// isGreedy reports whether the parameters ask for argmax decoding.
func (p *SamplingParams) isGreedy() bool { return p.Greedy || p.Temperature == 0 }

// sampler holds one worker's float64 scratch over the vocabulary.
type sampler struct {
	p   []float64
	idx []int32
}

// draw picks the next token from one row of raw logits. It returns the
// token, its log-prob under the distribution actually sampled from (after
// temperature, top-k and top-p; for greedy decoding, the raw distribution),
// and its log-prob under the raw logits (log-softmax at temperature 1).
func (s *sampler) draw(logits []float32, sp *SamplingParams, rng *rand.Rand) (tok int, logp, rawLogp float64) {
	lse := logSumExp(logits)
	if sp.isGreedy() {
		tok = argmax(logits)
		raw := float64(logits[tok]) - lse
		return tok, raw, raw
	}
	v := len(logits)
	if cap(s.p) < v {
		s.p = make([]float64, v)
		s.idx = make([]int32, v)
	}
	p := s.p[:v]
	temperatureProbs(p, logits, sp.Temperature)
	var cand []int32
	topK := sp.TopK > 0 && sp.TopK < v
	topP := sp.TopP > 0 && sp.TopP < 1
	if topK || topP {
		cand = s.idx[:v]
		for i := range cand {
			cand[i] = int32(i)
		}
		if topK {
			cand = topKFilter(cand, p, sp.TopK)
		}
		if topP {
			cand = topPFilter(cand, p, sp.TopP, !topK)
		}
	}
	tok, logp = sampleFrom(cand, p, rng.Float64())
	return tok, logp, float64(logits[tok]) - lse
}

// drawNext draws s's next token from its logits with sm and records the
// step's most likely raw alternatives when the request asks for them.
func (s *seq) drawNext(sm *sampler, logits []float32) {
	p := &s.g.req.Params
	s.tok, s.logp, s.rawLogp = sm.draw(logits, p, s.rng)
	if p.TopLogProbs > 0 {
		// draw's log-sum-exp, recovered from the raw log-prob (to an ulp):
		// recomputing it would cost more than the search itself.
		s.top = sm.topRaw(logits, p.TopLogProbs, float64(logits[s.tok])-s.rawLogp)
	} else {
		s.top = nil
	}
}

// topRaw returns the k most likely tokens of log-softmax(logits) (whose
// log-sum-exp is lse), most likely first, ties to the smaller id (the
// sampler's candidate order). It reuses the scratch that draw fills, so it
// runs after draw.
func (s *sampler) topRaw(logits []float32, k int, lse float64) []TokenLogProb {
	if k <= 0 {
		return nil
	}
	v := len(logits)
	k = min(k, v)
	if cap(s.idx) < v {
		s.p = make([]float64, v)
		s.idx = make([]int32, v)
	}
	var top []int32
	if k <= smallTopK {
		top = topKScan(s.idx[:0], logits, k)
	} else {
		// Logits order tokens as their probabilities do; no exp needed.
		p, idx := s.p[:v], s.idx[:v]
		for i, x := range logits {
			p[i] = float64(x)
			idx[i] = int32(i)
		}
		top = topKFilter(idx, p, k)
	}
	out := make([]TokenLogProb, len(top))
	for j, i := range top {
		out[j] = TokenLogProb{ID: int(i), LogProb: float32(float64(logits[i]) - lse)}
	}
	return out
}

// smallTopK is the most alternatives found by one scan with a sorted
// buffer; OpenAI's APIs ask for at most 20.
const smallTopK = 32

// topKScan keeps the k best tokens in buf, sorted, in one pass over the
// logits: a token enters only when it beats the worst kept one, which is
// rare after the first few hundred, so the pass costs about one compare
// per token. A later token never beats an equal earlier one, so ties keep
// the smaller id first.
func topKScan(buf []int32, logits []float32, k int) []int32 {
	for i, x := range logits {
		n := len(buf)
		if n == k && !(x > logits[buf[n-1]]) {
			continue
		}
		j := n
		for j > 0 && x > logits[buf[j-1]] {
			j--
		}
		if n < k {
			buf = append(buf, 0)
		}
		copy(buf[j+1:], buf[j:len(buf)-1])
		buf[j] = int32(i)
	}
	return buf
}

// logSumExp of float32 logits, in float64.
func logSumExp(logits []float32) float64 {
	m := math.Inf(-1)
	for _, x := range logits {
		m = math.Max(m, float64(x))
	}
	var s float64
	for _, x := range logits {
		s += math.Exp(float64(x) - m)
	}
	return m + math.Log(s)
}

// argmax returns the index of the largest logit, the smallest on ties.
func argmax(logits []float32) int {
	best := 0
	for i, x := range logits {
		if x > logits[best] {
			best = i
		}
	}
	return best
}

// temperatureProbs writes softmax(logits / t) into p, in float64.
func temperatureProbs(p []float64, logits []float32, t float64) {
	m := math.Inf(-1)
	for _, x := range logits {
		m = math.Max(m, float64(x))
	}
	var s float64
	for i, x := range logits {
		e := math.Exp((float64(x) - m) / t)
		p[i] = e
		s += e
	}
	inv := 1 / s
	for i := range p {
		p[i] *= inv
	}
}

// better is the candidate order: higher probability first, then smaller id.
func better(p []float64, a, b int32) bool {
	return p[a] > p[b] || (p[a] == p[b] && a < b)
}

func cmpCand(p []float64) func(a, b int32) int {
	return func(a, b int32) int {
		switch {
		case better(p, a, b):
			return -1
		case better(p, b, a):
			return 1
		}
		return 0
	}
}

// partition reorders idx around the element at position pivot so that
// better elements come first; it returns the pivot's final position.
func partition(idx []int32, p []float64, pivot int) int {
	last := len(idx) - 1
	idx[pivot], idx[last] = idx[last], idx[pivot]
	pv := idx[last]
	store := 0
	for i := 0; i < last; i++ {
		if better(p, idx[i], pv) {
			idx[i], idx[store] = idx[store], idx[i]
			store++
		}
	}
	idx[store], idx[last] = idx[last], idx[store]
	return store
}

// medianOf3 picks a pivot position for partition.
func medianOf3(idx []int32, p []float64) int {
	a, b, c := 0, len(idx)/2, len(idx)-1
	if better(p, idx[b], idx[a]) {
		a, b = b, a
	}
	if better(p, idx[c], idx[b]) {
		b = c
		if better(p, idx[b], idx[a]) {
			b = a
		}
	}
	return b
}

// topKFilter returns the k best candidates of idx (reordering idx), sorted.
// It runs in expected linear time (quickselect) plus k log k.
func topKFilter(idx []int32, p []float64, k int) []int32 {
	if k >= len(idx) {
		slices.SortFunc(idx, cmpCand(p))
		return idx
	}
	lo, hi := 0, len(idx)
	for hi-lo > 1 {
		m := lo + partition(idx[lo:hi], p, medianOf3(idx[lo:hi], p))
		switch {
		case m == k:
			lo = hi
		case m < k:
			lo = m + 1
		default:
			hi = m
		}
	}
	out := idx[:k]
	slices.SortFunc(out, cmpCand(p))
	return out
}

// topPFilter returns the nucleus of the candidates idx: the shortest prefix
// of them in candidate order whose probability mass reaches topP times the
// candidates' total mass (so top-p after top-k works on the renormalised
// top-k distribution). unsorted says that idx is not yet in candidate
// order; then the nucleus is found by partitioning on running sums
// (expected linear time) and only it is sorted.
func topPFilter(idx []int32, p []float64, topP float64, unsorted bool) []int32 {
	var total float64
	for _, i := range idx {
		total += p[i]
	}
	thr := topP * total
	m := len(idx)
	if unsorted {
		// Invariant: mass(idx[:lo]) = acc < thr <= mass(idx[:hi]).
		lo, hi, acc := 0, len(idx), 0.0
		for hi-lo > 0 {
			seg := idx[lo:hi]
			mid := partition(seg, p, medianOf3(seg, p))
			var sb float64
			for _, i := range seg[:mid] {
				sb += p[i]
			}
			if acc+sb >= thr {
				hi = lo + mid
				continue
			}
			acc += sb + p[seg[mid]]
			if acc >= thr {
				hi = lo + mid + 1
				break
			}
			lo += mid + 1
		}
		m = max(hi, 1)
		slices.SortFunc(idx[:m], cmpCand(p))
	}
	// The exact cut, from the running sum in candidate order.
	var acc float64
	for j, i := range idx[:m] {
		acc += p[i]
		if acc >= thr {
			return idx[:j+1]
		}
	}
	return idx[:m]
}

// sampleFrom draws from the distribution p restricted to cand (renormalised;
// cand == nil means every token, walked in id order) with a uniform u in
// [0, 1), and returns the token and its log-prob under that distribution.
func sampleFrom(cand []int32, p []float64, u float64) (int, float64) {
	if cand == nil {
		var total float64
		for _, x := range p {
			total += x
		}
		target, acc, tok := u*total, 0.0, -1
		for i, x := range p {
			if x <= 0 {
				continue
			}
			acc += x
			tok = i
			if acc > target {
				break
			}
		}
		return tok, math.Log(p[tok] / total)
	}
	var total float64
	for _, i := range cand {
		total += p[i]
	}
	target, acc, tok := u*total, 0.0, int(cand[0])
	for _, i := range cand {
		if p[i] <= 0 {
			continue
		}
		acc += p[i]
		tok = int(i)
		if acc > target {
			break
		}
	}
	return tok, math.Log(p[tok] / total)
}
