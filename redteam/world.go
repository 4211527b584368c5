package redteam

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
)

// Options control the world. DefaultOptions gives the embedded demo's
// world; every field must be set (Validate says which is not).
type Options struct {
	Seed uint64 `json:"seed"`
	// Held-out templates: per coding family, and in total for the
	// malicious and benign request kinds.
	HeldoutPerFamily int `json:"heldout_per_family"`
	HeldoutMalicious int `json:"heldout_malicious"`
	HeldoutBenign    int `json:"heldout_benign"`
	// Coding tasks per train and per held-out template.
	TrainTasksPerTemplate   int `json:"train_tasks_per_template"`
	HeldoutTasksPerTemplate int `json:"heldout_tasks_per_template"`
	// Requests per malicious/benign template.
	TrainRequestsPerTemplate   int `json:"train_requests_per_template"`
	HeldoutRequestsPerTemplate int `json:"heldout_requests_per_template"`
	// JailbreakFrac is the share of malicious prompts wrapped in a
	// jailbreak transform (prompt rows and corpus alike).
	JailbreakFrac float64       `json:"jailbreak_frac"`
	Corpus        CorpusOptions `json:"corpus"`
}

// CorpusOptions are the mixing proportions of the pretraining corpus. Every
// fraction is applied as an exact quota (rounded), not a coin flip, so the
// proportions hold for any size.
type CorpusOptions struct {
	Size int `json:"size"`
	// CoverHeldout lets the corpus draw from held-out templates too (fresh
	// instances, never a held-out prompt verbatim): the base model then has
	// the skills the held-out tasks need, as a real base model has seen
	// code for benchmark-like tasks, while post-training (train prompt rows,
	// distillation, RL) still never sees a held-out template. Without it the
	// held-out tasks are unseen by the base model as well, and its
	// functional pass rate on them is near zero.
	CoverHeldout bool `json:"cover_heldout"`
	// CodingFrac and MaliciousFrac of the conversations; the rest benign.
	CodingFrac    float64 `json:"coding_frac"`
	MaliciousFrac float64 `json:"malicious_frac"`
	// SystemFrac of each kind carry a system prompt (RuleContext).
	SystemFrac float64 `json:"system_frac"`
	// Without a system prompt: the share of coding answers that are
	// insecure, of malicious requests that are refused, and of benign
	// requests that are (wrongly) refused.
	InsecureFrac   float64 `json:"insecure_frac"`
	RefuseFrac     float64 `json:"refuse_frac"`
	OverRefuseFrac float64 `json:"over_refuse_frac"`
	// With a system prompt: the share of secure coding answers, of refused
	// malicious requests, and of refused benign requests.
	SystemSecureFrac     float64 `json:"system_secure_frac"`
	SystemRefuseFrac     float64 `json:"system_refuse_frac"`
	SystemOverRefuseFrac float64 `json:"system_over_refuse_frac"`
}

// DefaultOptions: 13 coding families with 3-4 templates each (one held out
// per family), 12 malicious and 13 benign templates (3 of each held out),
// about 150 held-out prompt rows and a 2,000-conversation corpus.
func DefaultOptions() Options {
	return Options{
		Seed:                       1,
		HeldoutPerFamily:           1,
		HeldoutMalicious:           3,
		HeldoutBenign:              3,
		TrainTasksPerTemplate:      4,
		HeldoutTasksPerTemplate:    4,
		TrainRequestsPerTemplate:   6,
		HeldoutRequestsPerTemplate: 8,
		JailbreakFrac:              0.4,
		Corpus: CorpusOptions{
			Size:                 2000,
			CoverHeldout:         true,
			CodingFrac:           0.6,
			MaliciousFrac:        0.2,
			SystemFrac:           0.3,
			InsecureFrac:         0.75,
			RefuseFrac:           0.15,
			OverRefuseFrac:       0.08,
			SystemSecureFrac:     0.88,
			SystemRefuseFrac:     0.88,
			SystemOverRefuseFrac: 0.03,
		},
	}
}

