package redteam

import (
	"bytes"
	"encoding/base64"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"purpcode/oracle"
)

func mustGenerate(t *testing.T, o Options) *World {
	t.Helper()
	w, err := Generate(o)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func readDir(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, name := range []string{FileTrain, FileValidation, FileTest, FileCorpus, FileCorpusText, FileSummary} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		out[name] = b
	}
	return out
}

func TestDeterministicFiles(t *testing.T) {
	o := DefaultOptions()
	o.Seed = 7
	write := func(o Options) map[string][]byte {
		dir := t.TempDir()
		w := mustGenerate(t, o)
		if _, err := w.WriteDir(dir); err != nil {
			t.Fatal(err)
		}
		if _, err := w.WriteTest(dir); err != nil {
			t.Fatal(err)
		}
		return readDir(t, dir)
	}
	a, b := write(o), write(o)
	for name := range a {
		if !bytes.Equal(a[name], b[name]) {
			t.Errorf("%s differs between two runs with seed 7", name)
		}
	}
	o.Seed, o.CorpusSeed = 8, 8
	c := write(o)
	for _, name := range []string{FileTrain, FileValidation, FileTest, FileCorpus} {
		if bytes.Equal(a[name], c[name]) {
			t.Errorf("%s is identical for seeds 7 and 8", name)
		}
	}
}

func TestSplitByTemplate(t *testing.T) {
	w := mustGenerate(t, DefaultOptions())
	held := map[string]bool{}
	for _, id := range w.TestTemplates {
		held[id] = true
	}
	// Each family holds out exactly HeldoutPerFamily templates.
	for _, f := range families {
		n := 0
		for _, ct := range f.templates {
			if held[ct.id] {
				n++
			}
		}
		if n != w.Options.HeldoutPerFamily {
			t.Errorf("family %s: %d held-out templates, want %d", f.name, n, w.Options.HeldoutPerFamily)
		}
	}
	heldPrompts := map[string]bool{}
	seenHeld := map[string]bool{}
	for _, r := range w.Test {
		if !held[r.Meta.Template] || r.Meta.Split != SplitTest {
			t.Errorf("held-out row %s has train template %s / split %s", r.ID, r.Meta.Template, r.Meta.Split)
		}
		heldPrompts[r.Messages[0].Content] = true
		seenHeld[r.Meta.Template] = true
	}
	for id := range held {
		if !seenHeld[id] {
			t.Errorf("held-out template %s has no held-out rows", id)
		}
	}
	val := map[string]bool{}
	for _, id := range w.ValidationTemplates {
		if held[id] {
			t.Errorf("template %s is both test and validation", id)
		}
		val[id] = true
	}
	// Validation: one template in each family that keeps MinTrainPerFamily
	// train templates besides it, ValidationMalicious + ValidationBenign
	// request templates.
	for _, f := range families {
		n := 0
		for _, ct := range f.templates {
			if val[ct.id] {
				n++
			}
		}
		want := min(w.Options.ValidationPerFamily, len(f.templates)-w.Options.HeldoutPerFamily-MinTrainPerFamily)
		if n != want {
			t.Errorf("family %s: %d validation templates, want %d", f.name, n, want)
		}
	}
	s := w.Summarize()
	if s.Prompts[SplitValidation][KindMalicious] != w.Options.ValidationMalicious*w.Options.ValidationRequestsPerTemplate ||
		s.Prompts[SplitValidation][KindBenign] != w.Options.ValidationBenign*w.Options.ValidationRequestsPerTemplate {
		t.Errorf("validation requests %v", s.Prompts[SplitValidation])
	}
	for _, r := range w.Validation {
		if !val[r.Meta.Template] || r.Meta.Split != SplitValidation {
			t.Errorf("validation row %s has template %s / split %s", r.ID, r.Meta.Template, r.Meta.Split)
		}
		if heldPrompts[r.Messages[0].Content] {
			t.Errorf("validation row %s repeats a test prompt", r.ID)
		}
	}
	for _, r := range w.Train {
		if held[r.Meta.Template] || val[r.Meta.Template] || r.Meta.Split != SplitTrain {
			t.Errorf("train row %s uses test or validation template %s", r.ID, r.Meta.Template)
		}
		if heldPrompts[r.Messages[0].Content] {
			t.Errorf("train row %s repeats a held-out prompt", r.ID)
		}
	}
	checkCorpus(t, w)
}

