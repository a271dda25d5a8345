#!/usr/bin/env bash
# bench/lab.sh: the kernel's NAT and passgate in its default configuration,
# on AF_PACKET and on AF_XDP without flow offload and on AF_XDP with it,
# measured in ONE run on the same lab topology (docs/DESIGN.md "Measuring").
#
#   sudo bash bench/lab.sh                 both halves
#   sudo bash bench/lab.sh --kernel-only   only the kernel's NAT
#   BENCH_DRIVERS="default afpacket afxdp xdpoffload"  passgate's variants:
#       default     no --driver, no --offload (on veth: AF_PACKET + tc offload)
#       afpacket    --driver afpacket --offload=false
#       afxdp       --driver afxdp --offload=false
#       xdpoffload  --driver afxdp --offload (GRO on the switch's peers)
#       tcoffload   --driver afpacket --offload
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
#        does no work. In the first second, which is not counted, srv1
#        answers each flow once (a NAT sees it both ways, as real UDP flows
#        are, so offload takes them).
#   TCP: iperf3 -c 203.0.113.10 (one stream, then -P 4) -t 8 from lan1,
#        received Gbit/s.
#   Loss: iperf3 -u -l 64 -b 51.2M (100k pkt/s offered) from lan1 to srv1,
#        the server's lost_percent.
#   CPU per forwarded packet, over each UDP run: passgate's utime+stime
#        (/proc/PID/stat) and the machine's softirq time (/proc/stat; the
#        router namespace's forwarding runs there, but so does the
#        generator's and the receiver's share), in ns per packet srv1 got.
# shellcheck disable=SC2154 # R_kernel_* and R_passgate_* are set by eval in measure
set -euo pipefail

KERNEL_ONLY=0
case "${1:-}" in
--kernel-only) KERNEL_ONLY=1 ;;
"") ;;
*)
	sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//' >&2
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

# Packages (lab/packages.txt): those the benchmark needs, installed if missing.
# shellcheck source=../lab/packages.sh
source "$ROOT/lab/packages.sh"
pg_install iproute2 nftables ethtool netsniff-ng iperf3 iputils-ping python3

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

# cpu_ticks: passgate's utime+stime (0 without passgate); softirq_ticks: the
# machine's softirq time; both in clock ticks.
cpu_ticks() {
	if [[ -n "$PG_PID" ]]; then
		awk '{ print $14 + $15 }' "/proc/$PG_PID/stat"
	else
		echo 0
	fi
}
softirq_ticks() { awk '$1 == "cpu" { print $8 }' /proc/stat; }
HZ=$(getconf CLK_TCK)

# udp_run CONF: sets RES_TX and RES_RX, packets/s sent by lan1 and received by
# srv1 over the run less its first second, and RES_CPU, RES_SIRQ: passgate's
# CPU time and the machine's softirq time per received packet, in ns.
udp_run() {
	local conf="$1" flows="$2" pid tx1 rx1 t1 tx2 rx2 t2 c1 c2 s1 s2
	# timeout signals trafgen's whole process group: trafgen forks one
	# process per CPU and does not pass a signal on to them itself.
	ip netns exec "$P-lan1" timeout -s INT $((SECONDS_PER_RUN + 1)) \
		trafgen --dev eth0 --conf "$conf" --cpus 2 >"$WORK/trafgen.log" 2>&1 &
	pid=$!
	BG_PIDS+=("$pid")
	# One answer from srv1 to each flow, as a real UDP flow gets, in the
	# second that is not counted: a NAT sees each flow both ways (offload
	# takes only those). The outside port is the LAN one, which passgate and
	# the kernel keep when it is free.
	sleep 0.3
	inns srv1 "$PY" -c 'import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("203.0.113.10", '"$UDP_PORT"'))
for p in range(int(sys.argv[1]), int(sys.argv[2])):
    s.sendto(b"reply", ("203.0.113.1", p))' "$SPORT0" "$((SPORT0 + flows))" || true
	sleep 0.7
	tx1=$(counter lan1 eth0 tx_packets)
	rx1=$(counter srv1 eth0 rx_packets)
	t1=$(now)
	c1=$(cpu_ticks)
	s1=$(softirq_ticks)
	sleep $((SECONDS_PER_RUN - 1))
	tx2=$(counter lan1 eth0 tx_packets)
	rx2=$(counter srv1 eth0 rx_packets)
	t2=$(now)
	c2=$(cpu_ticks)
	s2=$(softirq_ticks)
	wait "$pid" 2>/dev/null || true
	forget "$pid"
	RES_TX=$(awk -v a="$tx1" -v b="$tx2" -v t1="$t1" -v t2="$t2" 'BEGIN { printf "%.0f", (b - a) / (t2 - t1) }')
	RES_RX=$(awk -v a="$rx1" -v b="$rx2" -v t1="$t1" -v t2="$t2" 'BEGIN { printf "%.0f", (b - a) / (t2 - t1) }')
	RES_CPU=$(awk -v c="$((c2 - c1))" -v n="$((rx2 - rx1))" -v hz="$HZ" 'BEGIN { if (n > 0) printf "%.0f", c * 1e9 / hz / n; else print "-" }')
	RES_SIRQ=$(awk -v c="$((s2 - s1))" -v n="$((rx2 - rx1))" -v hz="$HZ" 'BEGIN { if (n > 0) printf "%.0f", c * 1e9 / hz / n; else print "-" }')
}

