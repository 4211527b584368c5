package redteam

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"purpcode/oracle"
)

// Options control the world. DefaultOptions gives the embedded demo's
// world; every field must be set (Validate says which is not).
type Options struct {
	// Seed draws the split of templates and the phrasings of every
	// prompt row.
	Seed uint64 `json:"seed"`
	// CorpusSeed is the seed of the world whose corpus pretrains the base
	// model: the corpus is drawn from it and decontaminated against that
	// world's test prompts. With CorpusSeed == Seed no test prompt is in
	// the corpus; with another seed (a sweep over worlds sharing one base
	// model) some may be, and World.CorpusOverlap counts them.
	CorpusSeed uint64 `json:"corpus_seed"`
	// CorpusWorlds widens the corpus's decontamination to the test prompts
	// of the worlds CorpusSeed, CorpusSeed+1, ..., CorpusSeed+CorpusWorlds-1
	// (0 or 1: CorpusSeed's only), so that one base model serves a sweep
	// over those worlds without holding any of their test prompts.
	CorpusWorlds int `json:"corpus_worlds,omitempty"`
	// Test ("held-out") templates: per coding family, and in total for
	// the malicious and benign request kinds.
	HeldoutPerFamily int `json:"heldout_per_family"`
	HeldoutMalicious int `json:"heldout_malicious"`
	HeldoutBenign    int `json:"heldout_benign"`
	// Validation templates, chosen among the non-test ones: per coding
	// family (fewer where a family would keep less than MinTrainPerFamily
	// train templates), and in total for malicious and benign requests.
	ValidationPerFamily int `json:"validation_per_family"`
	ValidationMalicious int `json:"validation_malicious"`
	ValidationBenign    int `json:"validation_benign"`
	// Coding tasks per train, validation and test template.
	TrainTasksPerTemplate      int `json:"train_tasks_per_template"`
	ValidationTasksPerTemplate int `json:"validation_tasks_per_template"`
	HeldoutTasksPerTemplate    int `json:"heldout_tasks_per_template"`
	// Requests per malicious/benign template.
	TrainRequestsPerTemplate      int `json:"train_requests_per_template"`
	ValidationRequestsPerTemplate int `json:"validation_requests_per_template"`
	HeldoutRequestsPerTemplate    int `json:"heldout_requests_per_template"`
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

// DefaultOptions: 13 coding families with 3-4 templates each (one test
// template per family, one validation template in each family of four),
// 12 malicious and 13 benign templates (3 test and 2 validation templates
// of each), about 150 test and 70 validation prompt rows, and the corpus
// the embedded base model was pretrained on (scripts/make-base-model.sh:
// 6,000 conversations, half with the rule context, 90% of plain coding
// answers insecure).
func DefaultOptions() Options {
	return Options{
		Seed:                          1,
		CorpusSeed:                    1,
		HeldoutPerFamily:              1,
		HeldoutMalicious:              3,
		HeldoutBenign:                 3,
		ValidationPerFamily:           1,
		ValidationMalicious:           2,
		ValidationBenign:              2,
		TrainTasksPerTemplate:         4,
		ValidationTasksPerTemplate:    2,
		HeldoutTasksPerTemplate:       4,
		TrainRequestsPerTemplate:      6,
		ValidationRequestsPerTemplate: 6,
		HeldoutRequestsPerTemplate:    8,
		JailbreakFrac:                 0.4,
		Corpus: CorpusOptions{
			Size:                 6000,
			CoverHeldout:         true,
			CodingFrac:           0.6,
			MaliciousFrac:        0.2,
			SystemFrac:           0.5,
			InsecureFrac:         0.9,
			RefuseFrac:           0.15,
			OverRefuseFrac:       0.08,
			SystemSecureFrac:     0.88,
			SystemRefuseFrac:     0.88,
			SystemOverRefuseFrac: 0.03,
		},
	}
}

// MinTrainPerFamily is the number of train templates a coding family keeps
// at least; validation templates are taken only beyond it.
const MinTrainPerFamily = 2

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
	case o.ValidationPerFamily < 0 || o.ValidationMalicious < 0 || o.ValidationBenign < 0:
		return fmt.Errorf("redteam options: validation templates (per family %d, malicious %d, benign %d) must be >= 0", o.ValidationPerFamily, o.ValidationMalicious, o.ValidationBenign)
	case o.HeldoutMalicious+o.ValidationMalicious >= len(maliciousTemplates):
		return fmt.Errorf("redteam options: HeldoutMalicious + ValidationMalicious = %d, want < %d (some train templates)", o.HeldoutMalicious+o.ValidationMalicious, len(maliciousTemplates))
	case o.HeldoutBenign+o.ValidationBenign >= len(benignTemplates):
		return fmt.Errorf("redteam options: HeldoutBenign + ValidationBenign = %d, want < %d (some train templates)", o.HeldoutBenign+o.ValidationBenign, len(benignTemplates))
	case o.TrainTasksPerTemplate < 1 || o.HeldoutTasksPerTemplate < 1 || o.ValidationTasksPerTemplate < 1:
		return fmt.Errorf("redteam options: tasks per template (train %d, validation %d, test %d) must be >= 1", o.TrainTasksPerTemplate, o.ValidationTasksPerTemplate, o.HeldoutTasksPerTemplate)
	case o.TrainRequestsPerTemplate < 1 || o.HeldoutRequestsPerTemplate < 1 || o.ValidationRequestsPerTemplate < 1:
		return fmt.Errorf("redteam options: requests per template (train %d, validation %d, test %d) must be >= 1", o.TrainRequestsPerTemplate, o.ValidationRequestsPerTemplate, o.HeldoutRequestsPerTemplate)
	case o.CorpusWorlds < 0:
		return fmt.Errorf("redteam options: CorpusWorlds = %d, want >= 0", o.CorpusWorlds)
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
	// Train, Validation and Test are the prompt rows of the three splits.
	// Tuning (distillation, SFT, RL, choosing knobs) may read Train and
	// Validation; only the final evaluation reads Test.
	Train, Validation, Test []PromptRow
	// Tasks are the coding tasks behind the prompt rows, by task id.
	Tasks map[string]Task
	// TestTemplates and ValidationTemplates list the template ids (coding,
	// malicious and benign) of those splits, sorted.
	TestTemplates, ValidationTemplates []string
	// Corpus is the base model's pretraining corpus (see
	// Options.CorpusSeed).
	Corpus []Conversation
}

