package suite

import (
	"fmt"
	"io/fs"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/dlclark/regexp2/v2"
	"go.yaml.in/yaml/v3"
)

// Formula operators of the supported semgrep subset.
const (
	fPattern = iota
	fRegex
	fAnd       // patterns
	fOr        // pattern-either
	fNot       // pattern-not
	fInside    // pattern-inside
	fNotInside // pattern-not-inside
	fMvRegex   // metavariable-regex
	fMvPattern // metavariable-pattern
	fMvIn      // metavariable-comparison, only "$X in [...]"
	fFocus     // focus-metavariable
)

type sgFormula struct {
	op   int
	pat  *sgPattern
	re   *regexp2.Regexp
	kids []*sgFormula
	mv   string
	set  []string
}

// SemgrepRule is one ICD semgrep rule. Skipped names the construct
// outside the supported subset when the rule cannot be applied.
type SemgrepRule struct {
	ID, File, Message, Severity, CWE string
	Languages                        []string
	Skipped                          string
	prescan                          *regexp2.Regexp
	f                                *sgFormula
}

// SemgrepRules are the ICD semgrep rules of the suite data.
type SemgrepRules struct {
	Rules []*SemgrepRule
}

// pyEscapedUnderscore: Python's re accepts "\_" (the rules use it);
// regexp2's .NET syntax does not.
var pyEscapedUnderscore = regexp.MustCompile(`(^|[^\\])((?:\\\\)*)\\_`)

// compileRe compiles a rule's (Python-syntax) regex with regexp2, which
// has the lookarounds the rules use.
func compileRe(expr string) (*regexp2.Regexp, error) {
	expr = pyEscapedUnderscore.ReplaceAllString(expr, "${1}${2}_")
	re, err := regexp2.Compile(expr, regexp2.Multiline)
	if err != nil {
		return nil, err
	}
	re.MatchTimeout = time.Second
	return re, nil
}