# udp_snmp NODE FIELD: the node's Udp counter FIELD from /proc/net/snmp.
udp_snmp() {
	inns "$1" awk -v f="$2" '/^Udp:/ { if (!h) { for (i = 1; i <= NF; i++) col[$i] = i; h = 1 } else print $(col[f]) }' /proc/net/snmp
}

# loss_points: the counters along the loss run's path, space separated:
# lan1's UDP datagrams sent and send-buffer errors, lan1 eth0 tx, srv1 eth0
# rx, srv1's UDP datagrams received and receive-buffer errors.
loss_points() {
	echo "$(udp_snmp lan1 OutDatagrams) $(udp_snmp lan1 SndbufErrors) $(counter lan1 eth0 tx_packets)" \
		"$(counter srv1 eth0 rx_packets) $(udp_snmp srv1 InDatagrams) $(udp_snmp srv1 RcvbufErrors)"
}

# pg_losses FILE: passgate's lost frames by reason (status --json) into FILE.
pg_losses() {
	if [[ -n "$PG_PID" ]]; then
		inns rtr "$PG_BIN" status --json --control "$SOCK" >"$1" 2>/dev/null || echo '{}' >"$1"
	else
		echo '{}' >"$1"
	fi
}

# iperf3_server: starts a one-shot iperf3 server on srv1 (its JSON in
# $WORK/iperf3-server.json), sets SRV_PID and waits up to 5 s for it to listen.
iperf3_server() {
	ip netns exec "$P-srv1" iperf3 -s -1 -B 203.0.113.10 -J >"$WORK/iperf3-server.json" 2>&1 &
	SRV_PID=$!
	BG_PIDS+=("$SRV_PID")
	for _ in $(seq 50); do
		inns srv1 ss -Hltn | awk '{print $4}' | grep -qx '203.0.113.10:5201' && break
		sleep 0.1
	done
}

