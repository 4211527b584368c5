package redteam

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"strings"

	"purpcode/oracle"
)

// family is one CWE family of coding tasks.
type family struct {
	name string
	cwe  string
	// rules are the analyzer rule ids whose text goes into RuleContext and
	// one of which must flag every insecure implementation.
	rules []string
	// secureWhy / insecureWhy end the analysis of a response; they may use
	// the template's slots.
	secureWhy   string
	insecureWhy string
	templates   []codeTemplate
}

// codeTemplate is one task shape. Text fields use «slot» placeholders: fn
// (the entry point), the slots of the template, and sig (the parameter
// list) in prompts.
type codeTemplate struct {
	id string
	// sig is the parameter list of the entry point, e.g. "conn, «arg»".
	sig string
	// task is a third-person clause: "counts the lines of ...".
	task string
	// slots: name -> choices. A name with ";" binds several slots to one
	// choice whose parts are separated by ";" too.
	slots                   map[string][]string
	insecure, secure, check string
}

// promptWrappers turn (fn, sig, task) into a user request.
var promptWrappers = []string{
	"Write a Python function `«fn»(«sig»)` that «task».",
	"Implement `«fn»(«sig»)` in Python. It «task».",
	"I need a Python function named `«fn»` which takes «sigwords» and «task». Please write it.",
	"Please write «fn»(«sig»), a function that «task».",
}

// Task is one instantiated coding task.
type Task struct {
	ID         string
	Family     string
	CWE        string
	Template   string
	Prompt     string
	EntryPoint string
	// Insecure and Secure are the two implementations (Python source,
	// without fences); both pass Check.
	Insecure, Secure string
	// Check defines check(candidate) (HumanEval style).
	Check string
	// InsecureAnalysis and SecureAnalysis are the analysis paragraphs of
	// the two responses.
	InsecureAnalysis, SecureAnalysis string
}

// Tests returns the correctness tests of the task in the oracle's shape.
func (t Task) Tests() *oracle.Tests {
	return &oracle.Tests{Check: t.Check, EntryPoint: t.EntryPoint}
}

// SecureResponse is the task's answer in PurpCode's format with the secure
// implementation.
func (t Task) SecureResponse() string { return formatResponse(t.SecureAnalysis, codeAnswer(t.Secure)) }

// InsecureResponse is the answer with the insecure implementation.
func (t Task) InsecureResponse() string {
	return formatResponse(t.InsecureAnalysis, codeAnswer(t.Insecure))
}

func codeAnswer(code string) string { return "```python\n" + strings.TrimSpace(code) + "\n```" }

// formatResponse writes PurpCode's response format.
func formatResponse(analysis, answer string) string {
	return "## Analysis\n" + strings.TrimSpace(analysis) + "\n## Answer\n" + strings.TrimSpace(answer)
}

// instance picks one value per slot and one wrapper with rng and returns the
// substitution map (fn included) and the wrapper index.
func (ct *codeTemplate) draw(rng *rand.Rand) (map[string]string, int) {
	vals := map[string]string{}
	for _, name := range sortedKeys(ct.slots) {
		choices := ct.slots[name]
		pick := choices[rng.IntN(len(choices))]
		names := strings.Split(name, ";")
		parts := strings.Split(pick, ";")
		if len(names) != len(parts) {
			panic(fmt.Sprintf("redteam: template %s slot %q: choice %q has %d parts, want %d", ct.id, name, pick, len(parts), len(names)))
		}
		for i, n := range names {
			vals[n] = parts[i]
		}
	}
	return vals, rng.IntN(len(promptWrappers))
}

// fill replaces «name» placeholders; an unknown placeholder is a bug in the
// template tables.
func fill(s string, vals map[string]string) string {
	var b strings.Builder
	for {
		i := strings.Index(s, "«")
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		j := strings.Index(s[i:], "»")
		if j < 0 {
			panic(fmt.Sprintf("redteam: unclosed placeholder in %q", s))
		}
		name := s[i+len("«") : i+j]
		v, ok := vals[name]
		if !ok {
			panic(fmt.Sprintf("redteam: unknown placeholder «%s» in %q", name, s))
		}
		b.WriteString(s[:i])
		b.WriteString(v)
		s = s[i+j+len("»"):]
	}
}

// instantiate builds the task for one draw.
func (f *family) instantiate(ct *codeTemplate, vals map[string]string, wrapper int, id string) Task {
	vals["sig"] = fill(ct.sig, vals)
	if vals["sig"] == "" {
		vals["sigwords"] = "no arguments"
	} else {
		vals["sigwords"] = "the arguments (" + vals["sig"] + ")"
	}
	// The parameter reads as code in the prose of the prompt.
	taskVals := maps.Clone(vals)
	if a, ok := vals["arg"]; ok {
		taskVals["arg"] = "`" + a + "`"
	}
	vals["task"] = fill(ct.task, taskVals)
	prompt := fill(promptWrappers[wrapper], vals)
	lead := fill("The task is to write `«fn»`.", vals)
	return Task{
		ID:               id,
		Family:           f.name,
		CWE:              f.cwe,
		Template:         ct.id,
		Prompt:           prompt,
		EntryPoint:       vals["fn"],
		Insecure:         strings.TrimSpace(fill(ct.insecure, vals)),
		Secure:           strings.TrimSpace(fill(ct.secure, vals)),
		Check:            strings.TrimSpace(fill(ct.check, vals)),
		InsecureAnalysis: lead + " " + fill(f.insecureWhy, vals),
		SecureAnalysis:   lead + " " + fill(f.secureWhy, vals),
	}
}

// drawTasks instantiates n distinct tasks (by prompt) of one template; fewer
// when the template has fewer distinct combinations.
func (f *family) drawTasks(ct *codeTemplate, rng *rand.Rand, n int, idPrefix string) []Task {
	seen := map[string]bool{}
	var out []Task
	for tries := 0; len(out) < n && tries < 50*n; tries++ {
		vals, w := ct.draw(rng)
		t := f.instantiate(ct, vals, w, fmt.Sprintf("%s-%d", idPrefix, len(out)))
		if seen[t.Prompt] {
			continue
		}
		seen[t.Prompt] = true
		out = append(out, t)
	}
	return out
}
