#!/bin/sh
# install-deps.sh installs the Debian packages purpcode loads at run time
# (dlopen'd or exec'd; none is needed to build):
#   libopenblas0  CPU GEMM (kernels.LoadBLAS)
#   bubblewrap    the sandbox for untrusted code (bwrap)
#   libnvrtc11.2  NVRTC 11.8, for the CI check that every CUDA kernel source
#                 compiles for compute_80 and compute_90 (non-free component)
#
# Idempotent: installed packages are left alone and the apt sources are edited
# only when libnvrtc11.2 is missing and its component is not enabled yet. As
# root it enables `contrib non-free` on the Components of the machine's
# existing Debian sources (deb822 /etc/apt/sources.list.d/debian.sources, or
# `deb` lines of /etc/apt/sources.list) — it never adds a mirror of its own.
# As any other user it prints what is missing and exits 0, so callers continue
# with the CPU/skip fallbacks.
set -eu

PKGS="libopenblas0 bubblewrap libnvrtc11.2"

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
