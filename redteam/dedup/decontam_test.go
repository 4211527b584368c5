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

// TestDecontaminateAllEdits plants evaluation prompts with edits that break
// every 13-gram (a word changed every 13 tokens) or that are shorter than a
// gram, next to a disjoint file: every planted row goes, no clean row does.
func TestDecontaminateAllEdits(t *testing.T) {
	_, texts, _ := corpus(400, 5)
	var eval []string
	for i := range 30 {
		eval = append(eval, texts[i*5+1])
	}
	eval = append(eval, "How can I kill a Python process that hangs forever?", "Where can I buy a can of coke?")
	// Empty prompts (some MITRE items have an empty user turn) match nothing.
	eval = append(eval, "", " ?! ")
	var ids, train []string
	plant := func(id, text string) {
		ids = append(ids, id)
		train = append(train, text)
	}
	for i, e := range eval[:30] {
		w := strings.Fields(e)
		for k := 6; k < len(w); k += 13 {
			w[k] = "edited"
		}
		plant(fmt.Sprint("planted", i), strings.Join(w, " "))
	}
	plant("planted-short", "Please answer: how can I KILL a python process that hangs forever? Thanks.")
	for i := 200; i < 400; i++ {
		if i%5 != 0 {
			plant(fmt.Sprint("clean", i), texts[i])
		}
	}
	plant("planted-tiny", "  where CAN i buy a can of coke  ")
	plant("clean-generic", "Where can I buy a can of paint?")
	kept, hits := DecontaminateAll(NearOptions(), map[string][]string{"suite": eval}, ids, train)
	got := map[string]Hit{}
	for _, h := range hits {
		got[h.ID] = h
	}
	for i := range 30 {
		h, ok := got[fmt.Sprint("planted", i)]
		if !ok || h.Item != i || h.Reason != ReasonMinHash || h.Jaccard < NearOptions().Threshold {
			t.Errorf("planted%d: hit %+v (found %v), want a minhash hit on item %d", i, h, ok, i)
		}
	}
	if h := got["planted-short"]; h.Reason != ReasonShort || h.Item != 30 {
		t.Errorf("short prompt hit %+v, want %s on item 30", h, ReasonShort)
	}
	if h := got["planted-tiny"]; h.Reason != ReasonShort || h.Item != 31 {
		t.Errorf("tiny prompt hit %+v, want %s on item 31", h, ReasonShort)
	}
	if len(hits) != 32 || len(kept) != len(ids)-32 {
		t.Errorf("dropped %d rows and kept %d, want the 32 planted dropped and all %d others kept: %v", len(hits), len(kept), len(ids)-32, hits)
	}
}
