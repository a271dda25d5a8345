#!/usr/bin/env bash
# passgate lab: the network-namespace topology of docs/DESIGN.md "The lab".
#
#   lab.sh up                 clear leftovers of this prefix, then build the lab
#   lab.sh down               remove everything of this prefix (idempotent)
#   lab.sh kernelnat on|off   the reference: the kernel's own NAT in the router
#   lab.sh exec NODE CMD...   run CMD in NODE (rtr lan1 lan2 lan3 srv1 srv2 sw)
#   lab.sh status             list this prefix's namespaces
#
# Environment:
#   PG_PREFIX          name prefix of every namespace and veth (default pg,
#                      [a-z0-9], at most 10 characters so veth names fit 15)
#   PG_LAB_LOCK_HELD=1 the caller already holds the prefix's lock
#                      (/run/lock/passgate-lab-$PG_PREFIX.lock) for the
#                      lifetime of its lab; do not take it again.
#
# Topology (namespaces are named $P-NODE):
#   $P-sw    two bridges br-lan and br-wan, holding the peer of every veth
#   $P-rtr   lan0 192.168.50.1/24 (br-lan), wan0 203.0.113.1/24 (br-wan),
#            ip_forward=0: the userspace router forwards, not the kernel
#   $P-lan1  eth0 192.168.50.10/24 default via 192.168.50.1
#   $P-lan2  eth0 192.168.50.11/24 default via 192.168.50.1
#   $P-lan3  eth0 192.168.50.12/24 default via 192.168.50.1
#   $P-srv1  eth0 203.0.113.10/24 and 203.0.113.11/24, no default route
#   $P-srv2  eth0 203.0.113.20/24, no default route
# Checksum and segmentation offloads are off on every veth end, so a
# userspace router sees complete checksums and frames no larger than the MTU.
# IPv6 is off in every namespace so the router sees no IPv6 chatter.
set -euo pipefail

P="${PG_PREFIX:-pg}"
if [[ ! "$P" =~ ^[a-z0-9]{1,10}$ ]]; then
	echo "lab.sh: PG_PREFIX must be 1-10 characters of [a-z0-9], got '$P'" >&2
	exit 2
fi

NODES=(sw rtr lan1 lan2 lan3 srv1 srv2)
LOCKDIR=/run/lock
LOCKFILE="$LOCKDIR/passgate-lab-$P.lock"
NFT_TABLE=passgate_kernelnat

die() {
	echo "lab.sh: $*" >&2
	exit 1
}

need_root() {
	[[ $(id -u) -eq 0 ]] || die "must run as root"
}

lock() {
	if [[ "${PG_LAB_LOCK_HELD:-}" == 1 ]]; then
		return
	fi
	mkdir -p "$LOCKDIR"
	exec 9>"$LOCKFILE"
	flock -w 120 9 || die "could not take $LOCKFILE within 120 s (another run of prefix $P?)"
}

ns() { echo "$P-$1"; }

inns() {
	local n="$1"
	shift
	ip netns exec "$(ns "$n")" "$@"
}

# A named namespace is a file under /run/netns (no pipeline: with pipefail,
# grep -q closing early could make a pipe report failure).
ns_exists() {
	[[ -e "/run/netns/$1" ]]
}

# Remove this prefix's namespaces. Processes still living in them (left over
# by an earlier run of this same prefix) are ended by PID first, so no
# namespace outlives its name.
teardown() {
	local n name pids
	for n in "${NODES[@]}"; do
		name="$(ns "$n")"
		ns_exists "$name" || continue
		pids="$(ip netns pids "$name" 2>/dev/null || true)"
		if [[ -n "$pids" ]]; then
			# shellcheck disable=SC2086
			kill -TERM $pids 2>/dev/null || true
		fi
	done
	for n in "${NODES[@]}"; do
		name="$(ns "$n")"
		ns_exists "$name" || continue
		pids="$(ip netns pids "$name" 2>/dev/null || true)"
		if [[ -n "$pids" ]]; then
			sleep 0.5
			pids="$(ip netns pids "$name" 2>/dev/null || true)"
			# shellcheck disable=SC2086
			[[ -z "$pids" ]] || kill -KILL $pids 2>/dev/null || true
		fi
		ip netns del "$name" 2>/dev/null || true
	done
	# Named netns files left by an interrupted `ip netns add` or `del`.
	for n in "${NODES[@]}"; do
		name="$(ns "$n")"
		if [[ -e "/run/netns/$name" ]]; then
			umount "/run/netns/$name" 2>/dev/null || true
			rm -f "/run/netns/$name" 2>/dev/null || true
		fi
	done
}

offloads_off() {
	# offloads_off NODE DEV
	inns "$1" ethtool -K "$2" rx off tx off tso off gso off gro off >/dev/null 2>&1 ||
		inns "$1" ethtool -K "$2" rx off tx off tso off gso off gro off
}

