package dedup

import (
	"fmt"
	"strings"
	"testing"
)

func TestDecontaminate(t *testing.T) {
	_, texts, _ := corpus(400, 3) // rows i%5==0 are near-copies; eval and clean rows avoid them
	eval := []string{}
	for i := 0; i < 20; i++ {
		eval = append(eval, fmt.Sprintf("Implement `parse_cfg%d(raw_bytes)` that ", i)+texts[i*5+1])
	}
	var ids, train []string
	for i, e := range eval {
		v := e
		switch i % 3 {
		case 1:
			v = strings.ToUpper(strings.ReplaceAll(e, " ", "\n  "))
		case 2:
			v = strings.ReplaceAll(strings.ReplaceAll(e, "parse_cfg", "readConf"), "raw_bytes", "data")
		}
		ids = append(ids, fmt.Sprint("planted", i))
		train = append(train, "Context. "+v)
	}
	for i := 200; i < 400; i++ { // disjoint from the eval rows (i*5+1 < 100)
		if i%5 != 0 {
			ids = append(ids, fmt.Sprint("clean", i))
			train = append(train, texts[i])
		}
	}
	kept, hits := Decontaminate(map[string][]string{"suite": eval}, ids, train)
	if len(hits) != len(eval) {
		t.Fatalf("dropped %d rows, want the %d planted: %v", len(hits), len(eval), hits)
	}
	for _, h := range hits {
		if h.ID != fmt.Sprint("planted", h.Item) {
			t.Errorf("%s attributed to item %d", h.ID, h.Item)
		}
	}
	if len(kept) != len(ids)-len(eval) {
		t.Fatalf("kept %d", len(kept))
	}
}