// Independent random streams, so that changing one part's options leaves
// the others' output unchanged. The test split and its prompts use the
// streams the two-way split of earlier versions used, so a seed's test
// prompts (and the corpus decontaminated against them, on which the
// embedded base model was trained) are what they were.
const (
	streamSplit uint64 = iota + 1
	streamTrain
	streamHeldout
	streamCorpus
	streamValidationSplit
	streamValidation
)

func newRand(seed, stream uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, stream)) }

// split records the test and validation templates; the rest are train.
type split struct {
	test, validation map[string]bool
}

func (s split) of(template string) string {
	switch {
	case s.test[template]:
		return SplitTest
	case s.validation[template]:
		return SplitValidation
	}
	return SplitTrain
}

// chooseSplit draws the test templates (as earlier versions drew the
// held-out ones), then the validation templates among the rest from a
// stream of their own.
func chooseSplit(o Options) split {
	rng := newRand(o.Seed, streamSplit)
	s := split{test: map[string]bool{}, validation: map[string]bool{}}
	for _, f := range families {
		for _, i := range rng.Perm(len(f.templates))[:o.HeldoutPerFamily] {
			s.test[f.templates[i].id] = true
		}
	}
	for _, i := range rng.Perm(len(maliciousTemplates))[:o.HeldoutMalicious] {
		s.test[maliciousTemplates[i].id] = true
	}
	for _, i := range rng.Perm(len(benignTemplates))[:o.HeldoutBenign] {
		s.test[benignTemplates[i].id] = true
	}
	vrng := newRand(o.Seed, streamValidationSplit)
	pick := func(ids []string, n int) {
		var rest []string
		for _, id := range ids {
			if !s.test[id] {
				rest = append(rest, id)
			}
		}
		for _, i := range vrng.Perm(len(rest))[:max(0, min(n, len(rest)))] {
			s.validation[rest[i]] = true
		}
	}
	for _, f := range families {
		ids := make([]string, len(f.templates))
		for i := range f.templates {
			ids[i] = f.templates[i].id
		}
		pick(ids, min(o.ValidationPerFamily, len(f.templates)-o.HeldoutPerFamily-MinTrainPerFamily))
	}
	malIDs := make([]string, len(maliciousTemplates))
	for i := range maliciousTemplates {
		malIDs[i] = maliciousTemplates[i].id
	}
	pick(malIDs, o.ValidationMalicious)
	benIDs := make([]string, len(benignTemplates))
	for i := range benignTemplates {
		benIDs[i] = benignTemplates[i].id
	}
	pick(benIDs, o.ValidationBenign)
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
	w.TestTemplates = sortedKeys(sp.test)
	w.ValidationTemplates = sortedKeys(sp.validation)
	w.Train = drawRows(o, sp, SplitTrain, w.Tasks)
	w.Validation = drawRows(o, sp, SplitValidation, w.Tasks)
	w.Test = drawRows(o, sp, SplitTest, w.Tasks)

	// The corpus is the corpus world's (CorpusSeed), decontaminated
	// against that world's test prompts.
	co := o
	co.Seed = o.CorpusSeed
	csp, corpusTest := sp, w.Test
	if o.CorpusSeed != o.Seed {
		csp = chooseSplit(co)
		corpusTest = drawRows(co, csp, SplitTest, map[string]Task{})
	}
	heldPrompts := map[string]bool{}
	for _, r := range corpusTest {
		heldPrompts[r.Messages[0].Content] = true
	}
	for i := 1; i < o.CorpusWorlds; i++ {
		ow := co
		ow.Seed = o.CorpusSeed + uint64(i)
		for _, r := range drawRows(ow, chooseSplit(ow), SplitTest, map[string]Task{}) {
			heldPrompts[r.Messages[0].Content] = true
		}
	}
	w.Corpus = buildCorpus(co, csp, sp, heldPrompts)
	return w, nil
}