# veth NODE DEV BRIDGE SWNAME: DEV in NODE, its peer SWNAME in sw on BRIDGE.
veth() {
	local node="$1" dev="$2" br="$3" swname="$4"
	ip link add "$dev" netns "$(ns "$node")" type veth peer name "$swname" netns "$(ns sw)"
	offloads_off "$node" "$dev"
	offloads_off sw "$swname"
	inns sw ip link set "$swname" master "$br"
	inns sw ip link set "$swname" up
	inns "$node" ip link set "$dev" up
}

setup() {
	local n
	for n in "${NODES[@]}"; do
		ip netns add "$(ns "$n")"
		inns "$n" ip link set lo up
		inns "$n" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
		inns "$n" sysctl -qw net.ipv6.conf.default.disable_ipv6=1
		inns "$n" sysctl -qw net.ipv6.conf.lo.disable_ipv6=1
	done

	# The switch: two plain learning bridges, no STP, no forwarding delay.
	local br
	for br in br-lan br-wan; do
		inns sw ip link add "$br" type bridge stp_state 0 forward_delay 0
		inns sw ip link set "$br" up
	done
	# If br_netfilter is loaded, keep bridged frames out of iptables/nft ip.
	for f in bridge-nf-call-iptables bridge-nf-call-ip6tables bridge-nf-call-arptables; do
		inns sw sysctl -qw "net.bridge.$f=0" 2>/dev/null || true
	done

	# The router.
	veth rtr lan0 br-lan "$P-rlan"
	veth rtr wan0 br-wan "$P-rwan"
	inns rtr ip addr add 192.168.50.1/24 dev lan0
	inns rtr ip addr add 203.0.113.1/24 dev wan0
	inns rtr sysctl -qw net.ipv4.ip_forward=0

	# The LAN hosts.
	local i
	for i in 1 2 3; do
		veth "lan$i" eth0 br-lan "$P-lan$i"
		inns "lan$i" ip addr add "192.168.50.$((9 + i))/24" dev eth0
		inns "lan$i" ip route add default via 192.168.50.1
	done

	# The servers: a connected route to the WAN, nothing else.
	veth srv1 eth0 br-wan "$P-srv1"
	inns srv1 ip addr add 203.0.113.10/24 dev eth0
	inns srv1 ip addr add 203.0.113.11/24 dev eth0
	veth srv2 eth0 br-wan "$P-srv2"
	inns srv2 ip addr add 203.0.113.20/24 dev eth0

	# Wait for the links to come up (veth carrier is immediate, but be sure).
	local dev tries
	for n in rtr:lan0 rtr:wan0 lan1:eth0 lan2:eth0 lan3:eth0 srv1:eth0 srv2:eth0; do
		dev="${n#*:}"
		n="${n%%:*}"
		tries=50
		until [[ "$(inns "$n" cat "/sys/class/net/$dev/operstate")" == up ]]; do
			tries=$((tries - 1))
			[[ $tries -gt 0 ]] || die "$n $dev did not come up"
			sleep 0.1
		done
	done
}

kernelnat() {
	case "${1:-}" in
	on)
		ns_exists "$(ns rtr)" || die "lab $P is not up"
		inns rtr nft delete table ip "$NFT_TABLE" 2>/dev/null || true
		inns rtr nft -f - <<EOF
table ip $NFT_TABLE {
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		oifname "wan0" masquerade
	}
}
EOF
		inns rtr sysctl -qw net.ipv4.ip_forward=1
		;;
	off)
		ns_exists "$(ns rtr)" || return 0
		inns rtr sysctl -qw net.ipv4.ip_forward=0
		inns rtr nft delete table ip "$NFT_TABLE" 2>/dev/null || true
		# Forget the kernel's flows so they cannot answer for passgate.
		inns rtr sh -c 'command -v conntrack >/dev/null && conntrack -F >/dev/null 2>&1 || true'
		;;
	*)
		die "usage: lab.sh kernelnat on|off"
		;;
	esac
}

usage() {
	sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

cmd="${1:-}"
[[ $# -gt 0 ]] && shift
case "$cmd" in
up)
	need_root
	lock
	teardown
	if ! setup; then
		echo "lab.sh: setup of $P failed; removing what was built" >&2
		teardown
		exit 1
	fi
	echo "lab $P up"
	;;
down)
	need_root
	lock
	teardown
	echo "lab $P down"
	;;
kernelnat)
	need_root
	lock
	kernelnat "$@"
	;;
exec)
	[[ $# -ge 2 ]] || die "usage: lab.sh exec NODE CMD..."
	node="$1"
	shift
	case " ${NODES[*]} " in
	*" $node "*) ;;
	*) die "unknown node '$node' (one of: ${NODES[*]})" ;;
	esac
	exec ip netns exec "$(ns "$node")" "$@"
	;;
status)
	for n in "${NODES[@]}"; do
		if ns_exists "$(ns "$n")"; then echo "$(ns "$n") up"; else echo "$(ns "$n") absent"; fi
	done
	;;
*)
	usage
	;;
esac
