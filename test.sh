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
# The verbose log goes to $TEST_LOG (default ./test.log). PG_NO_INSTALL=1
# only reports missing packages (and fails) instead of installing them.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
export PATH="/usr/local/go/bin:$PATH"
LOG="${TEST_LOG:-test.log}"
PKGS=("${@:-./...}")

# shellcheck source=lab/packages.sh
source lab/packages.sh

echo "== packages (lab/packages.txt)"
pg_install

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

# The run above used the default configuration (auto: AF_PACKET with the tc
# flow offload on the lab's veths, so established flows go through the
# kernel). The packages that run passgate in the lab run again on AF_XDP
# with offload off, so both drivers, and established flows in passgate's
# own workers, carry the whole lab suite (dataplane/offload's lab test
# runs offload on both drivers). PG_ONE_DRIVER=1 leaves this out; it is
# left out too when only some packages were named.
if [[ $# -eq 0 && "${PG_ONE_DRIVER:-}" != 1 ]]; then
	LOG2="${LOG%.log}.afxdp.log"
	DRIVER_PKGS=(./lab/... ./cmd/passgate ./admin/web ./dataplane/router)
	echo "== go test -tags lab ${DRIVER_PKGS[*]} with PASSGATE_DRIVER=afxdp PASSGATE_OFFLOAD=false (log: $LOG2)"
	set +e
	PASSGATE_DRIVER=afxdp PASSGATE_OFFLOAD=false go test -tags lab -p 1 -count=1 -timeout 25m -v "${DRIVER_PKGS[@]}" 2>&1 | tee "$LOG2"
	rc=${PIPESTATUS[0]}
	set -e
	if grep -q -- '--- SKIP' "$LOG2"; then
		echo "test.sh: tests were skipped on AF_XDP, which this project does not allow:" >&2
		grep -B1 -A3 -- '--- SKIP' "$LOG2" >&2 || true
		exit 1
	fi
	if [[ $rc -ne 0 ]]; then
		echo "test.sh: go test on AF_XDP without offload failed (exit $rc)" >&2
		exit "$rc"
	fi
	echo "test.sh: all tests passed (the lab's on both drivers), none skipped"
	exit 0
fi
echo "test.sh: all tests passed, none skipped"