# loss_run [IPERF3 ARGS]: sets RES_LOSS, the percentage of an iperf3 UDP
# stream of 64-byte payloads at 100k pkt/s that did not arrive (server
# side), RES_LOSS_N, lost/total packets, and RES_LOSS_WHERE.
loss_run() {
	local spid
	local a b
	RES_LOSS=-
	RES_LOSS_N=-
	RES_LOSS_WHERE=-
	iperf3_server
	spid=$SRV_PID
	read -r -a a < <(loss_points)
	pg_losses "$WORK/losses-before.json"
	if inns lan1 timeout $((SECONDS_PER_RUN + 20)) iperf3 -c 203.0.113.10 -u -l 64 -b 51200000 "$@" -t "$SECONDS_PER_RUN" -J >"$WORK/iperf3-client.json" 2>&1; then
		read -r RES_LOSS RES_LOSS_N < <("$PY" -c 'import json,sys; s=json.load(open(sys.argv[1]))["end"]["sum"]; print("%.2f %d/%d" % (s["lost_percent"], s["lost_packets"], s["packets"]))' "$WORK/iperf3-client.json")
	else
		echo "bench: iperf3 -u failed: $(tail -c 300 "$WORK/iperf3-client.json" | tr '\n' ' ')" >&2
		kill -TERM "$spid" 2>/dev/null || true
	fi
	wait "$spid" 2>/dev/null || true
	forget "$spid"
	read -r -a b < <(loss_points)
	# Where the datagrams went: not sent (lan1 send buffer), lost between
	# lan1's and srv1's interfaces (the NAT), and dropped at srv1's socket
	# (receive buffer full: the receiver, not the NAT).
	pg_losses "$WORK/losses-after.json"
	RES_LOSS_WHERE="sndbuf=$((b[1] - a[1]))/nat=$(((b[2] - a[2]) - (b[3] - a[3])))/rcvbuf=$((b[5] - a[5]))"
	# passgate's own count of what it lost in the run, by reason.
	RES_LOSS_PG=$("$PY" -c '
import json, sys
a = json.load(open(sys.argv[1])).get("losses") or {}
b = json.load(open(sys.argv[2])).get("losses") or {}
d = ["%s=%d" % (k, b[k] - a.get(k, 0)) for k in sorted(b) if b[k] - a.get(k, 0)]
print(",".join(d) or "none")' "$WORK/losses-before.json" "$WORK/losses-after.json")
}

# tcp_run STREAMS: sets RES_TCP, received Gbit/s of iperf3 -P STREAMS (0 on
# failure).
tcp_run() {
	local spid streams="$1"
	RES_TCP=0
	iperf3_server
	spid=$SRV_PID
	if inns lan1 timeout $((SECONDS_PER_RUN + 20)) iperf3 -c 203.0.113.10 -P "$streams" -t "$SECONDS_PER_RUN" -J >"$WORK/iperf3-client.json" 2>&1; then
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
	udp_run "$WORK/udp-1flow.trafgen" 1
	eval "R_${name}_tx1=$RES_TX R_${name}_udp1=$RES_RX R_${name}_cpu1=$RES_CPU R_${name}_sirq1=$RES_SIRQ"
	echo "bench: $name: UDP $FLOWS flows (${SECONDS_PER_RUN}s)"
	udp_run "$WORK/udp-nflows.trafgen" "$FLOWS"
	eval "R_${name}_txn=$RES_TX R_${name}_udpn=$RES_RX R_${name}_cpun=$RES_CPU R_${name}_sirqn=$RES_SIRQ"
	echo "bench: $name: TCP iperf3 one stream (${SECONDS_PER_RUN}s)"
	tcp_run 1
	eval "R_${name}_tcp1=$RES_TCP"
	echo "bench: $name: TCP iperf3 -P 4 (${SECONDS_PER_RUN}s)"
	tcp_run 4
	eval "R_${name}_tcp=$RES_TCP"
	echo "bench: $name: UDP loss, iperf3 -u -l 64 at 100k pkt/s (${SECONDS_PER_RUN}s)"
	loss_run
	eval "R_${name}_loss=$RES_LOSS R_${name}_lossn=$RES_LOSS_N R_${name}_losswhere=$RES_LOSS_WHERE R_${name}_losspg=$RES_LOSS_PG"
	echo "bench: $name: UDP loss, the same with 4 MiB socket buffers (-w 4M) (${SECONDS_PER_RUN}s)"
	loss_run -w 4M
	eval "R_${name}_lossw=$RES_LOSS R_${name}_losswn=$RES_LOSS_N R_${name}_losswwhere=$RES_LOSS_WHERE R_${name}_losswpg=$RES_LOSS_PG"
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

# (b) passgate, on each driver.
DRIVERS="${BENCH_DRIVERS:-default afpacket afxdp xdpoffload}"
PG_RAN=()
declare -A PG_STATUS_FILE
run_passgate() {
	local drv="$1" name="pg_$1" ok=0 args=() gro=off
	case $drv in
	default) ;;
	afpacket | afxdp) args=(--driver "$drv" --offload=false) ;;
	tcoffload) args=(--driver afpacket --offload) ;;
	xdpoffload | offload)
		# veth takes XDP_REDIRECTed frames only into a peer with NAPI:
		# GRO on the switch's ends of lan0 and wan0, for this run only
		# (the tc program's redirect takes the transmit path instead).
		args=(--driver afxdp --offload)
		gro=on
		;;
	*)
		PG_NOTE="$PG_NOTE unknown BENCH_DRIVERS entry $drv;"
		return
		;;
	esac
	inns sw ethtool -K "$P-rlan" gro "$gro"
	inns sw ethtool -K "$P-rwan" gro "$gro"
	SOCK="$WORK/passgate-$drv.sock"
	ip netns exec "$P-rtr" "$PG_BIN" run --lan lan0 --lan-addr 192.168.50.1/24 --wan wan0 --wan-addr 203.0.113.1/24 \
		"${args[@]}" --control "$SOCK" >"$WORK/passgate-$drv.log" 2>&1 &
	PG_PID=$!
	for _ in $(seq 100); do
		kill -0 "$PG_PID" 2>/dev/null || break
		inns rtr "$PG_BIN" status --control "$SOCK" >/dev/null 2>&1 && {
			ok=1
			break
		}
		sleep 0.2
	done
	if [[ $ok -eq 1 ]] && check_path; then
		measure "$name"
		inns rtr "$PG_BIN" status --control "$SOCK" >"$WORK/passgate-status-$drv.txt" 2>&1 || true
		PG_STATUS_FILE[$drv]="$WORK/passgate-status-$drv.txt"
		PG_RAN+=("$drv")
	else
		PG_NOTE="$PG_NOTE passgate --driver $drv did not start or did not forward lan1 -> srv1; its log: $(tail -c 400 "$WORK/passgate-$drv.log" | tr '\n' ' ')"
	fi
	kill -TERM "$PG_PID" 2>/dev/null || true
	wait "$PG_PID" 2>/dev/null || true
	PG_PID=""
	inns sw ethtool -K "$P-rlan" gro off
	inns sw ethtool -K "$P-rwan" gro off
}
if [[ $KERNEL_ONLY -eq 0 && -n "$PG_BIN" && -z "$PG_NOTE" ]]; then
	for d in $DRIVERS; do
		run_passgate "$d"
	done
