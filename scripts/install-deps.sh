#!/bin/sh
# install-deps.sh installs the Debian packages purpcode uses at run time
# (dlopen'd or exec'd; none is needed to build):
#   libopenblas0  CPU GEMM (kernels.LoadBLAS)
#   bubblewrap    the sandbox for untrusted code (bwrap)
#   python3       the interpreter of sandboxed python jobs (correctness
#                 oracle, sandbox and red-team tests); Debian's, since the
#                 sandbox mounts only system directories
#   libnvrtc11.2  NVRTC 11.8, for the CI check that every CUDA kernel source
#                 compiles for compute_80 and compute_90 (non-free component)
# With --ci it also installs what a fresh Debian machine with only Go and
# gcc lacks to fetch modules and run the test targets (.ci/run):
#   make, git (`make lint` lists files with git ls-files; go build stamps
#   the git revision), ca-certificates (HTTPS to the Go module proxy).
#
# Idempotent: installed packages are left alone and the apt sources are edited
# only when libnvrtc11.2 is missing and its component is not enabled yet. As
# root it enables `contrib non-free` on the Components of the machine's
# existing Debian sources (deb822 /etc/apt/sources.list.d/debian.sources, or
# `deb` lines of /etc/apt/sources.list) — it never adds a mirror of its own.
# As any other user it prints what is missing and exits 0, so callers continue
# with the CPU/skip fallbacks (tests then skip, or fail under CI=true, naming
# what is missing).
set -eu

PKGS="libopenblas0 bubblewrap python3 libnvrtc11.2"
if [ "${1:-}" = "--ci" ]; then
	PKGS="$PKGS make git ca-certificates"
elif [ $# -gt 0 ]; then
	echo "usage: scripts/install-deps.sh [--ci]" >&2
	exit 2
fi

installed() {
	[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]
}

missing=""
for p in $PKGS; do
	installed "$p" || missing="$missing $p"
done
if [ -z "$missing" ]; then
	exit 0
fi
if [ "$(id -u)" != 0 ]; then
	echo "warning: missing Debian packages:$missing (run scripts/install-deps.sh as root); continuing with fallbacks" >&2
	exit 0
fi

case " $missing " in
*" libnvrtc11.2 "*)
	# Append contrib and non-free to every Components field / deb line that
	# lacks them; "non-free-firmware" is a different component, hence the
	# word-boundary tests.
	deb822=/etc/apt/sources.list.d/debian.sources
	if [ -f "$deb822" ]; then
		sed -i -E '/^Components:/{
			/[[:space:]]contrib([[:space:]]|$)/! s/[[:space:]]*$/ contrib/
			/[[:space:]]non-free([[:space:]]|$)/! s/[[:space:]]*$/ non-free/
		}' "$deb822"
	fi
	list=/etc/apt/sources.list
	if [ -f "$list" ]; then
		sed -i -E '/^deb(-src)?[[:space:]]/{
			/[[:space:]]contrib([[:space:]]|$)/! s/[[:space:]]*$/ contrib/
			/[[:space:]]non-free([[:space:]]|$)/! s/[[:space:]]*$/ non-free/
		}' "$list"
	fi
	;;
esac

echo "installing:$missing"
apt-get update -qq
# shellcheck disable=SC2086 # word splitting of the package list is intended
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
