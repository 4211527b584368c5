#!/usr/bin/env bash
# gpu-check.sh: run the CUDA kernel tests of `make test` on a real GPU.
#
# `make test` runs every kernel on the PTX emulator (kernels/ptxemu). What
# the emulator cannot tell (the real .approx error of ex2/rsqrt, tensor-core
# accumulation order, NVRTC and driver versions other than Debian's, timing)
# needs the same tests on a GPU. This script builds the test binaries where
# Go is (a GPU machine need not have it) and runs them on the GPU machine:
#
#   scripts/gpu-check.sh build   # here: go test -c into bin/gpu-check/
#   scripts/gpu-check.sh run     # on the GPU machine, from the repository root
#   scripts/gpu-check.sh         # both, on a GPU machine that has Go
#   scripts/gpu-check.sh run engine generate   # only these packages
#
# run executes, each from its package directory (where the tests find their
# testdata):
#   kernels      every test: NVRTC compile (PTX and CUBIN) checks, launch
#                checks, the emulator tests (with this machine's NVRTC)
#   kernels/ptxemu  every test
#   engine       TestCUDA*: every kernel against its engine op, on the GPU
#   generate     TestCUDA*: the sampling kernels against the sampler, on the GPU
# with CI=true and -nvrtc-required, so a missing NVRTC fails instead of
# skipping. The engine and generate tests take -cuda-device=real (the first
# GPU of the driver); GPU_CHECK_DEVICE=emu runs them on the emulator instead,
# to try the script on a machine without a GPU.
#
# Environment: GPU_CHECK_DIR (default bin/gpu-check), GPU_CHECK_DEVICE
# (real or emu; default real), GO (default go). Exit status: 0 when every
# binary passed.
set -euo pipefail
cd "$(dirname "$0")/.."

dir="${GPU_CHECK_DIR:-bin/gpu-check}"
device="${GPU_CHECK_DEVICE:-real}"
go="${GO:-go}"
# package directory : binary name : test flags
suites=(
	"kernels:kernels:-nvrtc-required"
	"kernels/ptxemu:ptxemu:-nvrtc-required"
	"engine:engine:-test.run=^TestCUDA -test.v -cuda-device=$device"
	"generate:generate:-test.run=^TestCUDA -test.v -cuda-device=$device"
)

build() {
	mkdir -p "$dir"
	for s in "${suites[@]}"; do
		IFS=: read -r pkg name _ <<<"$s"
		echo "gpu-check: go test -c ./$pkg -> $dir/$name.test"
		CGO_ENABLED=1 "$go" test -c -o "$dir/$name.test" "./$pkg"
	done
}

run() {
	case "$device" in
	real | emu) ;;
	*)
		echo "gpu-check: GPU_CHECK_DEVICE=$device: want real or emu" >&2
		exit 2
		;;
	esac
	if [ "$device" = real ]; then
		if command -v nvidia-smi >/dev/null 2>&1; then
			nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
		else
			echo "gpu-check: nvidia-smi not found; the tests report whether the driver loads"
		fi
	fi
	local root failed=() only=" $* "
	root="$(pwd)"
	for s in "${suites[@]}"; do
		IFS=: read -r pkg name flags <<<"$s"
		if [ $# -gt 0 ] && [[ "$only" != *" $pkg "* ]]; then
			continue
		fi
		bin="$root/$dir/$name.test"
		if [ ! -x "$bin" ]; then
			echo "gpu-check: $bin missing: run '$0 build' where Go is, and bring $dir along" >&2
			exit 2
		fi
		echo "gpu-check: ---- $pkg ($flags)"
		start=$(date +%s)
		# shellcheck disable=SC2086 # flags is a word list
		if (cd "$root/$pkg" && CI=true "$bin" -test.count=1 -test.timeout=20m $flags); then
			echo "gpu-check: $pkg passed in $(($(date +%s) - start)) s"
		else
			echo "gpu-check: $pkg FAILED"
			failed+=("$pkg")
		fi
	done
	if [ ${#failed[@]} -gt 0 ]; then
		echo "gpu-check: failed: ${failed[*]}"
		exit 1
	fi
	echo "gpu-check: all passed on device '$device'"
}

cmd="${1:-all}"
[ $# -gt 0 ] && shift
case "$cmd" in
build) build ;;
run) run "$@" ;;
all)
	build
	run "$@"
	;;
*)
	echo "usage: $0 [build|run|all] [package...]" >&2
	exit 2
	;;
esac