elif [[ $KERNEL_ONLY -eq 1 ]]; then
	PG_NOTE="not run (--kernel-only)"
fi

# Report.
ratio() {
	if ! [[ "$1" =~ ^[0-9.]+$ && "$2" =~ ^[0-9.]+$ ]]; then
		echo -
		return
	fi
	awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else printf "-" }'
}
ran() { [[ " ${PG_RAN[*]} " == *" $1 "* ]]; }
val() { if ran "$1"; then eval "echo \${R_pg_$1_$2}"; else echo "-"; fi; }
cpu="$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"

echo
echo "== passgate bench, $(date -u +%Y-%m-%dT%H:%M:%SZ) =="
echo "machine: nproc=$(nproc), kernel $(uname -r), ${cpu:-unknown CPU}"
echo "load:    $LOAD_BEFORE before the run (1/5/15 min; anything else running skews every column)"
echo "lab:     prefix $P, veth + bridges, offloads off, MTU 1500"
echo
row() { # LABEL KEY
	local line k
	line=$(printf '%-36s %12s' "$1" "$(eval "echo \${R_kernel_$2}")")
	for d in $DRIVERS; do
		line+=$(printf ' %12s %6s' "$(val "$d" "$2")" "$(ratio "$(val "$d" "$2")" "$(eval "echo \${R_kernel_$2}")")")
	done
	echo "$line"
}
hdr=$(printf '%-36s %12s' "measure" "kernel NAT")
for d in $DRIVERS; do
	case $d in xdpoffload | offload) l="xdp+offload" ;; tcoffload) l="tc+offload" ;; *) l="pg $d" ;; esac
	hdr+=$(printf ' %12s %6s' "$l" "x kern")
