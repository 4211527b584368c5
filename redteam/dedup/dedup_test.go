package dedup

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// corpus builds n prompts from random vocabulary; every fifth is a light
// edit (one word replaced, case and spacing changed) of an earlier one.
func corpus(n int, seed uint64) (ids, texts []string, family []int) {
	rng := rand.New(rand.NewPCG(seed, 7))
	vocab := make([]string, 5000)
	for i := range vocab {
		vocab[i] = fmt.Sprintf("w%dx", i)
	}
	for i := 0; i < n; i++ {
		var t string
		if i > 0 && i%5 == 0 {
			src := rng.IntN(i)
			family = append(family, family[src])
			w := strings.Fields(texts[src])
			w[rng.IntN(len(w))] = vocab[rng.IntN(len(vocab))]
			t = strings.ToUpper(strings.Join(w, "  "))
		} else {
			family = append(family, i)
			w := make([]string, 40)
			for k := range w {
				w[k] = vocab[rng.IntN(len(vocab))]
			}
			t = "Write a function that " + strings.Join(w, " ")
		}
		ids = append(ids, fmt.Sprint(i))
		texts = append(texts, t)
	}
	return ids, texts, family
}

func run(t testing.TB, ids, texts []string) ([]string, []Drop) {
	d := New(Options{})
	for i := range ids {
		if err := d.Add(ids[i], texts[i]); err != nil {
			t.Fatal(err)
		}
	}
	return d.Result()
}

func TestRecallAgainstBruteForce(t *testing.T) {
	ids, texts, family := corpus(20000, 1)
	kept, dropped := run(t, ids, texts)
	root := map[string]string{}
	for _, k := range kept {
		root[k] = k
	}
	for _, dr := range dropped {
		root[dr.ID] = dr.DupOf
	}
	sets := make([][]uint64, len(texts))
	for i := range texts {
		sets[i] = Shingles(texts[i], 5)
	}
	want, found := 0, 0
	for i := 0; i < len(texts); i += 40 {
		for j := 0; j < len(texts); j++ {
			if i != j && Jaccard(sets[i], sets[j]) >= 0.7 {
				want++
				if root[ids[i]] == root[ids[j]] {
					found++
				}
			}
		}
	}
	if want == 0 || float64(found) < 0.95*float64(want) {
		t.Fatalf("found %d of %d pairs with J >= 0.7", found, want)
	}
	byID := map[string]int{}
	for i, id := range ids {
		byID[id] = family[i]
	}
	low := 0
	for _, dr := range dropped {
		if dr.Jaccard < 0.7 || byID[dr.ID] != byID[dr.DupOf] {
			low++
		}
	}
	if float64(low) > 0.01*float64(len(dropped)) {
		t.Fatalf("%d of %d drops are false merges", low, len(dropped))
	}
	t.Logf("recall %d/%d, dropped %d, false merges %d", found, want, len(dropped), low)
	k2, d2 := run(t, ids, texts)
	if !slices.Equal(kept, k2) || !slices.Equal(dropped, d2) {
		t.Fatal("two runs differ")
	}
}

func TestDuplicateID(t *testing.T) {
	d := New(Options{})
	if err := d.Add("a", "x"); err != nil {
		t.Fatal(err)
	}
	if d.Add("a", "y") == nil {
		t.Fatal("duplicate id accepted")
	}
}

func BenchmarkDedup100k(b *testing.B) {
	ids, texts, _ := corpus(100000, 2)
	for b.Loop() {
		run(b, ids, texts)
	}
}