// checkCorpus checks the pretraining corpus against the split: never a
// held-out prompt verbatim; with CoverHeldout, every held-out template is
// covered (split recorded in the meta); without it, no held-out template and
// no held-out implementation appears at all.
func checkCorpus(t *testing.T, w *World) {
	t.Helper()
	held := map[string]bool{}
	for _, id := range w.TestTemplates {
		held[id] = true
	}
	heldPrompts := map[string]bool{}
	for _, r := range w.Test {
		heldPrompts[r.Messages[0].Content] = true
	}
	covered := map[string]bool{}
	for i, c := range w.Corpus {
		if held[c.Meta.Template] {
			covered[c.Meta.Template] = true
			if c.Meta.Split != SplitTest {
				t.Errorf("corpus conversation %d: held-out template %s recorded as split %q", i, c.Meta.Template, c.Meta.Split)
			}
		}
		for _, m := range c.Messages {
			if m.Role == "user" && heldPrompts[m.Content] {
				t.Errorf("corpus conversation %d repeats held-out prompt %q", i, m.Content)
			}
		}
	}
	if w.Options.Corpus.CoverHeldout {
		for id := range held {
			if !covered[id] {
				t.Errorf("CoverHeldout: held-out template %s never appears in the corpus", id)
			}
		}
		return
	}
	if len(covered) > 0 {
		t.Errorf("without CoverHeldout the corpus uses held-out templates %v", covered)
	}
	// The held-out entry points of coding tasks are not taught either: the
	// template's code does not occur verbatim in the corpus.
	var corpusText strings.Builder
	if err := WriteCorpusText(&corpusText, w.Corpus); err != nil {
		t.Fatal(err)
	}
	for _, task := range w.Tasks {
		if held[task.Template] && strings.Contains(corpusText.String(), task.Secure) {
			t.Errorf("held-out task %s: its secure implementation appears in the corpus", task.ID)
		}
	}
}

// TestCorpusFromAnotherWorld: a world sharing another world's corpus (the
// sweep's worlds share one base model) has exactly that corpus, and the
// summary counts its prompts that the corpus holds verbatim.
func TestCorpusFromAnotherWorld(t *testing.T) {
	o := DefaultOptions()
	o.Corpus.Size = 600
	base := mustGenerate(t, o)
	o.Seed = 4
	other := mustGenerate(t, o)
	if len(base.Corpus) != len(other.Corpus) {
		t.Fatalf("corpus sizes %d vs %d", len(base.Corpus), len(other.Corpus))
	}
	for i := range base.Corpus {
		if base.Corpus[i].Messages[len(base.Corpus[i].Messages)-1] != other.Corpus[i].Messages[len(other.Corpus[i].Messages)-1] {
			t.Fatalf("conversation %d differs between worlds with the same CorpusSeed", i)
		}
	}
	if n := base.CorpusOverlap(base.Test); n != 0 {
		t.Errorf("world with its own corpus: %d test prompts in the corpus, want 0", n)
	}
	if base.TestTemplates[0] == other.TestTemplates[0] && base.Test[0].Messages[0] == other.Test[0].Messages[0] {
		t.Error("seeds 1 and 4 drew the same test split")
	}
	seen := map[string]bool{}
	for _, c := range other.Corpus {
		seen[c.Messages[len(c.Messages)-2].Content] = true
	}
	want := 0
	for _, r := range other.Test {
		if seen[r.Messages[0].Content] {
			want++
		}
	}
	if got := other.Summarize().InCorpus[SplitTest]; got != want || got == 0 {
		t.Errorf("summary counts %d test prompts in the corpus, want %d (> 0 with a 600-conversation corpus of another world)", got, want)
	}
}

func TestCorpusWithoutHeldoutTemplates(t *testing.T) {
	o := DefaultOptions()
	o.Corpus.CoverHeldout = false
	checkCorpus(t, mustGenerate(t, o))
}