done
echo "$hdr"
row "UDP 64B 1 flow, rx pkt/s" udp1
row "UDP 64B $FLOWS flows, rx pkt/s" udpn
row "TCP iperf3 1 stream, Gbit/s" tcp1
row "TCP iperf3 -P 4, Gbit/s" tcp
row "UDP loss at 100k pkt/s, %" loss
row "  (lost/sent)" lossn
row "  (lost where: lan1 sndbuf/NAT/srv1 rcvbuf)" losswhere
row "  (passgate counted)" losspg
row "UDP loss at 100k pkt/s, -w 4M, %" lossw
row "  (lost/sent)" losswn
row "  (lost where: lan1 sndbuf/NAT/srv1 rcvbuf)" losswwhere
row "  (passgate counted)" losswpg
row "CPU ns/pkt, passgate, 1 flow" cpu1
row "CPU ns/pkt, passgate, $FLOWS flows" cpun
row "softirq ns/pkt (machine), 1 flow" sirq1
row "softirq ns/pkt (machine), $FLOWS" sirqn
row "  (trafgen sent, 1 flow, pkt/s)" tx1
row "  (trafgen sent, $FLOWS flows, pkt/s)" txn
echo
echo "commands:"
echo "  UDP: ip netns exec $P-lan1 trafgen --dev eth0 --conf CONF --cpus 2   (under timeout -s INT $((SECONDS_PER_RUN + 1)))"
echo "       CONF = { eth(da=<rtr lan0 MAC>), ipv4(sa=192.168.50.10, da=203.0.113.10, ttl=64, df),"
echo "                udp(sp=$SPORT0 | dinc($SPORT0, $((SPORT0 + FLOWS - 1))), dp=$UDP_PORT), fill(0x00, 22) }"
echo "       figure = delta of /sys/class/net/eth0/statistics/rx_packets in $P-srv1 over the last $((SECONDS_PER_RUN - 1))s,"
echo "       with 'table netdev passgate_bench' dropping udp dport $UDP_PORT at srv1's ingress"
echo "  TCP: ip netns exec $P-srv1 iperf3 -s -1 -B 203.0.113.10"
echo "       ip netns exec $P-lan1 iperf3 -c 203.0.113.10 [-P 4] -t $SECONDS_PER_RUN   (end.sum_received)"
echo "  loss: ip netns exec $P-lan1 iperf3 -c 203.0.113.10 -u -l 64 -b 51200000 [-w 4M] -t $SECONDS_PER_RUN   (end.sum.lost_percent)"
echo "        where: lan1 Udp SndbufErrors; lan1 eth0 tx_packets - srv1 eth0 rx_packets (NAT and links); srv1 Udp RcvbufErrors"
echo "  kernel NAT: lab.sh kernelnat on (ip_forward=1, nft ip masquerade on wan0)"
echo "  passgate:   ip netns exec $P-rtr passgate run --lan lan0 --lan-addr 192.168.50.1/24 --wan wan0 --wan-addr 203.0.113.1/24 ARGS"
echo "              default: no ARGS; afpacket/afxdp: --driver D --offload=false; tcoffload: --driver afpacket --offload;"
echo "              xdpoffload: --driver afxdp --offload, with GRO on the switch's peers of lan0 and wan0"
if [[ -n "$PG_NOTE" ]]; then
	echo
	echo "passgate: $PG_NOTE"
fi
for d in "${PG_RAN[@]}"; do
	echo
	echo "passgate ($d): status after the runs (driver, offload, lost frames, sockets):"
	sed -n '/^driver/p; /^offload/p; /^LOST FRAMES/,/^$/p; /^SOCKETS/,$p' "${PG_STATUS_FILE[$d]}" | sed 's/^/  /' | head -30
done
if [[ $KERNEL_ONLY -eq 0 && ${#PG_RAN[@]} -eq 0 ]]; then
	exit 1
fi
