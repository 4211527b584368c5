package oracle

import (
	"strings"
	"testing"
)

func TestDecodeRows(t *testing.T) {
	good := `{"id":"a","messages":[{"role":"user","content":"hi"}],"oracle":"noreject"}
{"id":"b","prompt":"write code","oracle":"codesec","meta":{"cwe":"CWE-78"}}
`
	rows, err := DecodeRows(strings.NewReader(good), "p.jsonl")
	if err != nil || len(rows) != 2 || rows[1].Meta["cwe"] != "CWE-78" {
		t.Fatalf("rows %+v, err %v", rows, err)
	}
	for _, c := range []struct{ in, want string }{
		{`{"id":"a","messages":[],"oracle":"codesec"}`, `p.jsonl:1: row "a" has neither`},
		{"\n" + `{"id":"a","prompt":"x","oracle":"nope"}`, `p.jsonl:2: row "a": unknown oracle "nope"`},
		{`{"id":"a","prompt":"x","oracle":"correctness"}`, `p.jsonl:1: row "a"`},
		{`{"id":"a","prompt":"x","oracle":"codesec","extra":1}`, `p.jsonl:1: json: unknown field "extra"`},
		{`{"id":"a","messages":[{"role":"robot","content":"x"}],"oracle":"codesec"}`, `unknown role "robot"`},
		{`{"id":"a","prompt":"x","oracle":"codesec"}` + "\n" + `{"id":"a","prompt":"y","oracle":"codesec"}`, `p.jsonl:2: id "a" already used on line 1`},
		{`{"id":`, `p.jsonl:1:`},
		{``, `p.jsonl: no rows`},
	} {
		_, err := DecodeRows(strings.NewReader(c.in), "p.jsonl")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("input %q: error %v, want %q", c.in, err, c.want)
		}
	}
}
