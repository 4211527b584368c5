// Package dedup removes near-duplicate prompts with MinHash and LSH.
//
// Text is lowercased and split into word tokens (runs of letters, digits
// and underscores); shingles are Shingle consecutive tokens (a shorter text
// is one shingle). Each shingle is hashed to 64 bits with FNV-1a and a
// splitmix64 finaliser, and NumPerm multiply-add permutations, seeded from
// Options.Seed, give the signature, so results are identical across runs and
// machines. Signatures are cut into b bands of r rows; ChooseBands picks the
// largest r whose chance of missing a pair at exactly the threshold,
// (1-t^r)^b, stays under 1%: for 128 permutations and t=0.7 that is b=25,
// r=5 (a pair at J=0.7 becomes a candidate with probability 0.990, at
// J=0.5 with 0.55, at J=0.3 with 0.06). Candidates are verified by exact
// Jaccard over the stored shingle sets, so every merge edge really has
// J >= threshold; clusters are the connected components (union-find) and the
// first added row of each is kept. Each row visits at most MaxBucket earlier
// members per band, which bounds the work per row and keeps the whole pass
// linear in corpus size.
//
// Decontaminate drops training rows sharing any 13-token sequence with an
// evaluation prompt after normalisation (lowercase, punctuation and spacing
// dropped, identifiers in backtick code spans and snake/camelCase words
// mapped to one placeholder), so whitespace, case and renamed identifiers do
// not hide a copy. Evaluation prompts shorter than 13 tokens are matched
// whole: contained in a row (8 to 12 tokens) or equal to it (fewer).
// DecontaminateNear adds MinHash over the same normalised tokens (3-word
// shingles, Jaccard 0.5 by default, NearOptions), which catches edits that
// break every 13-gram; DecontaminateAll runs both.
package dedup