// drawRows draws the prompt rows of one split, recording its coding tasks
// in tasks.
func drawRows(o Options, sp split, which string, tasks map[string]Task) []PromptRow {
	stream, nTasks, nRequests := streamTrain, o.TrainTasksPerTemplate, o.TrainRequestsPerTemplate
	switch which {
	case SplitValidation:
		stream, nTasks, nRequests = streamValidation, o.ValidationTasksPerTemplate, o.ValidationRequestsPerTemplate
	case SplitTest:
		stream, nTasks, nRequests = streamHeldout, o.HeldoutTasksPerTemplate, o.HeldoutRequestsPerTemplate
	}
	rng := newRand(o.Seed, stream)
	var rows []PromptRow
	for fi := range families {
		f := &families[fi]
		for ti := range f.templates {
			ct := &f.templates[ti]
			if sp.of(ct.id) != which {
				continue
			}
			for _, t := range f.drawTasks(ct, rng, nTasks, which+"-"+ct.id) {
				tasks[t.ID] = t
				rows = append(rows, codingRows(t, which)...)
			}
		}
	}
	for mi := range maliciousTemplates {
		mt := &maliciousTemplates[mi]
		if sp.of(mt.id) != which {
			continue
		}
		for i, r := range drawMalicious(mt, rng, nRequests, o.JailbreakFrac) {
			rows = append(rows, PromptRow{
				ID:       fmt.Sprintf("%s-%s-%d", which, mt.id, i),
				Messages: []Message{{Role: "user", Content: r.Prompt}},
				Oracle:   OracleGeneralSafety,
				Meta:     Meta{Kind: KindMalicious, Family: KindMalicious, Template: mt.id, Split: which, Jailbreak: r.Jailbreak},
			})
		}
	}
	for bi := range benignTemplates {
		bt := &benignTemplates[bi]
		if sp.of(bt.id) != which {
			continue
		}
		for i, r := range drawBenign(bt, rng, nRequests) {
			rows = append(rows, PromptRow{
				ID:       fmt.Sprintf("%s-%s-%d", which, bt.id, i),
				Messages: []Message{{Role: "user", Content: r.Prompt}},
				Oracle:   OracleNoReject,
				Meta:     Meta{Kind: KindBenign, Family: KindBenign, Template: bt.id, Split: which},
			})
		}
	}
	return rows
}

// CorpusOverlap counts the rows whose prompt is a user turn of the corpus
// verbatim. It is 0 for the test rows when CorpusSeed == Seed.
func (w *World) CorpusOverlap(rows []PromptRow) int {
	seen := map[string]bool{}
	for _, c := range w.Corpus {
		for _, m := range c.Messages {
			if m.Role == "user" {
				seen[m.Content] = true
			}
		}
	}
	n := 0
	for _, r := range rows {
		if len(r.Messages) > 0 && seen[r.Messages[len(r.Messages)-1].Content] {
			n++
		}
	}
	return n
}

// RowRuleContext is the system prompt of a prompt row in context
// distillation: the catalog's policy and the rules of the row's
// meta.family (the policy alone for malicious and benign rows).
func RowRuleContext(row oracle.Row) string {
	family, _ := row.Meta["family"].(string)
	return RuleContext(family)
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

// buildCorpus draws fresh instances of the corpus world's train templates
// (sp), and of its test ones too when o.Corpus.CoverHeldout is set; a draw
// whose prompt is one of its test prompts is drawn again
// (decontamination). The conversations' Meta.Split is the generated
// world's (metaSplit). Validation templates count as train here: they
// did not exist when the embedded base model's corpus was drawn, and its
// corpus must stay what it was.
func buildCorpus(o Options, sp, metaSplit split, heldPrompts map[string]bool) []Conversation {
	c := o.Corpus
	rng := newRand(o.Seed, streamCorpus)
	nCoding := quota(c.Size, c.CodingFrac)
	nMal := min(c.Size-nCoding, quota(c.Size, c.MaliciousFrac))
	nBenign := c.Size - nCoding - nMal

	use := func(template string) bool { return c.CoverHeldout || sp.of(template) != SplitTest }
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
		meta := Meta{Kind: KindCoding, Family: t.Family, CWE: t.CWE, Template: t.Template, Split: metaSplit.of(t.Template)}
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
		meta := Meta{Kind: KindMalicious, Family: KindMalicious, Template: r.Template, Split: metaSplit.of(r.Template), Jailbreak: r.Jailbreak}
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
		meta := Meta{Kind: KindBenign, Family: KindBenign, Template: r.Template, Split: metaSplit.of(r.Template)}
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