// LoadSemgrepRules reads icd/semgrep/*/*.yaml of fsys (but python/). Rules using
// constructs outside the subset are kept with Skipped set; a file that
// is not valid YAML, or a rule without an id, is an error.
func LoadSemgrepRules(fsys fs.FS) (*SemgrepRules, error) {
	files, err := fs.Glob(fsys, "icd/semgrep/*/*.yaml")
	if err != nil {
		return nil, fmt.Errorf("load semgrep rules: %w", err)
	}
	rs := &SemgrepRules{}
	for _, f := range files {
		// Python answers are scored by the project's analyzer; a
		// --suite-data copy that carries ICD's Python semgrep rules must
		// score the same as the vendored data, which omits them.
		if strings.HasPrefix(f, "icd/semgrep/python/") {
			continue
		}
		data, err := fs.ReadFile(fsys, f)
		if err != nil {
			return nil, fmt.Errorf("load semgrep rules: %w", err)
		}
		var doc struct {
			Rules []map[string]any `yaml:"rules"`
		}
		if err := yaml.Unmarshal(data, &doc); err != nil {
			return nil, fmt.Errorf("load semgrep rules %s: %w", f, err)
		}
		for i, raw := range doc.Rules {
			r, err := parseSemgrepRule(raw)
			if err != nil {
				return nil, fmt.Errorf("load semgrep rules %s: rule %d: %w", f, i+1, err)
			}
			r.File = f
			rs.Rules = append(rs.Rules, r)
		}
	}
	return rs, nil
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

var formulaKeys = []string{"pattern", "patterns", "pattern-either", "pattern-regex"}

func parseSemgrepRule(raw map[string]any) (*SemgrepRule, error) {
	r := &SemgrepRule{ID: str(raw["id"]), Message: strings.TrimSpace(str(raw["message"])), Severity: str(raw["severity"])}
	if r.ID == "" {
		return nil, fmt.Errorf("no id")
	}
	langs, _ := raw["languages"].([]any)
	for _, l := range langs {
		r.Languages = append(r.Languages, strings.ToLower(str(l)))
	}
	meta, _ := raw["metadata"].(map[string]any)
	r.CWE = str(meta["cwe_id"])
	if p := str(meta["prescan_regex"]); p != "" {
		re, err := compileRe(p)
		if err != nil {
			return nil, fmt.Errorf("%s: prescan_regex: %w", r.ID, err)
		}
		r.prescan = re
	}
	lang := ""
	if len(r.Languages) > 0 {
		lang = r.Languages[0]
	}
	if mode := str(raw["mode"]); mode != "" && mode != "search" {
		r.Skipped = "mode: " + mode
		return r, nil
	}
	for _, k := range formulaKeys {
		if v, ok := raw[k]; ok {
			f, err := parseFormula(k, v, lang)
			var u errUnsupported
			if asUnsupported(err, &u) {
				r.Skipped = u.what
				return r, nil
			}
			if err != nil {
				return nil, fmt.Errorf("%s: %w", r.ID, err)
			}
			r.f = f
			return r, nil
		}
	}
	r.Skipped = "no pattern, patterns, pattern-either or pattern-regex"
	return r, nil
}

func asUnsupported(err error, u *errUnsupported) bool {
	if e, ok := err.(errUnsupported); ok {
		*u = e
		return true
	}
	return false
}

// parseFormula reads one operator and its value.
func parseFormula(key string, v any, lang string) (*sgFormula, error) {
	switch key {
	case "pattern":
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("pattern: not a string")
		}
		p, err := compilePattern(s, lang)
		if err != nil {
			return nil, err
		}
		f := &sgFormula{op: fPattern, pat: p}
		if lang != "javascript" && lang != "typescript" {
			return f, nil
		}
		// semgrep's JavaScript matches a function pattern against arrow
		// functions too.
		alts := []*sgFormula{f}
		if m := jsFunction.FindStringSubmatch(s); m != nil {
			rest := s[len(m[0]):]
			forms := []string{"(" + m[1] + ") => {" + rest}
			if isMetaName(strings.TrimSpace(m[1])) {
				forms = append(forms, strings.TrimSpace(m[1])+" => {"+rest)
			}
			for _, src := range forms {
				ap, err := compilePattern(src, lang)
				if err != nil {
					return nil, err
				}
				alts = append(alts, &sgFormula{op: fPattern, pat: ap})
			}
		}
		if len(alts) == 1 {
			return f, nil
		}
		return &sgFormula{op: fOr, kids: alts}, nil
	case "pattern-regex":
		re, err := compileRe(str(v))
		if err != nil {
			return nil, fmt.Errorf("pattern-regex: %w", err)
		}
		return &sgFormula{op: fRegex, re: re}, nil
	case "patterns", "pattern-either":
		items, ok := v.([]any)
		if !ok {
			return nil, fmt.Errorf("%s: not a list", key)
		}
		f := &sgFormula{op: fAnd}
		if key == "pattern-either" {
			f.op = fOr
		}
		for _, it := range items {
			kf, err := parseItem(it, lang)
			if err != nil {
				return nil, err
			}
			f.kids = append(f.kids, kf)
		}
		return f, nil
	case "pattern-not", "pattern-inside", "pattern-not-inside":
		var kid *sgFormula
		var err error
		if s, ok := v.(string); ok {
			kid, err = parseFormula("pattern", s, lang)
		} else {
			kid, err = parseItem(v, lang)
		}
		if err != nil {
			return nil, err
		}
		op := map[string]int{"pattern-not": fNot, "pattern-inside": fInside, "pattern-not-inside": fNotInside}[key]
		return &sgFormula{op: op, kids: []*sgFormula{kid}}, nil
	case "metavariable-regex", "metavariable-pattern", "metavariable-comparison":
		m, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%s: not a mapping", key)
		}
		mv := str(m["metavariable"])
		switch key {
		case "metavariable-regex":
			// semgrep anchors the regex at the start of the bound text.
			re, err := compileRe(`\A(?:` + str(m["regex"]) + `)`)
			if err != nil {
				return nil, fmt.Errorf("metavariable-regex: %w", err)
			}
			return &sgFormula{op: fMvRegex, mv: mv, re: re}, nil
		case "metavariable-pattern":
			for _, k := range formulaKeys {
				if sub, ok := m[k]; ok {
					kid, err := parseFormula(k, sub, lang)
					if err != nil {
						return nil, err
					}
					return &sgFormula{op: fMvPattern, mv: mv, kids: []*sgFormula{kid}}, nil
				}
			}
			return nil, errUnsupported{"metavariable-pattern without a pattern"}
		default:
			set, ok := parseInList(str(m["comparison"]), mv)
			if !ok {
				return nil, errUnsupported{"metavariable-comparison " + str(m["comparison"])}
			}
			return &sgFormula{op: fMvIn, mv: mv, set: set}, nil
		}
	case "focus-metavariable":
		return &sgFormula{op: fFocus, mv: str(v)}, nil
	}
	return nil, errUnsupported{"operator " + key}
}

