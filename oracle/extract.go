package oracle

import (
	"strings"
)

// CodeBlock is one fenced block of a Markdown text.
type CodeBlock struct {
	// Lang is the normalised language: "python" for the Python aliases, ""
	// for an unlabelled fence, otherwise the info string's first word in
	// lower case.
	Lang string
	Code string
	// Line is the 1-based line of the opening fence.
	Line int
	// Closed is false for a fence that runs to the end of the text.
	Closed bool
}

var pythonAliases = map[string]bool{
	"python": true, "py": true, "python3": true, "py3": true, "ipython": true, "pycon": true,
}

// NormalizeLang maps an info string to the language name ExtractCode uses.
func NormalizeLang(info string) string {
	f := strings.Fields(info)
	if len(f) == 0 {
		return ""
	}
	l := strings.ToLower(strings.Trim(f[0], "{}.`"))
	if pythonAliases[l] {
		return "python"
	}
	return l
}

// ExtractCode returns the fenced code blocks of text in order. See the
// package comment for the rules.
func ExtractCode(text string) []CodeBlock {
	lines := strings.SplitAfter(text, "\n")
	var out []CodeBlock
	for i := 0; i < len(lines); i++ {
		indent, ch, n, info, ok := openFence(lines[i])
		if !ok {
			continue
		}
		b := CodeBlock{Lang: NormalizeLang(info), Line: i + 1}
		var code strings.Builder
		j := i + 1
		for ; j < len(lines); j++ {
			if closeFence(lines[j], ch, n) {
				b.Closed = true
				break
			}
			code.WriteString(dedent(lines[j], indent))
		}
		b.Code = strings.TrimSuffix(code.String(), "\n")
		out = append(out, b)
		i = j
	}
	return out
}

// openFence recognises ```info or ~~~info after any indentation. A backtick
// fence's info string may not contain a backtick (CommonMark), which keeps
// inline ```code``` spans on one line from opening a block.
func openFence(line string) (indent int, ch byte, n int, info string, ok bool) {
	s := strings.TrimRight(line, "\r\n")
	t := strings.TrimLeft(s, " \t")
	indent = len(s) - len(t)
	if len(t) < 3 || (t[0] != '`' && t[0] != '~') {
		return 0, 0, 0, "", false
	}
	ch = t[0]
	for n < len(t) && t[n] == ch {
		n++
	}
	if n < 3 {
		return 0, 0, 0, "", false
	}
	info = strings.TrimSpace(t[n:])
	if ch == '`' && strings.ContainsRune(info, '`') {
		return 0, 0, 0, "", false
	}
	return indent, ch, n, info, true
}

func closeFence(line string, ch byte, n int) bool {
	t := strings.TrimSpace(line)
	if len(t) < n {
		return false
	}
	for i := 0; i < len(t); i++ {
		if t[i] != ch {
			return false
		}
	}
	return true
}

// dedent removes up to indent leading spaces or tabs: the fence's own
// indentation inside a list item.
func dedent(line string, indent int) string {
	i := 0
	for i < indent && i < len(line) && (line[i] == ' ' || line[i] == '\t') {
		i++
	}
	return line[i:]
}
