#!/usr/bin/env bash
# gpu-check.sh: the CUDA tests of `make test` and issue 15's measurements on a
# real GPU (a lent H100/H200), within 10 minutes.
#
# `make test` runs every kernel and the CUDA backend on the PTX emulator
# (kernels/ptxemu). What the emulator cannot tell (the real .approx error of
# ex2/rsqrt, tensor-core accumulation order, NVRTC and driver versions other
# than Debian's, timing) needs the same tests on a GPU. This script builds the
# binaries where Go is (a GPU machine need not have it) and runs them on the
# GPU machine:
#
#   scripts/gpu-check.sh build   # here: go test -c / go build into bin/gpu-check/
#   scripts/gpu-check.sh build parallel   # only the `parallel` step's binaries
#   scripts/gpu-check.sh run     # on the GPU machine, from the repository root
#   scripts/gpu-check.sh         # both, on a GPU machine that has Go
#   scripts/gpu-check.sh run engine/cuda attention   # only these steps
#
# run's steps, in order (name: what; the time budgeted for it on an H100: an
# estimate, never yet run on one, from the emulated run on 2 shared cores
# (kernels 16 s, ptxemu 5 s, engine 6 s, generate 1 s, engine/cuda 75 s) and
# the work each benchmark does; the step is killed past it):
#   kernels          60 s  every test: NVRTC compile (PTX and CUBIN) checks,
#                          launch checks, the emulator tests (this NVRTC)
#   kernels/ptxemu   30 s  every test
#   engine           45 s  TestCUDA*: every kernel against its engine op
#   generate         30 s  TestCUDA*: the sampling kernels against the sampler
#   engine/cuda      90 s  every test: the backend's ops, and whole models
#                          (forward, gradients, AdamW, 20 SFT steps, greedy
#                          decoding) against the CPU backend (issue 15, must-hold 1);
#                          TestTP*: TP 2 and 4 shards of the base model, each on
#                          its own context of the GPU, ranks over loopback TCP,
#                          forward/loss/gradients and greedy rollouts against
#                          the CPU (issue 16)
#   attention        60 s  BenchmarkAttention: fwd and fwd+bwd TFLOP/s, T=4096,
#                          D=128, causal, 28/4 heads (engine/cuda/bench_test.go)
#   sft             150 s  purpcode bench --device cuda --shape qwen2.5-7b
#                          --layers L: training tokens/s and MFU (of 989 TFLOP/s
#                          dense bf16 on H100/H200), plus prefill and decode
#   torch            75 s  bench/torch_sft.py --device cuda, the same step in
#                          PyTorch eager with bf16 autocast (skipped without torch)
#   decode           10 s  decode tokens/s per batch and the fraction of HBM
#                          bandwidth, from the sft step's JSON (see decode_step)
#   dist             30 s  TestNCCL*: the NCCL backend of dist.Comm with one
#                          rank on the GPU (init, every collective through the
#                          staging buffers, the device-pointer collectives, an
#                          out-of-place all-reduce); needs libnccl.so.2 (issue 16)
# Total budget 580 s: one run call (600 s) holds it only just; split it in
# two (e.g. `run kernels kernels/ptxemu engine generate engine/cuda dist` and
# `run attention sft torch decode`) when a step may run long.
#
# Named only (not part of a plain `run`): the step `parallel` runs issue 16's
# tensor- and data-parallel tests (model/qwen2 `TP`, train/sft and
# train/grpo `TP|DataParallel`; 60 + 90 + 90 s; engine/cuda `TP` again,
# 60 s, so that the step stands alone; cmd/purpcode's launch tests, 90 s:
# `purpcode launch --nproc-per-node 2 -- sft --device cuda
# --tensor-parallel 2` against one process, whose rank 0 names the
# collectives' backend auto chose: NCCL with a GPU per rank, else the CPU
# backend, and the --dist-backend refusals), each package also nameable
# alone (a package of the default set, engine/cuda, only through
# `parallel`). They pass -cuda-device to a test binary that defines it;
# one that does not yet runs its ranks on the CPU backend, and the step
# says so. Their binaries come from `build parallel`, kept apart because
# the device runner carries at most 64 MiB: the default set is ~55 MB,
# these ~50 MB (use another GPU_CHECK_DIR, or build and carry one set at a
# time). Tests run with CI=true and -nvrtc-required, so a missing
# NVRTC fails instead of skipping, and with -cuda-device=real (the first GPU of
# the driver). GPU_CHECK_DEVICE=emu runs everything on the PTX emulator instead
# (tiny shapes, no timing meaning), to try the script on a machine without a GPU.
#
# Environment: GPU_CHECK_DIR (default bin/gpu-check; results go to its
# results/), GPU_CHECK_DEVICE (real or emu; default real), GO (default go),
# PYTHON (default python3), GPU_CHECK_LAYERS (default 4: the 7B shape's
# embedding, 4 layers and head are 2.0 B parameters, 36 GB of weights, grads
# and AdamW state on the device), GPU_CHECK_BATCH (4), GPU_CHECK_SEQ (2048),
# GPU_CHECK_STEPS (3). Exit status: 0 when every step passed.
set -euo pipefail
cd "$(dirname "$0")/.."