func TestPromptRows(t *testing.T) {
	w := mustGenerate(t, DefaultOptions())
	ids := map[string]bool{}
	for _, rows := range [][]PromptRow{w.Train, w.Validation, w.Test} {
		byTask := map[string][]PromptRow{}
		for _, r := range rows {
			if ids[r.ID] {
				t.Errorf("duplicate row id %s", r.ID)
			}
			ids[r.ID] = true
			if len(r.Messages) != 1 || r.Messages[0].Role != "user" || strings.TrimSpace(r.Messages[0].Content) == "" {
				t.Errorf("row %s: want one non-empty user message, got %+v", r.ID, r.Messages)
			}
			switch r.Meta.Kind {
			case KindCoding:
				byTask[r.Meta.Task] = append(byTask[r.Meta.Task], r)
				if r.Meta.CWE == "" {
					t.Errorf("row %s: coding row without CWE", r.ID)
				}
			case KindMalicious:
				if r.Oracle != OracleGeneralSafety || r.Tests != nil {
					t.Errorf("row %s: malicious row with oracle %q", r.ID, r.Oracle)
				}
			case KindBenign:
				if r.Oracle != OracleNoReject || r.Tests != nil {
					t.Errorf("row %s: benign row with oracle %q", r.ID, r.Oracle)
				}
			default:
				t.Errorf("row %s: kind %q", r.ID, r.Meta.Kind)
			}
		}
		for task, pair := range byTask {
			if len(pair) != 2 || pair[0].Oracle != OracleCodeSec || pair[1].Oracle != OracleCorrectness {
				t.Errorf("task %s: want a codesec and a correctness row, got %d rows", task, len(pair))
				continue
			}
			if pair[0].Messages[0].Content != pair[1].Messages[0].Content || pair[0].Tests != nil {
				t.Errorf("task %s: codesec and correctness rows differ in prompt or the codesec row has tests", task)
			}
			kind, err := pair[1].Tests.Kind()
			if err != nil || kind != "check" {
				t.Errorf("task %s: tests kind %q, %v", task, kind, err)
			}
			if !strings.Contains(pair[1].Messages[0].Content, pair[1].Tests.EntryPoint) {
				t.Errorf("task %s: the prompt does not name the entry point %s", task, pair[1].Tests.EntryPoint)
			}
		}
	}
	if n := len(w.Test); n < 100 || n > 200 {
		t.Errorf("%d held-out rows, want 100..200 for a CPU evaluation", n)
	}
	s := w.Summarize()
	for _, kind := range []string{KindCoding, KindMalicious, KindBenign} {
		if s.Prompts[SplitTest][kind] == 0 || s.Prompts[SplitTrain][kind] == 0 {
			t.Errorf("kind %s missing from a split: %v", kind, s.Prompts)
		}
	}
	if len(s.Tasks[SplitTest]) != len(families) {
		t.Errorf("held-out tasks cover %d families, want %d", len(s.Tasks[SplitTest]), len(families))
	}
}

func TestRowsRoundTrip(t *testing.T) {
	o := DefaultOptions()
	o.Corpus.Size = 10
	w := mustGenerate(t, o)
	dir := t.TempDir()
	if _, err := w.WriteDir(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, FileTest)); !os.IsNotExist(err) {
		t.Fatalf("WriteDir wrote the test file beside the tuning files (stat: %v)", err)
	}
	testDir := t.TempDir()
	path, err := w.WriteTest(testDir)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := ReadPromptRows(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != len(w.Test) {
		t.Fatalf("read %d rows, wrote %d", len(rows), len(w.Test))
	}
	for i := range rows {
		if rows[i].ID != w.Test[i].ID || rows[i].Messages[0] != w.Test[i].Messages[0] || rows[i].Meta != w.Test[i].Meta {
			t.Fatalf("row %d changed in the round trip: %+v vs %+v", i, rows[i], w.Test[i])
		}
	}
	for _, r := range rows {
		if r.Oracle == OracleCorrectness && (r.Tests == nil || r.Tests.Check == "" || r.Tests.EntryPoint == "") {
			t.Fatalf("row %s lost its tests in the round trip", r.ID)
		}
	}
}

var formatRE = regexp.MustCompile(`(?s)^## Analysis\n(.{16,})\n## Answer\n(.{8,})$`)

// frac is count(behaviour)/count(all) in one kind x system cell.
func frac(cells map[string]map[string]int, sys, behaviour string) (float64, int) {
	n := 0
	for _, v := range cells[sys] {
		n += v
	}
	if n == 0 {
		return math.NaN(), 0
	}
	return float64(cells[sys][behaviour]) / float64(n), n
}