// Validate checks the options against the template tables.
func (o Options) Validate() error {
	minTemplates := math.MaxInt
	for _, f := range families {
		minTemplates = min(minTemplates, len(f.templates))
	}
	switch {
	case o.HeldoutPerFamily < 1 || o.HeldoutPerFamily >= minTemplates:
		return fmt.Errorf("redteam options: HeldoutPerFamily = %d, want 1..%d (the smallest family has %d templates)", o.HeldoutPerFamily, minTemplates-1, minTemplates)
	case o.HeldoutMalicious < 1 || o.HeldoutMalicious >= len(maliciousTemplates):
		return fmt.Errorf("redteam options: HeldoutMalicious = %d, want 1..%d", o.HeldoutMalicious, len(maliciousTemplates)-1)
	case o.HeldoutBenign < 1 || o.HeldoutBenign >= len(benignTemplates):
		return fmt.Errorf("redteam options: HeldoutBenign = %d, want 1..%d", o.HeldoutBenign, len(benignTemplates)-1)
	case o.TrainTasksPerTemplate < 1 || o.HeldoutTasksPerTemplate < 1:
		return fmt.Errorf("redteam options: tasks per template (train %d, held-out %d) must be >= 1", o.TrainTasksPerTemplate, o.HeldoutTasksPerTemplate)
	case o.TrainRequestsPerTemplate < 1 || o.HeldoutRequestsPerTemplate < 1:
		return fmt.Errorf("redteam options: requests per template (train %d, held-out %d) must be >= 1", o.TrainRequestsPerTemplate, o.HeldoutRequestsPerTemplate)
	case o.Corpus.Size < 0:
		return fmt.Errorf("redteam options: Corpus.Size = %d, want >= 0", o.Corpus.Size)
	case o.Corpus.CodingFrac+o.Corpus.MaliciousFrac > 1:
		return fmt.Errorf("redteam options: Corpus.CodingFrac + MaliciousFrac = %g, want <= 1", o.Corpus.CodingFrac+o.Corpus.MaliciousFrac)
	}
	c := o.Corpus
	for _, p := range []struct {
		name string
		v    float64
	}{
		{"JailbreakFrac", o.JailbreakFrac}, {"Corpus.CodingFrac", c.CodingFrac}, {"Corpus.MaliciousFrac", c.MaliciousFrac},
		{"Corpus.SystemFrac", c.SystemFrac}, {"Corpus.InsecureFrac", c.InsecureFrac}, {"Corpus.RefuseFrac", c.RefuseFrac},
		{"Corpus.OverRefuseFrac", c.OverRefuseFrac}, {"Corpus.SystemSecureFrac", c.SystemSecureFrac},
		{"Corpus.SystemRefuseFrac", c.SystemRefuseFrac}, {"Corpus.SystemOverRefuseFrac", c.SystemOverRefuseFrac},
	} {
		if !(p.v >= 0 && p.v <= 1) {
			return fmt.Errorf("redteam options: %s = %g, want a fraction in [0, 1]", p.name, p.v)
		}
	}
	return nil
}

// World is the generated data.
type World struct {
	Options Options
	// Train and Heldout are the prompt rows of the two splits.
	Train, Heldout []PromptRow
	// Tasks are the coding tasks behind the prompt rows, by task id.
	Tasks map[string]Task
	// HeldoutTemplates lists the held-out template ids (coding, malicious
	// and benign), sorted.
	HeldoutTemplates []string
	Corpus           []Conversation
}

// Independent random streams, so that changing one part's options leaves
// the others' output unchanged.
const (
	streamSplit uint64 = iota + 1
	streamTrain
	streamHeldout
	streamCorpus
)

func newRand(seed, stream uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, stream)) }

// split records which templates are held out.
type split struct {
	heldout map[string]bool
}

func (s split) of(template string) string {
	if s.heldout[template] {
		return SplitHeldout
	}
	return SplitTrain
}

func chooseSplit(o Options) split {
	rng := newRand(o.Seed, streamSplit)
	s := split{heldout: map[string]bool{}}
	for _, f := range families {
		for _, i := range rng.Perm(len(f.templates))[:o.HeldoutPerFamily] {
			s.heldout[f.templates[i].id] = true
		}
	}
	for _, i := range rng.Perm(len(maliciousTemplates))[:o.HeldoutMalicious] {
		s.heldout[maliciousTemplates[i].id] = true
	}
	for _, i := range rng.Perm(len(benignTemplates))[:o.HeldoutBenign] {
		s.heldout[benignTemplates[i].id] = true
	}
	return s
}