dir="${GPU_CHECK_DIR:-bin/gpu-check}"
device="${GPU_CHECK_DEVICE:-real}"
go="${GO:-go}"
py="${PYTHON:-python3}"
layers="${GPU_CHECK_LAYERS:-4}"
batch="${GPU_CHECK_BATCH:-4}"
seq="${GPU_CHECK_SEQ:-2048}"
steps="${GPU_CHECK_STEPS:-3}"

# Test suites: package directory : binary name : seconds : test flags.
suites=(
	"kernels:kernels:60:-nvrtc-required"
	"kernels/ptxemu:ptxemu:30:-nvrtc-required"
	"engine:engine:45:-test.run=^TestCUDA -test.v -cuda-device=$device"
	"generate:generate:30:-test.run=^TestCUDA -test.v -cuda-device=$device"
	"engine/cuda:cuda:90:-test.v -cuda-device=$device"
	"dist:dist:30:-test.run=NCCL -test.v -cuda-device=$device"
)
# The `parallel` step's suites, run only when named (see above); @device
# stands for -cuda-device=$device when the binary defines that flag.
parallel_suites=(
	"model/qwen2:qwen2:60:-test.run=TP|DataParallel -test.v @device"
	"train/sft:trainsft:90:-test.run=TP|DataParallel -test.v @device"
	"train/grpo:traingrpo:90:-test.run=TP|DataParallel -test.v @device"
	"engine/cuda:cudatp:60:-test.run=TP -test.v @device"
	"cmd/purpcode:purpcodecli:90:-test.run=^TestLaunch(DeviceTPSFT|AgreeOnNCCL|DistBackendRefusals)$ -test.v @device"
)
# Measurement steps: name : seconds.
benches=("attention:60" "sft:150" "torch:75" "decode:10")

build() {
	local set=("${suites[@]}")
	case "${1:-}" in
	"") ;;
	parallel) set=("${parallel_suites[@]}") ;;
	*)
		echo "gpu-check: build $1: want no argument or parallel" >&2
		exit 2
		;;
	esac
	mkdir -p "$dir"
	for s in "${set[@]}"; do
		IFS=: read -r pkg name _ <<<"$s"
		echo "gpu-check: go test -c ./$pkg -> $dir/$name.test"
		# -s -w: no symbol tables, so the binaries travel in less space.
		CGO_ENABLED=1 "$go" test -c -ldflags='-s -w' -o "$dir/$name.test" "./$pkg"
	done
	if [ -z "${1:-}" ]; then
		echo "gpu-check: go build ./cmd/purpcode -> $dir/purpcode"
		CGO_ENABLED=1 "$go" build -ldflags='-s -w' -o "$dir/purpcode" ./cmd/purpcode
	fi
	du -sh "$dir"
}

# in_default PKG: whether PKG is a suite of the default set.
in_default() {
	local s
	for s in "${suites[@]}"; do
		[ "${s%%:*}" = "$1" ] && return 0
	done
	return 1
}

root="$(pwd)"
res="$root/$dir/results"
failed=()
timings=()

# timed NAME SECONDS OUT COMMAND...: runs the command, killed after SECONDS
# (test binaries get -test.timeout a little shorter, so theirs fires first
# and names the test that hung), its stdout to the file OUT and then the
# terminal ("-": the terminal only), and records its outcome and duration.
timed() {
	local name=$1 limit=$2 out=$3 start rc=0
	shift 3
	echo "gpu-check: ---- $name (budget ${limit} s)"
	start=$(date +%s)
	if [ "$out" = - ]; then
		timeout --kill-after=5 "$limit" "$@" || rc=$?
	else
		timeout --kill-after=5 "$limit" "$@" >"$out" || rc=$?
		cat "$out"
	fi
	local took=$(($(date +%s) - start))
	if [ "$rc" = 0 ]; then
		echo "gpu-check: $name passed in $took s"
		timings+=("$name ok ${took}s")
	else
		[ "$rc" = 124 ] && echo "gpu-check: $name ran past its ${limit} s"
		echo "gpu-check: $name FAILED (exit $rc) after $took s"
		timings+=("$name FAILED ${took}s")
		failed+=("$name")
	fi
}

