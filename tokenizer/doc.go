// Package tokenizer encodes and decodes text exactly as Hugging Face
// `tokenizers` does for byte-level BPE models (GPT-2, Llama-3, Qwen2/2.5/3),
// renders Jinja chat templates as HF transformers does, derives assistant
// loss masks for SFT, and trains small byte-level BPE tokenizers.
//
// A Tokenizer is loaded from tokenizer.json (plus tokenizer_config.json for
// the chat template and the bos/eos/pad tokens). Only components whose
// semantics are implemented here are accepted: any other model, normalizer,
// pre-tokenizer, decoder or post-processor is refused at load time with an
// error naming it, because a silently different component would produce
// wrong ids that nothing downstream could detect.
//
// Encoding is linear in the input: the text is split on added tokens, NFC
// normalized, pre-tokenized (hand-written splitters for the GPT-2, Llama-3
// and Qwen regexes, regexp2 for any other pattern) and each pre-token is
// merged with a rank-ordered BPE (a simple scan for short words, a heap for
// long ones). A Tokenizer is immutable after loading and safe for concurrent
// use.
package tokenizer