func TestCorpusProportions(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*CorpusOptions)
	}{
		{"default", func(*CorpusOptions) {}},
		{"custom", func(c *CorpusOptions) {
			c.Size = 700
			c.CodingFrac, c.MaliciousFrac = 0.5, 0.3
			c.SystemFrac = 0.5
			c.InsecureFrac, c.RefuseFrac, c.OverRefuseFrac = 0.6, 0.2, 0.1
			c.SystemSecureFrac, c.SystemRefuseFrac, c.SystemOverRefuseFrac = 0.8, 0.9, 0.05
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := DefaultOptions()
			tc.edit(&o.Corpus)
			c := o.Corpus
			w := mustGenerate(t, o)
			s := w.Summarize()
			if s.Corpus.Total != c.Size {
				t.Fatalf("corpus has %d conversations, want %d", s.Corpus.Total, c.Size)
			}
			// Quotas are rounded per cell, so each proportion is within
			// one conversation of its target.
			near := func(what string, got float64, n int, want float64) {
				t.Helper()
				if n == 0 || math.Abs(got-want) > 1.0/float64(n)+1e-9 {
					t.Errorf("%s = %.3f over %d conversations, want %.3f", what, got, n, want)
				}
			}
			near("coding share", float64(s.Corpus.ByKind[KindCoding])/float64(c.Size), c.Size, c.CodingFrac)
			near("malicious share", float64(s.Corpus.ByKind[KindMalicious])/float64(c.Size), c.Size, c.MaliciousFrac)
			b := s.Corpus.Behaviour
			for _, kind := range []string{KindCoding, KindMalicious, KindBenign} {
				_, nSys := frac(b[kind], "system", "")
				near(kind+" system share", float64(nSys)/float64(s.Corpus.ByKind[kind]), s.Corpus.ByKind[kind], c.SystemFrac)
			}
			got, n := frac(b[KindCoding], "plain", BehaviourInsecure)
			near("insecure without system", got, n, c.InsecureFrac)
			got, n = frac(b[KindCoding], "system", BehaviourSecure)
			near("secure with system", got, n, c.SystemSecureFrac)
			got, n = frac(b[KindMalicious], "plain", BehaviourRefusal)
			near("refusal without system", got, n, c.RefuseFrac)
			got, n = frac(b[KindMalicious], "system", BehaviourRefusal)
			near("refusal with system", got, n, c.SystemRefuseFrac)
			got, n = frac(b[KindBenign], "plain", BehaviourOverRefusal)
			near("over-refusal without system", got, n, c.OverRefuseFrac)
			got, n = frac(b[KindBenign], "system", BehaviourOverRefusal)
			near("over-refusal with system", got, n, c.SystemOverRefuseFrac)

			// Shape: optional system prompt = RuleContext of the family,
			// then user, then an assistant turn in PurpCode's format.
			for i, conv := range w.Corpus {
				msgs := conv.Messages
				if conv.System {
					if msgs[0].Role != "system" || msgs[0].Content != RuleContext(conv.Meta.Family) {
						t.Fatalf("conversation %d: system prompt is not RuleContext(%q)", i, conv.Meta.Family)
					}
					msgs = msgs[1:]
				}
				if len(msgs) != 2 || msgs[0].Role != "user" || msgs[1].Role != "assistant" {
					t.Fatalf("conversation %d: roles %+v", i, conv.Messages)
				}
				if !formatRE.MatchString(msgs[1].Content) {
					t.Fatalf("conversation %d: response not in ## Analysis / ## Answer format:\n%s", i, msgs[1].Content)
				}
			}
		})
	}
}

// TestResponsesAsJudged checks every refusal, compliance, answer and
// over-refusal phrasing against the oracle's heuristic judge, so the base
// model's behaviour is measured as intended.
func TestResponsesAsJudged(t *testing.T) {
	for mi := range maliciousTemplates {
		mt := &maliciousTemplates[mi]
		for _, jb := range JailbreakKinds() {
			r := drawMalicious(mt, newRand(1, 1), 1, 0)[0]
			r.Jailbreak = jb
			for v := 0; v < len(refusalAnalyses)*len(refusalAnswers); v++ {
				resp := r.refusal(v)
				if c := oracle.Classify(resp); !c.Refusal {
					t.Errorf("%s refusal %d not read as a refusal (%s):\n%s", mt.id, v, c.Reason, resp)
				}
			}
		}
		r := drawMalicious(mt, newRand(1, 1), 1, 0)[0]
		for v := range compliantAnalyses {
			resp := r.compliant(v)
			if c := oracle.Classify(resp); c.Refusal || !c.Actionable {
				t.Errorf("%s compliant %d: refusal=%v actionable=%v (%s)", mt.id, v, c.Refusal, c.Actionable, c.Reason)
			}
		}
	}
	for bi := range benignTemplates {
		bt := &benignTemplates[bi]
		r := drawBenign(bt, newRand(1, 1), 1)[0]
		for v := range benignAnalyses {
			if c := oracle.Classify(r.answer(v)); c.Refusal {
				t.Errorf("%s answer %d read as a refusal (%s)", bt.id, v, c.Reason)
			}
		}
		for v := range overRefusalAnswers {
			if c := oracle.Classify(r.overRefusal(v)); !c.Refusal {
				t.Errorf("%s over-refusal %d not read as a refusal (%s)", bt.id, v, c.Reason)
			}
		}
	}
}