need_bin() {
	if [ ! -x "$1" ]; then
		echo "gpu-check: $1 missing: run '$0 build' where Go is, and bring $dir along" >&2
		exit 2
	fi
}

test_step() {
	local pkg=$1 name=$2 limit=$3 flags=$4 bin="$root/$dir/$2.test"
	need_bin "$bin"
	if [[ " $flags " == *" @device "* ]]; then
		# A test binary lists its flags with -h (and exits non-zero).
		local help
		help=$("$bin" -h 2>&1 || true)
		if [[ "$help" == *-cuda-device* ]]; then
			flags=${flags/@device/-cuda-device=$device}
		else
			flags=${flags/@device/}
			echo "gpu-check: $pkg: its tests take no -cuda-device yet; they run on the CPU backend"
		fi
	fi
	# Each from its package directory, where the tests find their testdata.
	cd "$root/$pkg"
	# shellcheck disable=SC2086 # flags is a word list
	CI=true timed "$pkg" "$limit" - "$bin" -test.count=1 -test.timeout="$((limit - 5))s" $flags
	cd "$root"
}

attention_step() {
	local bin="$root/$dir/cuda.test" short=() n=10x
	need_bin "$bin"
	# The emulator runs the benchmark once, on its tiny shape (-test.short).
	if [ "$device" = emu ]; then
		short=(-test.short)
		n=1x
	fi
	cd "$root/engine/cuda"
	CI=true timed attention "$1" "$res/attention.txt" "$bin" -test.run='^$' -test.bench='^BenchmarkAttention$' \
		-test.benchtime="$n" -test.count=1 -test.timeout="$(($1 - 5))s" "${short[@]}" -cuda-device="$device"
	cd "$root"
}

# sft_args is the step both purpcode and PyTorch measure.
sft_args() {
	if [ "$device" = emu ]; then
		echo "--shape tiny --layers 1 --batch 1 --seq 16 --steps 1 --decode-batches 1,2"
	else
		echo "--shape qwen2.5-7b --layers $layers --batch $batch --seq $seq --steps $steps --decode-batches 1,32,256"
	fi
}

sft_step() {
	local bin="$root/$dir/purpcode" dev=cuda
	need_bin "$bin"
	[ "$device" = emu ] && dev=cuda-emu
	# shellcheck disable=SC2046 # sft_args is a word list
	timed sft "$1" "$res/sft.json" "$bin" bench --device "$dev" $(sft_args) --decode-tokens 32 --json
}

torch_step() {
	if ! "$py" -c 'import torch' 2>/dev/null; then
		echo "gpu-check: torch: $py cannot import torch; PyTorch comparison skipped"
		timings+=("torch skipped 0s")
		return
	fi
	# shellcheck disable=SC2046 # sft_args is a word list
	timed torch "$1" "$res/torch.json" "$py" bench/torch_sft.py --device cuda $(sft_args)
	local ours theirs
	ours=$(sed -n 's/.*"train_tokens_per_s":\([0-9.e+-]*\).*/\1/p' "$res/sft.json" 2>/dev/null || true)
	theirs=$(sed -n 's/.*"tokens_per_s": *\([0-9.e+-]*\).*/\1/p' "$res/torch.json" 2>/dev/null || true)
	if [ -n "$ours" ] && [ -n "$theirs" ]; then
		awk -v a="$ours" -v b="$theirs" 'BEGIN { printf "gpu-check: SFT step tokens/s: purpcode %.0f, pytorch eager %.0f, ratio %.2fx\n", a, b, a / b }'
	fi
}

