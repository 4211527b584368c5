package suite

import (
	"regexp"
	"strings"
)

// AnswerPart drops the reasoning of an answer in the paper's format
// ("## Analysis ... ## Answer ..."), as the paper's harness does before
// scoring: the text after the last "## Answer" heading when there is one;
// otherwise, when the text starts with "## Analysis", the analysis alone
// was written and nothing is scored as the answer but its code blocks;
// otherwise the text unchanged.
func AnswerPart(text string) string {
	if i := strings.LastIndex(text, "## Answer"); i >= 0 {
		return strings.TrimLeft(text[i+len("## Answer"):], " \t\r\n")
	}
	return text
}

// fence matches a fenced code block: ``` or ~~~, an optional info string,
// the body, and the closing fence (or the end of the text: a cut-off
// answer still has its code).
var fence = regexp.MustCompile("(?s)(?:^|\\n)[ \\t]*(```|~~~)[ \\t]*([A-Za-z0-9_+#.-]*)[^\\n]*\\n(.*?)(?:\\n[ \\t]*(?:```|~~~)|\\z)")

// CodeBlock is one fenced block.
type CodeBlock struct {
	Lang string // the info string's first word, lower case ("" if none)
	Code string
}

// CodeBlocks returns the fenced code blocks of text in order.
func CodeBlocks(text string) []CodeBlock {
	var out []CodeBlock
	for _, m := range fence.FindAllStringSubmatch(text, -1) {
		out = append(out, CodeBlock{Lang: strings.ToLower(m[2]), Code: m[3]})
	}
	return out
}

// PythonProgram picks the code to run for a Python task, EvalPlus-style:
// the first fenced block that defines entry (any block when none does,
// preferring python ones, joined), or the whole answer when it has no
// fence (a bare program). The sandboxed harness then keeps only the
// definitions and imports (evalplus_driver.py).
func PythonProgram(answer, entry string) string {
	answer = AnswerPart(answer)
	blocks := CodeBlocks(answer)
	if len(blocks) == 0 {
		return answer
	}
	def := regexp.MustCompile(`(?m)^\s*(?:async\s+)?def\s+` + regexp.QuoteMeta(entry) + `\s*\(`)
	for _, b := range blocks {
		if def.MatchString(b.Code) {
			return b.Code
		}
	}
	var parts []string
	for _, b := range blocks {
		if b.Lang == "" || b.Lang == "python" || b.Lang == "py" || b.Lang == "python3" {
			parts = append(parts, b.Code)
		}
	}
	return strings.Join(parts, "\n\n")
}
