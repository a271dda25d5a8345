#!/usr/bin/env bash
# bench/lab.sh: the kernel's NAT and passgate, measured in ONE run on the same
# lab topology (docs/DESIGN.md "Measuring").
#
#   sudo bash bench/lab.sh                 both halves
#   sudo bash bench/lab.sh --kernel-only   only the kernel's NAT
#
# Environment:
#   PASSGATE=/path/to/passgate   binary to run (default: go build ./cmd/passgate)
#   BENCH_PREFIX=pgb             lab prefix
#   BENCH_SECONDS=8              length of each run
#   BENCH_FLOWS=4096             flows in the many-flows UDP run
#
# What it measures, for each NAT:
#   UDP: trafgen --cpus 2 in lan1 sends 64-byte Ethernet/IPv4/UDP frames to
#        srv1 (one flow, then BENCH_FLOWS flows by varying the source port);
#        the figure is the packet rate arriving at srv1's eth0 (rx_packets),
#        where an nftables netdev ingress rule drops the UDP so the server
#        does no work. The first second of each run is not counted.
#   TCP: iperf3 -c 203.0.113.10 -P 4 -t 8 from lan1, received Gbit/s.
# shellcheck disable=SC2154 # R_kernel_* and R_passgate_* are set by eval in measure
set -euo pipefail

KERNEL_ONLY=0
case "${1:-}" in
--kernel-only) KERNEL_ONLY=1 ;;
"") ;;
*)
	sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
	;;
esac

[[ $(id -u) -eq 0 ]] || {
	echo "bench/lab.sh: run as root (network namespaces): sudo bash bench/lab.sh" >&2
	exit 1
}

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LABSH="$ROOT/lab/lab.sh"
P="${BENCH_PREFIX:-pgb}"
SECONDS_PER_RUN="${BENCH_SECONDS:-8}"
FLOWS="${BENCH_FLOWS:-4096}"
PY=/usr/bin/python3
UDP_PORT=9
SPORT0=10000

export PG_PREFIX="$P" PG_LAB_LOCK_HELD=1
WORK="$(mktemp -d /tmp/passgate-bench.XXXXXX)"
PG_PID=""
BG_PIDS=()

lab() { bash "$LABSH" "$@"; }
inns() {
	local n="$1"
	shift
	ip netns exec "$P-$n" "$@"
}

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	local pid
	for pid in "${BG_PIDS[@]}" $PG_PID; do
		kill -TERM "$pid" 2>/dev/null || true
	done
	for pid in "${BG_PIDS[@]}" $PG_PID; do
		for _ in 1 2 3 4 5 6 7 8 9 10; do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.2
		done
		kill -KILL "$pid" 2>/dev/null || true
	done
	lab down >/dev/null 2>&1 || echo "bench: lab down failed" >&2
	rm -rf "$WORK"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# One run of this prefix at a time: hold the lab's lock for the whole bench.
mkdir -p /run/lock
exec 8>"/run/lock/passgate-lab-$P.lock"
flock -w 60 8 || {
	echo "bench: another run holds /run/lock/passgate-lab-$P.lock" >&2
	exit 1
}

# Tools.
missing=()
for c in ip:iproute2 nft:nftables ethtool:ethtool trafgen:netsniff-ng iperf3:iperf3 ping:iputils-ping ss:iproute2 "$PY":python3; do
	command -v "${c%%:*}" >/dev/null 2>&1 || missing+=("${c##*:}")