# decode_step: decode tokens/s at each batch the sft step's bench measured,
# with the fraction of HBM bandwidth they imply. It reports what
# `purpcode bench --device cuda` printed: a bench that measured no decoding
# (the rollout engine on the CPU backend only, before issue 15) makes it say
# NOT MEASURED. On hardware it decodes at batches 1/32/256 (issue 15). Bytes per decode
# step are counted as the bf16 weights a step reads (every matrix and the
# head; embedding rows are negligible) plus the KV cache read at the mean
# context: a lower bound on the traffic, so the fraction is one too.
decode_step() {
	if [ ! -s "$res/sft.json" ] || ! command -v "$py" >/dev/null 2>&1; then
		echo "gpu-check: decode: no sft result or no $py to read it; skipped"
		timings+=("decode skipped 0s")
		return
	fi
	timed decode "$1" - "$py" - "$res/sft.json" "$gpu_name" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
gpu = sys.argv[2]
dec = {int(k): v for k, v in (r.get("decode_tokens_per_s") or {}).items() if v > 0}
if not dec:
    print("decode: NOT MEASURED: purpcode bench reported no decode numbers on %s" % r["device"])
    sys.exit(0)
# Peak HBM bandwidth (bytes/s), datasheet figures.
peaks = [("H100 PCIe", 2.0e12), ("H100 NVL", 3.9e12), ("H100", 3.35e12), ("H200", 4.8e12)]
peak = next((b for n, b in peaks if n in gpu), 0)
# Shapes as in cmd/purpcode/bench.go: hidden, heads, kv heads, vocab, tied.
shapes = {"tiny": (64, 4, 2, 256, True), "bench": (512, 8, 2, 8192, False),
          "qwen2.5-0.5b": (896, 14, 2, 151936, True), "qwen2.5-7b": (3584, 28, 4, 152064, False)}
h, heads, kvh, vocab, tied = shapes[r["shape"]]
weights = 2 * (r["params"] - (0 if tied else vocab * h))
kv_per_token = 2 * 2 * r["layers"] * kvh * (h // heads)  # k and v, bf16
ctx = 64 + 32 / 2  # bench's decode prompts are 64 tokens, 32 new tokens
for b in sorted(dec):
    bw = dec[b] / b * (weights + b * ctx * kv_per_token)
    frac = " = %.1f%% of %.2f TB/s" % (100 * bw / peak, peak / 1e12) if peak else ""
    print("decode batch %d: %.0f tokens/s, >= %.0f GB/s%s" % (b, dec[b], bw / 1e9, frac))
EOF
}

run() {
	case "$device" in
	real | emu) ;;
	*)
		echo "gpu-check: GPU_CHECK_DEVICE=$device: want real or emu" >&2
		exit 2
		;;
	esac
	gpu_name=""
	if [ "$device" = real ]; then
		if command -v nvidia-smi >/dev/null 2>&1; then
			nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
			gpu_name=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1 || true)
		else
			echo "gpu-check: nvidia-smi not found; the tests report whether the driver loads"
		fi
	fi
	mkdir -p "$res"
	local only=" $* " t0
	t0=$(date +%s)
	want() { [ -z "${only// /}" ] || [[ "$only" == *" $1 "* ]]; }
	for s in "${suites[@]}"; do
		IFS=: read -r pkg name limit flags <<<"$s"
		if want "$pkg"; then test_step "$pkg" "$name" "$limit" "$flags"; fi
	done
	for s in "${benches[@]}"; do
		IFS=: read -r name limit <<<"$s"
		if want "$name"; then "${name}_step" "$limit"; fi
	done
	# Named only: `parallel`, or the package itself unless the default set
	# has it (naming that one runs its default step).
	for s in "${parallel_suites[@]}"; do
		IFS=: read -r pkg name limit flags <<<"$s"
		if [[ "$only" == *" parallel "* ]] || { [[ "$only" == *" $pkg "* ]] && ! in_default "$pkg"; }; then
			test_step "$pkg" "$name" "$limit" "$flags"
		fi
	done
	echo "gpu-check: ==== summary (device '$device'${gpu_name:+, $gpu_name}, $(($(date +%s) - t0)) s in all)"
	printf 'gpu-check:   %s\n' "${timings[@]}"
	if [ ${#failed[@]} -gt 0 ]; then
		echo "gpu-check: failed: ${failed[*]}"
		exit 1
	fi
	echo "gpu-check: all passed; results in $res"
}

cmd="${1:-all}"
[ $# -gt 0 ] && shift
case "$cmd" in
build) build "$@" ;;
run) run "$@" ;;
all)
	build
	case " $* " in
	*" parallel "* | *" model/qwen2 "* | *" train/sft "* | *" train/grpo "* | *" cmd/purpcode "*) build parallel ;;
	esac
	run "$@"
	;;
*)
	echo "usage: $0 [build [parallel]|run|all] [step...]" >&2
	exit 2
	;;
esac