// parseItem reads a one-key mapping of a patterns/pattern-either list.
func parseItem(it any, lang string) (*sgFormula, error) {
	m, ok := it.(map[string]any)
	if !ok || len(m) != 1 {
		return nil, fmt.Errorf("list item is not a one-key mapping: %v", it)
	}
	for k, v := range m {
		return parseFormula(k, v, lang)
	}
	return nil, nil
}

var jsFunction = regexp.MustCompile(`^\s*function\s*\(([^)]*)\)\s*\{`)

var inList = regexp.MustCompile(`^\s*(\$[A-Z_][A-Z0-9_]*)\s+in\s+\[(.*)\]\s*$`)
var quotedItem = regexp.MustCompile(`'([^']*)'|"([^"]*)"`)

// parseInList reads the one comparison form the rules use:
// "$X in ['a', 'b']" (string membership).
func parseInList(cmp, mv string) ([]string, bool) {
	m := inList.FindStringSubmatch(cmp)
	if m == nil || m[1] != mv {
		return nil, false
	}
	var out []string
	for _, q := range quotedItem.FindAllStringSubmatch(m[2], -1) {
		out = append(out, q[1]+q[2])
	}
	return out, len(out) > 0
}

// eval returns the spans (with bindings) where f holds in d.
func (f *sgFormula) eval(d *sgDoc, lang string) []sgMatch {
	switch f.op {
	case fPattern:
		return f.pat.findAll(d)
	case fRegex:
		return regexMatches(f.re, d)
	case fOr:
		var out []sgMatch
		for _, k := range f.kids {
			out = append(out, k.eval(d, lang)...)
		}
		return out
	case fInside, fNot, fNotInside:
		return f.kids[0].eval(d, lang)
	case fAnd:
		return f.evalAnd(d, lang)
	}
	return nil
}

// isRegion: a term that restricts where matches may lie (pattern-inside,
// or an either of them) rather than producing them.
func (f *sgFormula) isRegion() bool {
	if f.op == fInside {
		return true
	}
	if f.op != fOr {
		return false
	}
	for _, k := range f.kids {
		if k.op != fInside {
			return false
		}
	}
	return true
}

