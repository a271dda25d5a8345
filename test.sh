#!/usr/bin/env bash
# The project's test command (README.md; .ci/run is this and little else):
# installs the Debian packages of lab/packages.txt that are missing, then
# gofmt, go vet (plain and with the lab tag), and every test with the lab
# tag, verbosely, failing if any test was skipped. Runs as root: the lab
# tests build network namespaces.
#
#   sudo ./test.sh            everything
#   sudo ./test.sh ./lab      only some packages
#
# The verbose log goes to $TEST_LOG (default ./test.log). TEST_NO_INSTALL=1
# only reports missing packages (and fails) instead of installing them.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
export PATH="/usr/local/go/bin:$PATH"
LOG="${TEST_LOG:-test.log}"
PKGS=("${@:-./...}")

# missing_packages prints the packages of lab/packages.txt whose probe
# (a command on PATH, or an absolute path or glob that must exist) fails.
missing_packages() {
	local pkg probe
	while read -r pkg probe _; do
		if [[ "$probe" == /* ]]; then
			compgen -G "$probe" >/dev/null || echo "$pkg"
		else
			command -v "$probe" >/dev/null || echo "$pkg"
		fi
	done < <(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' lab/packages.txt)
}

echo "== packages (lab/packages.txt)"
mapfile -t missing < <(missing_packages)
if ((${#missing[@]})); then
	if [[ "${TEST_NO_INSTALL:-}" == 1 ]]; then
		echo "test.sh: missing Debian packages: ${missing[*]}" >&2
		exit 1
	fi
	if [[ $EUID -ne 0 ]]; then
		echo "test.sh: missing Debian packages (${missing[*]}); run it as root to install them" >&2
		exit 1
	fi
	echo "installing: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	# Installing pptpd, xl2tpd or strongSwan must not start their services
	# in the root namespace: the tests run their own copies in namespaces.
	if [[ ! -e /usr/sbin/policy-rc.d ]]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod +x /usr/sbin/policy-rc.d
		trap 'rm -f /usr/sbin/policy-rc.d' EXIT
	fi
	apt-get update
	apt-get install -y --no-install-recommends "${missing[@]}"
	rm -f /usr/sbin/policy-rc.d
	trap - EXIT
	mapfile -t still < <(missing_packages)
	if ((${#still[@]})); then
		echo "test.sh: still missing after apt-get install: ${still[*]}" >&2
		exit 1
	fi
fi

echo "== gofmt"
unformatted="$(find . -name '*.go' -not -path './.git/*' -print0 | xargs -0 -r gofmt -l)"
if [[ -n "$unformatted" ]]; then
	echo "gofmt: these files need formatting:" >&2
	echo "$unformatted" >&2
	exit 1
fi

echo "== go vet ${PKGS[*]} (plain, then -tags lab)"
go vet "${PKGS[@]}"
go vet -tags lab "${PKGS[@]}"

echo "== go test -tags lab ${PKGS[*]} (log: $LOG)"
set +e
go test -tags lab -p 1 -count=1 -timeout 25m -v "${PKGS[@]}" 2>&1 | tee "$LOG"
rc=${PIPESTATUS[0]}
set -e
if grep -q -- '--- SKIP' "$LOG"; then
	echo >&2
	echo "test.sh: tests were skipped, which this project does not allow:" >&2
	grep -B1 -A3 -- '--- SKIP' "$LOG" >&2 || true
	exit 1
fi
if [[ $rc -ne 0 ]]; then
	echo "test.sh: go test failed (exit $rc)" >&2
	exit "$rc"
fi
echo "test.sh: all tests passed, none skipped"
