// Package data turns SFT JSONL files into fixed-shape (B, T) micro-batches.
//
// Row formats (one JSON object per line; blank lines are ignored):
//   - chat: {"messages":[{"role":"system|user|assistant|tool","content":"..."},...]},
//     rendered and tokenized by a ChatEncoder (the model's chat template);
//     the loss covers the last assistant turn (TrainLastAssistant, default)
//     or every assistant turn (TrainAllAssistant).
//   - pre-tokenized: {"input_ids":[...],"labels":[...]} with HF labels (the
//     token at each position, -100 = no loss); labels may be omitted, and
//     then every token is a label.
//
// Error versus skip policy. A problem in the file's structure stops loading
// with an error naming file:line: malformed JSON, a row with neither
// "messages" nor "input_ids", a message without a role or content, an
// unknown role, labels whose length differs from input_ids, a token id
// outside the vocabulary. A well-formed row that has nothing to learn is
// skipped and counted in Stats (by reason): a conversation without an
// assistant turn, a row whose labels are all -100, and a row left without
// targets by truncation. Over-long rows are cut to the sequence length
// (OverlongTruncate, keeping the start, as HF truncation does) or skipped
// (OverlongSkip), and counted either way. A dataset with no usable row is an
// error.
//
// Batching. Each epoch visits the rows in a permutation drawn from the
// epoch's shuffle seed, so the order is reproducible. Without packing each
// row is one sequence; with packing, rows are placed greedily in order into
// sequences of T tokens, a row that does not fit starting the next
// sequence. Inside a sequence every row has its own segment id (no
// attention across rows), positions restart at 0, and targets never cross
// a boundary: a row's last token predicts nothing. Padding uses token 0 (or
// the configured pad id) with ignored targets. Sequences are grouped B at a
// time into micro-batches; the last micro-batch of an epoch is filled with
// all-padding sequences.
package data
