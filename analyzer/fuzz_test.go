package analyzer

import (
	"testing"
	"unicode/utf8"
)

// FuzzAnalyze checks Analyze never panics or errors on arbitrary input and
// that broken input is never reported as parsed with positions out of range.
func FuzzAnalyze(f *testing.F) {
	for _, s := range []string{
		"import os as o\no.system(x)\n",
		"def f(:\n  pass",
		"    eval(x)\n  def g(self):\n",
		"\"\"\"doc\nf = open(p)\nf.read()\n",
		"with open(a) as f, open(b) as g:\n    pass\n",
		"exec code in ns\nprint 'x'\n",
		"lock.acquire()\ntry:\n  pass\nfinally:\n  lock.release()\n",
		"x = {'password': f'{y}'}\n",
	} {
		f.Add([]byte(s))
	}
	a, err := New()
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(a.Close)
	f.Fuzz(func(t *testing.T, src []byte) {
		res, err := a.Analyze(src, "python")
		if err != nil {
			t.Fatal(err)
		}
		if !res.Parsed && len(res.ParseErrors) == 0 {
			t.Fatal("unparsed without parse errors")
		}
		lines := 1
		for _, c := range src {
			if c == '\n' {
				lines++
			}
		}
		for _, fd := range res.Findings {
			if fd.Line < 1 || fd.Line > lines || fd.EndLine < fd.Line || fd.Column < 1 {
				t.Fatalf("bad position %+v (%d lines)", fd, lines)
			}
			if utf8.ValidString(string(src)) && !utf8.ValidString(fd.Snippet) && len(fd.Snippet) < 200 {
				t.Fatalf("snippet not valid UTF-8: %q", fd.Snippet)
			}
		}
	})
}