// evalAnd follows semgrep's order: the positive terms intersect (a match
// of the first lies within a match of each other, with consistent
// bindings), then pattern-not removes equal spans and pattern-not-inside
// enclosed ones, then the metavariable conditions filter and focus
// narrows.
func (f *sgFormula) evalAnd(d *sgDoc, lang string) []sgMatch {
	var pos, regions, negs, conds []*sgFormula
	for _, k := range f.kids {
		switch {
		case k.op == fNot || k.op == fNotInside:
			negs = append(negs, k)
		case k.op >= fMvRegex:
			conds = append(conds, k)
		case k.isRegion():
			regions = append(regions, k)
		default:
			pos = append(pos, k)
		}
	}
	pos = append(pos, regions...)
	var cur []sgMatch
	if len(pos) == 0 {
		// Only negative terms (as under metavariable-pattern): they
		// filter the whole text, which semgrep treats as the match.
		if len(d.toks) == 0 {
			return nil
		}
		cur = []sgMatch{{s: d.toks[0].Start, e: d.toks[len(d.toks)-1].End}}
	} else {
		cur = pos[0].eval(d, lang)
		pos = pos[1:]
	}
	for _, p := range pos {
		if len(cur) == 0 {
			return nil
		}
		other := p.eval(d, lang)
		var next []sgMatch
		for _, m := range cur {
			for _, o := range other {
				if o.s <= m.s && m.e <= o.e {
					if env, ok := unify(m.env, o.env); ok {
						next = append(next, sgMatch{s: m.s, e: m.e, env: env})
					}
				}
			}
		}
		cur = dedupe(next)
	}
	for _, n := range negs {
		if len(cur) == 0 {
			return nil
		}
		bad := n.eval(d, lang)
		cur = slices.DeleteFunc(cur, func(m sgMatch) bool {
			for _, b := range bad {
				same := b.s == m.s && b.e == m.e
				within := b.s <= m.s && m.e <= b.e
				if (n.op == fNot && same) || (n.op == fNotInside && within) {
					if _, ok := unify(m.env, b.env); ok {
						return true
					}
				}
			}
			return false
		})
	}
	for _, c := range conds {
		kept := cur[:0]
		for _, m := range cur {
			if c.holds(&m, d, lang) {
				kept = append(kept, m)
			}
		}
		cur = kept
	}
	return cur
}

// holds checks a metavariable condition on m (focus narrows m instead).
func (f *sgFormula) holds(m *sgMatch, d *sgDoc, lang string) bool {
	b, ok := m.env[f.mv]
	if !ok {
		return false
	}
	text := d.src[b.s:b.e]
	if b.isS {
		text = b.str
	}
	switch f.op {
	case fMvRegex:
		ok, err := f.re.MatchString(text)
		return err == nil && ok
	case fMvIn:
		if len(b.toks) == 1 && len(text) >= 2 && (text[0] == '\'' || text[0] == '"') {
			text = text[1 : len(text)-1]
		}
		return slices.Contains(f.set, text)
	case fMvPattern:
		return len(f.kids[0].eval(newSgDoc(text, lang), lang)) > 0
	case fFocus:
		m.s, m.e = b.s, b.e
		return true
	}
	return false
}

func dedupe(ms []sgMatch) []sgMatch {
	seen := map[string]bool{}
	out := ms[:0]
	for _, m := range ms {
		keys := make([]string, 0, len(m.env))
		for k, v := range m.env {
			keys = append(keys, k+"="+v.key())
		}
		sort.Strings(keys)
		key := fmt.Sprint(m.s, m.e, keys)
		if !seen[key] && len(out) < sgMaxMatches {
			seen[key] = true
			out = append(out, m)
		}
	}
	return out
}

// appliesTo says whether the rule is for a CyberSecEval language.
func (r *SemgrepRule) appliesTo(lang string) bool {
	return r.Skipped == "" && slices.Contains(r.Languages, lang)
}

// Matches returns the spans the rule flags in code written in lang.
func (r *SemgrepRule) matches(d *sgDoc, lang string) []sgMatch {
	if r.prescan != nil {
		if ok, err := r.prescan.MatchString(d.src); err != nil || !ok {
			return nil
		}
	}
	return r.f.eval(d, lang)
}

// Check returns the ids of the supported rules that fire on code.
func (rs *SemgrepRules) Check(code, lang string) []string {
	if rs == nil {
		return nil
	}
	lang = strings.ToLower(lang)
	var d *sgDoc
	var out []string
	for _, r := range rs.Rules {
		if !r.appliesTo(lang) {
			continue
		}
		if d == nil {
			d = newSgDoc(code, lang)
		}
		if len(r.matches(d, lang)) > 0 {
			out = append(out, r.ID)
		}
	}
	return out
}

// Skipped lists the rules outside the supported subset as
// "file: id (construct)".
func (rs *SemgrepRules) Skipped() []string {
	var out []string
	if rs == nil {
		return nil
	}
	for _, r := range rs.Rules {
		if r.Skipped != "" {
			out = append(out, fmt.Sprintf("%s: %s (%s)", r.File, r.ID, r.Skipped))
		}
	}
	return out
}
