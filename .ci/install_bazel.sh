#!/usr/bin/env bash
# Installs Debian's offline Bazel (bazel-bootstrap, Bazel 4.2.3) and the mock
# rules_cc repository that WORKSPACE points at (from bazel-bootstrap-source).
#
# Idempotent: does nothing when both are already there. Quiet: prints apt's
# log only when something fails, and then exits non-zero.
#
# Usage: bash .ci/install_bazel.sh   (as root, or with sudo available)
set -euo pipefail

readonly MOCK_RULES_CC=/usr/src/bazel-bootstrap/mock_repos/rules_cc/cc/defs.bzl
readonly PACKAGES=(bazel-bootstrap bazel-bootstrap-source)

if command -v bazel >/dev/null 2>&1 && [[ -f "${MOCK_RULES_CC}" ]]; then
  exit 0
fi

sudo_cmd=()
if [[ "$(id -u)" -ne 0 ]]; then
  sudo_cmd=(sudo)
fi

log="$(mktemp)"
trap 'rm -f "${log}"' EXIT

apt_get() {
  if ! "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive \
      apt-get -q -y -o Dpkg::Use-Pty=0 "$@" >>"${log}" 2>&1; then
    echo "install_bazel.sh: 'apt-get $*' failed:" >&2
    cat "${log}" >&2
    exit 1
  fi
}

apt_get update
apt_get install --no-install-recommends "${PACKAGES[@]}"

if ! command -v bazel >/dev/null 2>&1 || [[ ! -f "${MOCK_RULES_CC}" ]]; then
  echo "install_bazel.sh: installed ${PACKAGES[*]}, yet 'bazel' or" \
    "${MOCK_RULES_CC} is missing" >&2
  exit 1
fi
