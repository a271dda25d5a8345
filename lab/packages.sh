# lab/packages.txt's installer, sourced by test.sh and bench/lab.sh (the Go
# side, for the demo and the lab tests' check, is lab/deps.go).

PG_PACKAGES_TXT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/packages.txt"

# pg_missing [PACKAGE...] prints the packages of lab/packages.txt (all of
# them, or only those named) whose probe fails: a command not on PATH, or
# an absolute path or glob that matches nothing.
pg_missing() {
	local pkg probe want p
	while read -r pkg probe _; do
		if (($#)); then
			want=0
			for p in "$@"; do [[ "$p" == "$pkg" ]] && want=1; done
			((want)) || continue
		fi
		if [[ "$probe" == /* ]]; then
			compgen -G "$probe" >/dev/null || echo "$pkg"
		else
			command -v "$probe" >/dev/null || echo "$pkg"
		fi
	done < <(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$PG_PACKAGES_TXT")
}

# pg_install [PACKAGE...] installs, as root with apt-get update and
# install, whatever pg_missing prints, with a policy-rc.d that keeps
# pptpd, xl2tpd and strongSwan from starting services on the machine (the
# lab runs its own copies in namespaces). It fails if anything is still
# missing afterwards. With PG_NO_INSTALL=1 it only reports and fails.
pg_install() (
	set -euo pipefail
	local missing still
	mapfile -t missing < <(pg_missing "$@")
	((${#missing[@]})) || exit 0
	if [[ "${PG_NO_INSTALL:-}" == 1 || $EUID -ne 0 ]]; then
		echo "missing Debian packages: ${missing[*]} (as root, test.sh installs them)" >&2
		exit 1
	fi
	echo "installing: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	if [[ ! -e /usr/sbin/policy-rc.d ]]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod +x /usr/sbin/policy-rc.d
		trap 'rm -f /usr/sbin/policy-rc.d' EXIT
	fi
	apt-get update
	apt-get install -y --no-install-recommends "${missing[@]}"
	mapfile -t still < <(pg_missing "$@")
	if ((${#still[@]})); then
		echo "still missing after apt-get install: ${still[*]}" >&2
		exit 1
	fi
)