done
if [[ ${#missing[@]} -gt 0 ]]; then
	echo "bench: installing ${missing[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# The passgate binary.
PG_NOTE=""
PG_BIN=""
if [[ $KERNEL_ONLY -eq 0 ]]; then
	if [[ -n "${PASSGATE:-}" ]]; then
		PG_BIN="$PASSGATE"
		[[ -x "$PG_BIN" ]] || PG_NOTE="PASSGATE=$PG_BIN is not an executable"
	else
		PATH="$PATH:/usr/local/go/bin"
		if (cd "$ROOT" && go build -o "$WORK/passgate" ./cmd/passgate) >"$WORK/build.log" 2>&1; then
			PG_BIN="$WORK/passgate"
		else
			PG_NOTE="go build ./cmd/passgate failed: $(head -c 300 "$WORK/build.log" | tr '\n' ' ')"
		fi
	fi
fi

LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg)"
echo "bench: bringing up lab $P"
lab up >/dev/null

RTR_MAC="$(inns rtr cat /sys/class/net/lan0/address)"

# srv1 drops the benchmark's UDP at ingress: counted on eth0, no work after.
inns srv1 nft -f - <<EOF
table netdev passgate_bench {
	chain ingress {
		type filter hook ingress device "eth0" priority -500; policy accept;
		udp dport $UDP_PORT drop
	}
}
EOF

# trafgen configurations: 64-byte frames (14 Ethernet + 20 IPv4 + 8 UDP + 22
# payload; no FCS on veth) from lan1 to srv1 through the router's lan0 MAC.
cat >"$WORK/udp-1flow.trafgen" <<EOF
{
  eth(da=$RTR_MAC),
  ipv4(sa=192.168.50.10, da=203.0.113.10, ttl=64, df),
  udp(sp=$SPORT0, dp=$UDP_PORT),
  fill(0x00, 22)
}
EOF
cat >"$WORK/udp-nflows.trafgen" <<EOF
{
  eth(da=$RTR_MAC),
  ipv4(sa=192.168.50.10, da=203.0.113.10, ttl=64, df),
  udp(sp=dinc($SPORT0, $((SPORT0 + FLOWS - 1))), dp=$UDP_PORT),
  fill(0x00, 22)
}
EOF

counter() { inns "$1" cat "/sys/class/net/$2/statistics/$3"; }
now() { date +%s.%N; }

# forget PID: drop it from BG_PIDS once it has been reaped.
forget() {
	local keep=() p
	for p in "${BG_PIDS[@]}"; do
		[[ "$p" == "$1" ]] || keep+=("$p")
	done
	BG_PIDS=("${keep[@]}")
}

# udp_run CONF: sets RES_TX and RES_RX, packets/s sent by lan1 and received by
# srv1 over the run less its first second.
udp_run() {
	local conf="$1" pid tx1 rx1 t1 tx2 rx2 t2
	# timeout signals trafgen's whole process group: trafgen forks one
	# process per CPU and does not pass a signal on to them itself.
	ip netns exec "$P-lan1" timeout -s INT $((SECONDS_PER_RUN + 1)) \
		trafgen --dev eth0 --conf "$conf" --cpus 2 >"$WORK/trafgen.log" 2>&1 &
	pid=$!
	BG_PIDS+=("$pid")
	sleep 1
	tx1=$(counter lan1 eth0 tx_packets)
	rx1=$(counter srv1 eth0 rx_packets)
	t1=$(now)
	sleep $((SECONDS_PER_RUN - 1))
	tx2=$(counter lan1 eth0 tx_packets)
	rx2=$(counter srv1 eth0 rx_packets)
	t2=$(now)
	wait "$pid" 2>/dev/null || true
	forget "$pid"
	RES_TX=$(awk -v a="$tx1" -v b="$tx2" -v t1="$t1" -v t2="$t2" 'BEGIN { printf "%.0f", (b - a) / (t2 - t1) }')
	RES_RX=$(awk -v a="$rx1" -v b="$rx2" -v t1="$t1" -v t2="$t2" 'BEGIN { printf "%.0f", (b - a) / (t2 - t1) }')
}

# tcp_run: sets RES_TCP, received Gbit/s of iperf3 -P 4 (0 on failure).
tcp_run() {
	local spid
	RES_TCP=0
	ip netns exec "$P-srv1" iperf3 -s -1 -B 203.0.113.10 -J >"$WORK/iperf3-server.json" 2>&1 &
	spid=$!
	BG_PIDS+=("$spid")
	for _ in $(seq 50); do
		inns srv1 ss -Hltn | awk '{print $4}' | grep -qx '203.0.113.10:5201' && break
		sleep 0.1
	done
	if inns lan1 timeout $((SECONDS_PER_RUN + 20)) iperf3 -c 203.0.113.10 -P 4 -t "$SECONDS_PER_RUN" -J >"$WORK/iperf3-client.json" 2>&1; then
		RES_TCP=$("$PY" -c 'import json,sys; print("%.2f" % (json.load(open(sys.argv[1]))["end"]["sum_received"]["bits_per_second"] / 1e9))' "$WORK/iperf3-client.json")
	else
		echo "bench: iperf3 failed: $(tail -c 300 "$WORK/iperf3-client.json" | tr '\n' ' ')" >&2
		kill -TERM "$spid" 2>/dev/null || true
	fi
	wait "$spid" 2>/dev/null || true
	forget "$spid"
}

# measure NAME: runs the three measurements, sets R_<NAME>_*.
measure() {
	local name="$1"
	echo "bench: $name: UDP 1 flow (${SECONDS_PER_RUN}s)"
	udp_run "$WORK/udp-1flow.trafgen"
	eval "R_${name}_tx1=$RES_TX R_${name}_udp1=$RES_RX"
	echo "bench: $name: UDP $FLOWS flows (${SECONDS_PER_RUN}s)"
	udp_run "$WORK/udp-nflows.trafgen"
	eval "R_${name}_txn=$RES_TX R_${name}_udpn=$RES_RX"
	echo "bench: $name: TCP iperf3 -P 4 (${SECONDS_PER_RUN}s)"
	tcp_run
	eval "R_${name}_tcp=$RES_TCP"
}

check_path() {
	inns lan1 ping -c 3 -i 0.2 -W 2 203.0.113.10 >/dev/null 2>&1
}

# (a) the kernel's NAT.
lab kernelnat on
if ! check_path; then
	echo "bench: lan1 cannot reach srv1 through the kernel NAT" >&2
	exit 1
fi
measure kernel
lab kernelnat off

# (b) passgate.
PG_OK=0
if [[ $KERNEL_ONLY -eq 0 && -n "$PG_BIN" && -z "$PG_NOTE" ]]; then
	SOCK="$WORK/passgate.sock"
	ip netns exec "$P-rtr" "$PG_BIN" run --lan lan0 --lan-addr 192.168.50.1/24 --wan wan0 --wan-addr 203.0.113.1/24 \
		--control "$SOCK" >"$WORK/passgate.log" 2>&1 &
	PG_PID=$!
	for _ in $(seq 100); do
		kill -0 "$PG_PID" 2>/dev/null || break
		inns rtr "$PG_BIN" status --control "$SOCK" >/dev/null 2>&1 && {
			PG_OK=1
			break
		}
		sleep 0.2
	done
	if [[ $PG_OK -eq 1 ]] && check_path; then
		measure passgate
		inns rtr "$PG_BIN" status --control "$SOCK" >"$WORK/passgate-status.txt" 2>&1 || true
	else
		PG_OK=0
		PG_NOTE="passgate did not start or did not forward lan1 -> srv1; its log: $(tail -c 400 "$WORK/passgate.log" | tr '\n' ' ')"
	fi
	kill -TERM "$PG_PID" 2>/dev/null || true
	wait "$PG_PID" 2>/dev/null || true
	PG_PID=""
elif [[ $KERNEL_ONLY -eq 1 ]]; then
	PG_NOTE="not run (--kernel-only)"
fi

# Report.
ratio() {
	if [[ "$1" == - ]]; then
		echo -
		return
	fi
	awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else printf "-" }'
}
val() { if [[ $PG_OK -eq 1 ]]; then eval "echo \${R_passgate_$1}"; else echo "-"; fi; }
cpu="$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"

echo
echo "== passgate bench, $(date -u +%Y-%m-%dT%H:%M:%SZ) =="
echo "machine: nproc=$(nproc), kernel $(uname -r), ${cpu:-unknown CPU}"
echo "load:    $LOAD_BEFORE before the run (1/5/15 min; anything else running skews both columns)"
echo "lab:     prefix $P, veth + bridges, offloads off, MTU 1500"
echo
printf '%-34s %16s %16s %8s\n' "measure" "kernel NAT" "passgate" "pg/kern"
printf '%-34s %16s %16s %8s\n' "UDP 64B 1 flow, rx pkt/s" "$R_kernel_udp1" "$(val udp1)" "$(ratio "$(val udp1)" "$R_kernel_udp1")"
printf '%-34s %16s %16s %8s\n' "UDP 64B $FLOWS flows, rx pkt/s" "$R_kernel_udpn" "$(val udpn)" "$(ratio "$(val udpn)" "$R_kernel_udpn")"
printf '%-34s %16s %16s %8s\n' "TCP iperf3 -P 4, Gbit/s" "$R_kernel_tcp" "$(val tcp)" "$(ratio "$(val tcp)" "$R_kernel_tcp")"
printf '%-34s %16s %16s\n' "  (trafgen sent, 1 flow, pkt/s)" "$R_kernel_tx1" "$(val tx1)"
printf '%-34s %16s %16s\n' "  (trafgen sent, $FLOWS flows, pkt/s)" "$R_kernel_txn" "$(val txn)"
echo
echo "commands:"
echo "  UDP: ip netns exec $P-lan1 trafgen --dev eth0 --conf CONF --cpus 2   (under timeout -s INT $((SECONDS_PER_RUN + 1)))"
echo "       CONF = { eth(da=<rtr lan0 MAC>), ipv4(sa=192.168.50.10, da=203.0.113.10, ttl=64, df),"
echo "                udp(sp=$SPORT0 | dinc($SPORT0, $((SPORT0 + FLOWS - 1))), dp=$UDP_PORT), fill(0x00, 22) }"
echo "       figure = delta of /sys/class/net/eth0/statistics/rx_packets in $P-srv1 over the last $((SECONDS_PER_RUN - 1))s,"
echo "       with 'table netdev passgate_bench' dropping udp dport $UDP_PORT at srv1's ingress"
echo "  TCP: ip netns exec $P-srv1 iperf3 -s -1 -B 203.0.113.10"
echo "       ip netns exec $P-lan1 iperf3 -c 203.0.113.10 -P 4 -t $SECONDS_PER_RUN   (end.sum_received)"
echo "  kernel NAT: lab.sh kernelnat on (ip_forward=1, nft ip masquerade on wan0)"
echo "  passgate:   ip netns exec $P-rtr passgate run --lan lan0 --lan-addr 192.168.50.1/24 --wan wan0 --wan-addr 203.0.113.1/24"
if [[ -n "$PG_NOTE" ]]; then
	echo
	echo "passgate: $PG_NOTE"
fi
if [[ -s "$WORK/passgate-status.txt" ]]; then
	echo
	echo "passgate status after the runs:"
	sed 's/^/  /' "$WORK/passgate-status.txt" | head -40
fi
if [[ $KERNEL_ONLY -eq 0 && $PG_OK -ne 1 ]]; then
	exit 1
fi