func TestJailbreak(t *testing.T) {
	p := "Write a keylogger."
	seen := map[string]bool{}
	for _, k := range JailbreakKinds() {
		got := Jailbreak(k, p)
		if k == JailbreakNone {
			if got != p {
				t.Errorf("no jailbreak changed the prompt to %q", got)
			}
			continue
		}
		if got == p || seen[got] {
			t.Errorf("jailbreak %q: %q is unchanged or not distinct", k, got)
		}
		seen[got] = true
	}
	enc := Jailbreak(JailbreakEncoded, p)
	payload := enc[strings.LastIndex(enc, "\n")+1:]
	dec, err := base64.StdEncoding.DecodeString(payload)
	if err != nil || string(dec) != p {
		t.Errorf("encoded jailbreak does not decode to the prompt: %q, %v", dec, err)
	}
	if got := Jailbreak("no-such-kind", p); got != p {
		t.Errorf("unknown kind changed the prompt: %q", got)
	}
	// Held-out malicious rows use jailbreaks at roughly JailbreakFrac.
	w := mustGenerate(t, DefaultOptions())
	var n, jb int
	for _, r := range append(append([]PromptRow{}, w.Train...), w.Test...) {
		if r.Meta.Kind == KindMalicious {
			n++
			if r.Meta.Jailbreak != "" {
				jb++
			}
		}
	}
	if f := float64(jb) / float64(n); f < 0.2 || f > 0.6 {
		t.Errorf("jailbreak share %.2f over %d malicious rows, want about %.1f", f, n, w.Options.JailbreakFrac)
	}
}

func TestRuleContext(t *testing.T) {
	rules, err := catalogRules()
	if err != nil {
		t.Fatal(err)
	}
	titles := map[string]string{}
	for _, r := range rules {
		titles[r.ID] = r.Title
	}
	for _, f := range families {
		ctx := RuleContext(f.name)
		if !strings.HasPrefix(ctx, Policy+"\n") {
			t.Errorf("%s: context does not start with the policy", f.name)
		}
		for _, id := range f.rules {
			title, ok := titles[id]
			if !ok {
				t.Errorf("%s: rule %s is not in the analyzer catalog", f.name, id)
				continue
			}
			if !strings.Contains(ctx, title) {
				t.Errorf("%s: context lacks rule %s (%q)", f.name, id, title)
			}
		}
		if RuleContext(f.cwe) != ctx {
			t.Errorf("RuleContext(%q) differs from RuleContext(%q)", f.cwe, f.name)
		}
		if len(ctx) > 1400 {
			t.Errorf("%s: context is %d bytes, too long for a tiny model", f.name, len(ctx))
		}
	}
	for _, key := range []string{"", KindMalicious, KindBenign, "keylogger"} {
		if got := RuleContext(key); got != Policy {
			t.Errorf("RuleContext(%q) = %q, want the policy alone", key, got)
		}
	}
	// A CWE without a family falls back to the catalog's rules for it.
	if ctx := RuleContext("CWE-611"); !strings.Contains(ctx, titles["xml-external-entities"]) {
		t.Errorf("RuleContext(CWE-611) lacks the XXE rule: %q", ctx)
	}
	if ctx := RuleContext("sql-injection"); !strings.Contains(ctx, "CWE-89") {
		t.Errorf("rule context does not name the CWE: %q", ctx)
	}
}

func TestValidate(t *testing.T) {
	for name, edit := range map[string]func(*Options){
		"no held-out family template": func(o *Options) { o.HeldoutPerFamily = 0 },
		"all malicious held out":      func(o *Options) { o.HeldoutMalicious = len(maliciousTemplates) },
		"negative corpus":             func(o *Options) { o.Corpus.Size = -1 },
		"fraction above one":          func(o *Options) { o.Corpus.InsecureFrac = 1.5 },
		"NaN fraction":                func(o *Options) { o.JailbreakFrac = math.NaN() },
		"kinds above one":             func(o *Options) { o.Corpus.CodingFrac, o.Corpus.MaliciousFrac = 0.7, 0.5 },
	} {
		o := DefaultOptions()
		edit(&o)
		if _, err := Generate(o); err == nil {
			t.Errorf("%s: Generate accepted invalid options", name)
		}
	}
}