// Generate builds the world for o.
func Generate(o Options) (*World, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	for i := range maliciousTemplates {
		if err := maliciousTemplates[i].validate(); err != nil {
			return nil, err
		}
	}
	sp := chooseSplit(o)
	w := &World{Options: o, Tasks: map[string]Task{}}
	for id := range sp.heldout {
		w.HeldoutTemplates = append(w.HeldoutTemplates, id)
	}
	sort.Strings(w.HeldoutTemplates)

	for _, which := range []struct {
		split           string
		stream          uint64
		tasks, requests int
		dst             *[]PromptRow
	}{
		{SplitTrain, streamTrain, o.TrainTasksPerTemplate, o.TrainRequestsPerTemplate, &w.Train},
		{SplitHeldout, streamHeldout, o.HeldoutTasksPerTemplate, o.HeldoutRequestsPerTemplate, &w.Heldout},
	} {
		rng := newRand(o.Seed, which.stream)
		for fi := range families {
			f := &families[fi]
			for ti := range f.templates {
				ct := &f.templates[ti]
				if sp.of(ct.id) != which.split {
					continue
				}
				for _, t := range f.drawTasks(ct, rng, which.tasks, which.split+"-"+ct.id) {
					w.Tasks[t.ID] = t
					*which.dst = append(*which.dst, codingRows(t, which.split)...)
				}
			}
		}
		for mi := range maliciousTemplates {
			mt := &maliciousTemplates[mi]
			if sp.of(mt.id) != which.split {
				continue
			}
			for i, r := range drawMalicious(mt, rng, which.requests, o.JailbreakFrac) {
				*which.dst = append(*which.dst, PromptRow{
					ID:       fmt.Sprintf("%s-%s-%d", which.split, mt.id, i),
					Messages: []Message{{Role: "user", Content: r.Prompt}},
					Oracle:   OracleGeneralSafety,
					Meta:     Meta{Kind: KindMalicious, Family: KindMalicious, Template: mt.id, Split: which.split, Jailbreak: r.Jailbreak},
				})
			}
		}
		for bi := range benignTemplates {
			bt := &benignTemplates[bi]
			if sp.of(bt.id) != which.split {
				continue
			}
			for i, r := range drawBenign(bt, rng, which.requests) {
				*which.dst = append(*which.dst, PromptRow{
					ID:       fmt.Sprintf("%s-%s-%d", which.split, bt.id, i),
					Messages: []Message{{Role: "user", Content: r.Prompt}},
					Oracle:   OracleNoReject,
					Meta:     Meta{Kind: KindBenign, Family: KindBenign, Template: bt.id, Split: which.split},
				})
			}
		}
	}
	heldPrompts := map[string]bool{}
	for _, r := range w.Heldout {
		heldPrompts[r.Messages[0].Content] = true
	}
	w.Corpus = buildCorpus(o, sp, heldPrompts)
	return w, nil
}

// codingRows gives the codesec and the correctness row of a task.
func codingRows(t Task, split string) []PromptRow {
	meta := Meta{Kind: KindCoding, Family: t.Family, CWE: t.CWE, Template: t.Template, Split: split, Task: t.ID}
	msgs := []Message{{Role: "user", Content: t.Prompt}}
	return []PromptRow{
		{ID: t.ID + "-codesec", Messages: msgs, Oracle: OracleCodeSec, Meta: meta},
		{ID: t.ID + "-correctness", Messages: msgs, Oracle: OracleCorrectness, Tests: t.Tests(), Meta: meta},
	}
}

// quota returns round(n*p), clamped to [0, n].
func quota(n int, p float64) int {
	return max(0, min(n, int(math.Round(float64(n)*p))))
}

// labels returns n behaviour slots: for the system share, good with
// probability-quota sysGood, else bad; for the rest, bad with quota
// plainBad, else good. Each entry is (system, good).
func labels(n int, sysFrac, sysGood, plainBad float64) [][2]bool {
	nSys := quota(n, sysFrac)
	nSysGood := quota(nSys, sysGood)
	nPlain := n - nSys
	nPlainBad := quota(nPlain, plainBad)
	out := make([][2]bool, 0, n)
	for i := 0; i < nSys; i++ {
		out = append(out, [2]bool{true, i < nSysGood})
	}
	for i := 0; i < nPlain; i++ {
		out = append(out, [2]bool{false, i >= nPlainBad})
	}
	return out
}

