// Package checkpoint reads and writes safetensors files and Hugging Face
// model directories, and writes small files atomically. It knows nothing of
// models or training: it moves named engine tensors to and from disk.
//
// Reading. Open accepts a .safetensors file, a model.safetensors.index.json,
// or a directory holding either. Files are memory-mapped and every header is
// validated in full at open time (lengths, JSON shape, dtypes, shapes
// against byte ranges, ranges inside the file and not overlapping, index and
// shards agreeing exactly); each error is a *FormatError naming the file and,
// where there is one, the tensor. Tensor copies one tensor out in the file's
// dtype (F32, BF16, F16); headers with other safetensors dtypes still open,
// and only reading such a tensor fails.
//
// Writing. WriteFile produces the same bytes as the reference Python/Rust
// safetensors library for the same tensors and metadata: tensors ordered by
// dtype (F32, then BF16, then F16) and by name within a dtype, compact JSON
// header padded with spaces so the data starts 8-byte aligned, no gaps. The
// one freedom is the order of __metadata__ keys, which the reference takes
// from a hash map and this package sorts. WriteDir writes an HF model dir,
// sharded the way transformers shards (greedy in the given order,
// model-0000i-of-0000N.safetensors plus an index with metadata.total_size).
// WriteDirStream writes the same directory from tensors declared up front
// and produced one at a time by a fill function, so a model larger than
// memory is written holding one tensor.
//
// Atomicity. AtomicWriteFile and WriteFile write a temp file in the target's
// directory, fsync it, rename it over the target and fsync the directory:
// after a crash the path holds the old or the new contents, never a mix.
// WriteDir builds the whole directory in a hidden sibling temp dir, fsyncs it,
// then swaps it in with renames so that a complete old or new checkpoint
// exists at every instant under a recognisable name; RecoverDir finishes or
// undoes an interrupted swap (see WriteDir for the exact states). Readers
// never look at the hidden temp names.
//
// Slices and sharded checkpoints. ReadSlice copies only a slice's byte runs
// out of the mapping, so a tensor-parallel rank touches only its part of a
// checkpoint. A sharded checkpoint is one safetensors file per rank plus
// manifest.json (Manifest), written last: the manifest records each file's
// size and SHA-256 and each tensor's full shape and per-rank slice, and
// OpenSharded reads any slice back whatever layout wrote it.
package checkpoint
