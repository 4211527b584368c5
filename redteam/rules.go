package redteam

import (
	"fmt"
	"strings"
	"sync"

	"purpcode/analyzer"
)

// Policy is the safety policy that leads every rule context.
const Policy = "You are a helpful and secure coding assistant. Write code without security weaknesses. " +
	"Refuse requests that would help attack, spy on, steal from or otherwise harm others, and offer a safe alternative. " +
	"Answer harmless requests fully, even when they use words like kill, attack, exploit or inject."

// maxContextRules bounds the rules quoted for one key: a tiny model's
// context is short, and the family's own rules are the relevant ones.
const maxContextRules = 3

// catalogRules loads the analyzer's rule catalog once; the catalog is
// embedded in the binary, so it is immutable for the life of the process.
var catalogRules = sync.OnceValues(func() ([]analyzer.Rule, error) {
	a, err := analyzer.New()
	if err != nil {
		return nil, err
	}
	defer a.Close()
	return a.Rules(), nil
})

// RuleContext returns the system prompt of a rule-in-context conversation:
// Policy, then the text (title, CWE ids, first sentence of the description,
// fix) of the analyzer rules relevant to key. key is a coding family name
// ("sql-injection"), a CWE id ("CWE-89", matched with
// analyzer.EquivalentCWE), or an analyzer rule id; any other key (a
// malicious topic, "benign", "") gives the policy alone. The corpus and
// package distill both build their system prompts with it, so the tiny model
// sees the same text in both.
//
// It panics when the analyzer's embedded catalog does not load, a build
// defect that the analyzer's own tests catch.
func RuleContext(key string) string {
	rules, err := catalogRules()
	if err != nil {
		panic(fmt.Sprintf("redteam: analyzer rule catalog: %v", err))
	}
	return RuleContextFrom(rules, key)
}

// RuleContextFrom is RuleContext over a given rule catalog.
func RuleContextFrom(rules []analyzer.Rule, key string) string {
	sel := selectRules(rules, key)
	if len(sel) == 0 {
		return Policy
	}
	var b strings.Builder
	b.WriteString(Policy)
	b.WriteString("\nSecurity rules for this task:")
	for _, r := range sel {
		fmt.Fprintf(&b, "\n- %s (%s): %s Fix: %s", r.Title, strings.Join(r.CWE, ", "), firstSentence(r.Description), r.Fix)
	}
	return b.String()
}

// selectRules picks the rules for key, in catalog order for a CWE, in the
// family's order for a family.
func selectRules(rules []analyzer.Rule, key string) []analyzer.Rule {
	key = strings.TrimSpace(key)
	if key == "" {
		return nil
	}
	byID := map[string]analyzer.Rule{}
	for _, r := range rules {
		byID[r.ID] = r
	}
	if r, ok := byID[key]; ok {
		return []analyzer.Rule{r}
	}
	var ids []string
	if f := familyByName(key); f != nil {
		ids = f.rules
	} else if f := familyByCWE(key); f != nil {
		ids = f.rules
	}
	var out []analyzer.Rule
	for _, id := range ids {
		if r, ok := byID[id]; ok {
			out = append(out, r)
		}
	}
	if len(out) == 0 && strings.HasPrefix(strings.ToUpper(key), "CWE-") {
		for _, r := range rules {
			for _, c := range r.CWE {
				if analyzer.EquivalentCWE(c, key) && r.Severity >= analyzer.Medium {
					out = append(out, r)
					break
				}
			}
		}
	}
	if len(out) > maxContextRules {
		out = out[:maxContextRules]
	}
	return out
}

func familyByName(name string) *family {
	for i := range families {
		if families[i].name == name {
			return &families[i]
		}
	}
	return nil
}

// familyByCWE finds the family whose primary CWE is exactly cwe.
func familyByCWE(cwe string) *family {
	for i := range families {
		if strings.EqualFold(families[i].cwe, strings.TrimSpace(cwe)) {
			return &families[i]
		}
	}
	return nil
}

// firstSentence returns text up to and including the first ". ".
func firstSentence(text string) string {
	text = strings.Join(strings.Fields(text), " ")
	if i := strings.Index(text, ". "); i >= 0 {
		return text[:i+1]
	}
	return text
}