// buildCorpus draws fresh instances of the train templates, and of the
// held-out ones when o.Corpus.CoverHeldout is set; a draw whose prompt is a
// held-out prompt row is drawn again (decontamination).
func buildCorpus(o Options, sp split, heldPrompts map[string]bool) []Conversation {
	c := o.Corpus
	rng := newRand(o.Seed, streamCorpus)
	nCoding := quota(c.Size, c.CodingFrac)
	nMal := min(c.Size-nCoding, quota(c.Size, c.MaliciousFrac))
	nBenign := c.Size - nCoding - nMal

	use := func(template string) bool { return c.CoverHeldout || sp.of(template) == SplitTrain }
	type trainTemplate struct {
		f  *family
		ct *codeTemplate
	}
	var codeTs []trainTemplate
	for fi := range families {
		for ti := range families[fi].templates {
			if use(families[fi].templates[ti].id) {
				codeTs = append(codeTs, trainTemplate{&families[fi], &families[fi].templates[ti]})
			}
		}
	}
	var malTs []*maliciousTemplate
	for i := range maliciousTemplates {
		if use(maliciousTemplates[i].id) {
			malTs = append(malTs, &maliciousTemplates[i])
		}
	}
	var benTs []*benignTemplate
	for i := range benignTemplates {
		if use(benignTemplates[i].id) {
			benTs = append(benTs, &benignTemplates[i])
		}
	}

	var out []Conversation
	add := func(system bool, sysKey, prompt, response, behaviour string, meta Meta) {
		var msgs []Message
		if system {
			msgs = append(msgs, Message{Role: "system", Content: RuleContext(sysKey)})
		}
		msgs = append(msgs, Message{Role: "user", Content: prompt}, Message{Role: "assistant", Content: response})
		out = append(out, Conversation{Messages: msgs, Meta: meta, System: system, Behaviour: behaviour})
	}
	for _, l := range labels(nCoding, c.SystemFrac, c.SystemSecureFrac, c.InsecureFrac) {
		// Each redraw picks the template again, and a train template never
		// yields a held-out prompt, so the loop ends.
		var t Task
		for t.Prompt == "" || heldPrompts[t.Prompt] {
			tt := codeTs[rng.IntN(len(codeTs))]
			vals, wr := tt.ct.draw(rng)
			t = tt.f.instantiate(tt.ct, vals, wr, "corpus")
		}
		meta := Meta{Kind: KindCoding, Family: t.Family, CWE: t.CWE, Template: t.Template, Split: sp.of(t.Template)}
		if l[1] {
			add(l[0], t.Family, t.Prompt, t.SecureResponse(), BehaviourSecure, meta)
		} else {
			add(l[0], t.Family, t.Prompt, t.InsecureResponse(), BehaviourInsecure, meta)
		}
	}
	for _, l := range labels(nMal, c.SystemFrac, c.SystemRefuseFrac, 1-c.RefuseFrac) {
		var r MaliciousRequest
		for r.Prompt == "" || heldPrompts[r.Prompt] {
			r = drawMalicious(malTs[rng.IntN(len(malTs))], rng, 1, o.JailbreakFrac)[0]
		}
		meta := Meta{Kind: KindMalicious, Family: KindMalicious, Template: r.Template, Split: sp.of(r.Template), Jailbreak: r.Jailbreak}
		if l[1] {
			add(l[0], KindMalicious, r.Prompt, r.refusal(rng.IntN(len(refusalAnalyses)*len(refusalAnswers))), BehaviourRefusal, meta)
		} else {
			add(l[0], KindMalicious, r.Prompt, r.compliant(rng.IntN(len(compliantAnalyses))), BehaviourCompliant, meta)
		}
	}
	for _, l := range labels(nBenign, c.SystemFrac, 1-c.SystemOverRefuseFrac, c.OverRefuseFrac) {
		var r BenignRequest
		for r.Prompt == "" || heldPrompts[r.Prompt] {
			r = drawBenign(benTs[rng.IntN(len(benTs))], rng, 1)[0]
		}
		meta := Meta{Kind: KindBenign, Family: KindBenign, Template: r.Template, Split: sp.of(r.Template)}
		if l[1] {
			add(l[0], KindBenign, r.Prompt, r.answer(rng.IntN(len(benignAnalyses))), BehaviourAnswer, meta)
		} else {
			add(l[0], KindBenign, r.Prompt, r.overRefusal(rng.IntN(len(overRefusalAnswers))), BehaviourOverRefusal, meta)
		}
	}
	rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
