//go:build lab

package offload_test

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"passgate/control"
	"passgate/lab"
	"passgate/lab/labtest"
)

// The offload lab tests run passgate in a lab of prefix "pgofl".
const labPrefix = "pgofl"

// smallSize is small.bin's size: 8 MiB, downloaded in well under the
// 200 ms between two reads of the offloaded counts.
const smallSize = 8 << 20

// A short UDP timeout, so a transfer outlives it many times over.
const gateConfig = `{
  "lan":{"interface":"lan0","address":"192.168.50.1/24"},
  "wan":{"interface":"wan0","address":"203.0.113.1/24"},
  "nat":{"allow_short_timeouts":true,"timeouts":{"udp":"3s"}},
  "offload":true,
  "admin":{"enabled":false}
}`

// udpEcho answers each datagram with its bytes and the sender's address.
const udpEcho = `
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2])))
print("ready", flush=True)
while True:
    b, a = s.recvfrom(4096)
    s.sendto(b + (" from %s:%d" % a).encode(), a)
`

// udpStream sends a numbered datagram every 2 ms for argv[3] seconds from
// one socket and checks every answer: its own bytes back, seen from the
// WAN address and always the same outside port. It prints sent, answered
// and the outside ports seen.
const udpStream = `
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setblocking(False)
dst = (sys.argv[1], int(sys.argv[2]))
end = time.time() + float(sys.argv[3])
sent = ok = 0
ports = set()
bad = 0
while time.time() < end:
    m = (b"offload-%08d-" % sent) + bytes(range(256)) * 4
    s.sendto(m, dst)
    sent += 1
    t = time.time() + 0.002
    while time.time() < t:
        try:
            b = s.recv(4096)
        except BlockingIOError:
            time.sleep(0.0005)
            continue
        body, _, frm = b.rpartition(b" from ")
        if not body.startswith(b"offload-") or body[17:] != bytes(range(256)) * 4:
            bad += 1
            continue
        host, port = frm.decode().split(":")
        if host != "203.0.113.1":
            bad += 1
            continue
        ports.add(port)
        ok += 1
time.sleep(0.5)
while True:
    try:
        b = s.recv(4096)
        ok += 1
    except BlockingIOError:
        break
print("sent %d answered %d bad %d ports %s" % (sent, ok, bad, ",".join(sorted(ports))))
`

// idEcho answers each UDP datagram to argv[2] with its bytes and records
// the IP ID of each (a raw socket's copy), by the datagram's first byte,
// for argv[3] seconds; then prints {"ids": {tag: [id, ...]}, "df": how
// many had DF set}.
const idEcho = `
import json, select, socket, struct, sys, time
addr, port = sys.argv[1], int(sys.argv[2])
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind((addr, port))
r = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP)
print("ready", flush=True)
ids, df = {}, 0
end = time.time() + float(sys.argv[3])
while time.time() < end:
    rd, _, _ = select.select([u, r], [], [], 0.1)
    if u in rd:
        b, a = u.recvfrom(4096)
        u.sendto(b, a)
    if r in rd:
        p = r.recv(65535)
        ihl = (p[0] & 15) * 4
        if struct.unpack("!H", p[ihl+2:ihl+4])[0] != port:
            continue
        if p[6] & 0x40:
            df += 1
        ids.setdefault(chr(p[ihl+8]), []).append(struct.unpack("!H", p[4:6])[0])
print(json.dumps({"ids": ids, "df": df}), flush=True)
`

// idStream sends from argv[1]:5000 to argv[2]:argv[3] a UDP datagram
// every 4 ms for argv[6] seconds, each with DF clear and IP ID argv[4]
// (a raw socket: the kernel would pick its own), its payload starting
// with argv[5], and counts the answers (to a socket bound to the port):
// {"sent": n, "answered": m}.
const idStream = `
import json, socket, struct, sys, time
src, dst, dport, ident, tag = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind((src, 5000))
u.setblocking(False)
r = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff
sent = got = 0
end = time.time() + float(sys.argv[6])
while time.time() < end:
    body = (tag + "-%06d" % sent).encode()
    n = 8 + len(body)
    ph = struct.pack("!4s4sBBH", socket.inet_aton(src), socket.inet_aton(dst), 0, 17, n)
    c = csum(ph + struct.pack("!HHHH", 5000, dport, n, 0) + body) or 0xffff
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + n, ident, 0, 64, 17, 0, socket.inet_aton(src), socket.inet_aton(dst))
    r.sendto(ip + struct.pack("!HHHH", 5000, dport, n, c) + body, (dst, 0))
    sent += 1
    t = time.time() + 0.004
    while time.time() < t:
        try:
            u.recv(4096)
            got += 1
        except BlockingIOError:
            time.sleep(0.0005)
time.sleep(0.3)
while True:
    try:
        u.recv(4096)
        got += 1
    except BlockingIOError:
        break
print(json.dumps({"sent": sent, "answered": got}), flush=True)
`

// mtuProbe keeps a UDP flow to argv[1]:argv[2] busy with small datagrams
// (so it is offloaded) and, at 1 s and again at 4 s (after the test
// lowered the way out's MTU), sends one of argv[3] bytes with DF set
// (IP_PMTUDISC_PROBE: whatever the path MTU) on the same flow. It prints
// for each what came back: "echo N", "timeout" or "error EMSGSIZE mtu M"
// (the frag-needed answer, and the path MTU it taught), then how many
// small datagrams were answered of how many.
const mtuProbe = `
import socket, sys, time, errno
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, 10, 3)  # IP_MTU_DISCOVER: IP_PMTUDISC_PROBE
s.connect((sys.argv[1], int(sys.argv[2])))
s.settimeout(0.3)
sent = ok = 0
def small(d):
    global sent, ok
    end = time.time() + d
    while time.time() < end:
        s.send(b"small-%d" % sent)
        sent += 1
        try:
            s.recv(4096)
            ok += 1
        except OSError:
            pass
        time.sleep(0.02)
def big(name):
    s.send(b"B" * int(sys.argv[3]))
    end = time.time() + 1
    while time.time() < end:
        try:
            b = s.recv(4096)
        except socket.timeout:
            break
        except OSError as e:
            print("%s error %s mtu %d" % (name, errno.errorcode[e.errno], s.getsockopt(socket.IPPROTO_IP, 14)), flush=True)
            return
        if b.startswith(b"BBBB"):
            print("%s echo %d" % (name, len(b.rpartition(b" from ")[0])), flush=True)
            return
    print("%s timeout" % name, flush=True)
small(1)
big("before")
small(3)
big("after")
small(1)
print("small %d of %d" % (ok, sent), flush=True)
`

func TestMain(m *testing.M) { labtest.Main(m) }

func TestOffloadLab(t *testing.T) {
	bin := labtest.Passgate(t) // built before the lab's clock starts
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	l := labtest.Up(t, labPrefix, 3*time.Minute)
	dir := t.TempDir()
	big := filepath.Join(dir, "big.bin")
	const size = 200 << 20
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	src := io.LimitReader(&pattern{}, size)
	if _, err := io.Copy(io.MultiWriter(f, h), src); err != nil {
		t.Fatal(err)
	}
	f.Close()
	want := fmt.Sprintf("%x", h.Sum(nil))
	// small.bin is a download shorter than a sweep (python's server
	// takes no ranges).
	small, err := io.ReadAll(io.LimitReader(&pattern{}, smallSize))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "small.bin"), small, 0o644); err != nil {
		t.Fatal(err)
	}
	for name, text := range map[string]string{"echo.py": udpEcho, "stream.py": udpStream, "idecho.py": idEcho, "idstream.py": idStream, "mtu.py": mtuProbe} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	web := labtest.StartT(t, l, lab.Server1, "/usr/bin/python3", "-m", "http.server", "--bind", lab.Srv1, "--directory", dir, "8000")
	if err := labtest.WaitListen(l, lab.Server1, "tcp", lab.Srv1, 8000, 10*time.Second, web); err != nil {
		t.Fatal(err)
	}
	echo := labtest.StartT(t, l, lab.Server1, "/usr/bin/python3", filepath.Join(dir, "echo.py"), lab.Srv1, "9000")
	if err := echo.WaitLine("ready", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	for _, driver := range []string{"afxdp", "afpacket"} {
		t.Run(driver, func(t *testing.T) {
			offloadLab(ctx, t, l, driver, labtest.GateOptions{Bin: bin, Dir: dir, Config: gateConfig, Args: []string{"--driver", driver, "--offload"}}, web, want)
		})
	}
}

// offloadLab runs passgate with the driver and offload and checks that
// the packets of a TCP download and of a UDP stream were forwarded by the
// kernel (the XDP program with AF_XDP, the tc program with AF_PACKET).
func offloadLab(ctx context.Context, t *testing.T, l *lab.Lab, driver string, o labtest.GateOptions, web *labtest.Proc, want string) {
	dir := o.Dir
	// veth delivers XDP_REDIRECTed frames only to a peer with NAPI: GRO
	// on for AF_XDP; the tc program's redirect takes the transmit path
	// the kernel's forwarding takes, which wants it off.
	gro := map[string]string{"afxdp": "on", "afpacket": "off"}[driver]
	for _, dev := range []string{l.Prefix + "-rlan", l.Prefix + "-rwan"} {
		labtest.RunT(t, l, 10*time.Second, lab.Switch, "ethtool", "-K", dev, "gro", gro)
	}
	g := labtest.StartGateT(ctx, t, l, o)
	defer g.Stop()
	counters := func() map[string]uint64 {
		t.Helper()
		st, err := g.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return st.Dataplane
	}
	if _, ok := counters()["offload_flows"]; !ok {
		t.Fatalf("status shows no offload: %v", counters())
	}

	download := func(t *testing.T) {
		c0 := counters()
		// Paced so that the ~200 ms before the flow is offloaded is a
		// small part of it: 200 MB at 40 MB/s, 5 s.
		out, err := labtest.Run(l, 90*time.Second, lab.Lan1, "sh", "-c",
			fmt.Sprintf("curl -sS --max-time 80 --limit-rate 40M http://%s:8000/big.bin | sha256sum", lab.Srv1))
		if err != nil || !strings.HasPrefix(out, want) {
			t.Fatalf("download through passgate: %v: sha256 %q, want %s", err, out, want)
		}
		if log := web.Output(); !strings.Contains(log, lab.WANAddr+` - - `) || !strings.Contains(log, "GET /big.bin") {
			t.Errorf("the server did not see the download from %s:\n%s", lab.WANAddr, labtest.Tail(log, 2000))
		}
		// The FIN went through the engine: within a couple of sweeps
		// the entry is gone.
		var c map[string]uint64
		err = labtest.Poll(ctx, 5*time.Second, func() (bool, string) {
			c = counters()
			return c["offload_flows"] == 0 && c["offload_removed"] > c0["offload_removed"], fmt.Sprint(c)
		})
		if err != nil {
			t.Errorf("the offloaded flow was not withdrawn after the connection ended: %v", err)
		}
		inXDP := c["offload_packets"] - c0["offload_packets"]
		inGo := c["forwarded"] - c0["forwarded"]
		t.Logf("TCP: %d packets in the kernel, %d in passgate's workers, %d offloads installed", inXDP, inGo, c["offload_installed"]-c0["offload_installed"])
		if c["offload_installed"] == c0["offload_installed"] || inXDP < 9*inGo || inXDP < 100000 {
			t.Errorf("%d packets forwarded in the kernel and %d in userspace: want at least 100000 and 90%% in the kernel", inXDP, inGo)
		}
	}
	t.Run("TCP", download)
	// A download shorter than a sweep, followed at once by another
	// connection whose install withdraws the first (FIN seen) before the
	// next sweep reads its counts: the flow still shows every byte.
	t.Run("short download counted", func(t *testing.T) {
		fs0, err := g.Flows(ctx)
		if err != nil {
			t.Fatal(err)
		}
		st0, err := g.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[netip.AddrPort]bool{}
		for _, f := range fs0 {
			seen[f.Inside] = true
		}
		url := fmt.Sprintf("http://%s:8000/", lab.Srv1)
		out, err := labtest.Run(l, 30*time.Second, lab.Lan1, "sh", "-c",
			fmt.Sprintf("curl -sS -o /dev/null -w '%%{size_download}\\n' %ssmall.bin && curl -sS -o /dev/null %snone", url, url))
		if err != nil || strings.TrimSpace(out) != fmt.Sprint(smallSize) {
			t.Fatalf("download through passgate: %v: %q", err, out)
		}
		var got *control.Flow
		err = labtest.Poll(ctx, 5*time.Second, func() (bool, string) {
			fs, err := g.Flows(ctx)
			if err != nil {
				return false, err.Error()
			}
			got = nil
			for i, f := range fs {
				if f.Proto == "tcp" && f.Remote.Port() == 8000 && !seen[f.Inside] && (got == nil || f.BytesIn > got.BytesIn) {
					got = &fs[i]
				}
			}
			return got != nil && counters()["offload_flows"] == 0, fmt.Sprint(got)
		})
		if err != nil {
			t.Fatalf("the download's flow: %v", err)
		}
		if got.BytesIn < smallSize {
			t.Errorf("the %d-byte download's flow counts %d bytes in (%d packets): the offloaded ones were lost", smallSize, got.BytesIn, got.PacketsIn)
		}
		// The NAT's traffic counters (status, the admin page's Traffic,
		// /metrics) count the offloaded packets too.
		st, err := g.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if in, out := st.NAT.BytesIn-st0.NAT.BytesIn, st.NAT.PacketsOut-st0.NAT.PacketsOut; in < got.BytesIn || out < got.PacketsOut {
			t.Errorf("the NAT counted %d bytes WAN to LAN and %d packets LAN to WAN during the download, its flow alone %d and %d", in, out, got.BytesIn, got.PacketsOut)
		}
	})
	if driver == "afpacket" {
		// lan1 leaving its checksums to offload, and the switch's port
		// toward the router too (else the bridge completes them): the
		// skbs reach the tc program CHECKSUM_PARTIAL, the field holding
		// the pseudo-header sum, which the helpers must update for the
		// new addresses only. wan0 does not offload checksums, so the
		// kernel completes them on the way out and srv1 checks them: a
		// wrong one stalls the download.
		t.Run("TCP partial checksums", func(t *testing.T) {
			for _, c := range [][]string{{lab.Lan1, "eth0"}, {lab.Switch, l.Prefix + "-rlan"}} {
				labtest.RunT(t, l, 10*time.Second, c[0], "ethtool", "-K", c[1], "tx", "on", "tso", "off", "gso", "off")
				defer labtest.Run(l, 10*time.Second, c[0], "ethtool", "-K", c[1], "tx", "off")
			}
			download(t)
		})
	}

	t.Run("UDP", func(t *testing.T) {
		c0 := counters()
		// 12 s of traffic: four times the UDP timeout of 3 s.
		out, err := labtest.Run(l, 60*time.Second, lab.Lan1, "/usr/bin/python3", filepath.Join(dir, "stream.py"), lab.Srv1, "9000", "12")
		if err != nil {
			t.Fatalf("stream: %v: %s", err, out)
		}
		var sent, answered, bad int
		var ports string
		if _, err := fmt.Sscanf(out, "sent %d answered %d bad %d ports %s", &sent, &answered, &bad, &ports); err != nil {
			t.Fatalf("stream said %q: %v", out, err)
		}
		c := counters()
		inXDP := c["offload_packets"] - c0["offload_packets"]
		inGo := c["forwarded"] - c0["forwarded"]
		t.Logf("UDP: %s; %d packets in the kernel, %d in passgate's workers", strings.TrimSpace(out), inXDP, inGo)
		if bad != 0 || sent < 1000 || answered < sent*99/100 || strings.Contains(ports, ",") {
			t.Errorf("UDP through passgate: %s; want every answer intact from one outside port", out)
		}
		if inXDP < uint64(sent) || inXDP < 9*inGo {
			t.Errorf("%d packets forwarded in the kernel, %d in userspace, of %d sent each way", inXDP, inGo, sent)
		}
		// Forwarded in XDP all along, the flow never expired: it was
		// installed once and is still there.
		if n := c["offload_installed"] - c0["offload_installed"]; n != 1 || c["offload_removed"] != c0["offload_removed"] || c["offload_flows"] != 1 {
			t.Errorf("the UDP flow was offloaded %d times and withdrawn %d times (now %d offloaded): it expired during the transfer",
				n, c["offload_removed"]-c0["offload_removed"], c["offload_flows"])
		}
		flows, err := g.Flows(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, fl := range flows {
			t.Logf("flow %+v", fl)
		}
	})

	// Windows sends UDP with DF clear, as do many games and phones: such
	// a flow is offloaded all the same, the programs giving each datagram
	// a new IP ID from the engine's counters (RFC 7857 section 10). lan1
	// and lan2 send srv1 datagrams all with ID 4242: srv1 must see each
	// once, all with different IDs, from the one counter of srv1 and UDP
	// (no more IDs between the first and the last than were sent), most
	// forwarded in the kernel.
	t.Run("UDP DF clear", func(t *testing.T) {
		srv := labtest.StartT(t, l, lab.Server1, "/usr/bin/python3", filepath.Join(dir, "idecho.py"), lab.Srv1, "9001", "12")
		if err := srv.WaitLine("ready", 10*time.Second); err != nil {
			t.Fatal(err)
		}
		c0 := counters()
		type sent struct{ Sent, Answered int }
		var hosts [2]sent
		errs := make(chan error, 2)
		for i, h := range [][3]string{{lab.Lan1, lab.LAN1, "a"}, {lab.Lan2, lab.LAN2, "b"}} {
			go func() {
				out, err := labtest.Run(l, 30*time.Second, h[0], "/usr/bin/python3", filepath.Join(dir, "idstream.py"), h[1], lab.Srv1, "9001", "4242", h[2], "5")
				if err == nil {
					err = json.Unmarshal([]byte(out), &hosts[i])
				}
				if err != nil {
					err = fmt.Errorf("%s: %v: %s", h[0], err, out)
				}
				errs <- err
			}()
		}
		for range 2 {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
		c := counters()
		if err := srv.Wait(20 * time.Second); err != nil {
			t.Fatalf("idecho: %v\n%s", err, srv.Output())
		}
		lines := strings.Split(strings.TrimSpace(srv.Output()), "\n")
		var got struct {
			IDs map[string][]uint16
			DF  int
		}
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), &got); err != nil {
			t.Fatalf("idecho: %v: %s", err, srv.Output())
		}
		inXDP := c["offload_packets"] - c0["offload_packets"]
		inGo := c["forwarded"] - c0["forwarded"]
		total := hosts[0].Sent + hosts[1].Sent
		seen := map[uint16]int{}
		for _, ids := range got.IDs {
			for _, id := range ids {
				seen[id]++
			}
		}
		var repeats []uint16
		for id, n := range seen {
			if n > 1 {
				repeats = append(repeats, id)
			}
		}
		span := idSpan(seen)
		t.Logf("sent %+v; srv1 got %d of lan1, %d of lan2, %d IDs spanning %d, %d with DF; %d packets in the kernel, %d in passgate's workers, %d offloads installed",
			hosts, len(got.IDs["a"]), len(got.IDs["b"]), len(seen), span, got.DF, inXDP, inGo, c["offload_installed"]-c0["offload_installed"])
		for i, h := range hosts {
			if h.Sent < 500 || h.Answered < h.Sent*95/100 || len(got.IDs[string(rune('a'+i))]) < h.Sent*95/100 {
				t.Errorf("lan%d sent %d, %d answered, srv1 got %d: want 95%%", i+1, h.Sent, h.Answered, len(got.IDs[string(rune('a'+i))]))
			}
		}
		if len(repeats) != 0 || got.DF != 0 {
			t.Errorf("srv1 saw IDs %v more than once (and %d datagrams with DF): want every ID once", repeats, got.DF)
		}
		if span > total {
			t.Errorf("the IDs span %d for %d datagrams sent: not one counter's", span, total)
		}
		if c["offload_installed"]-c0["offload_installed"] < 2 || inXDP < uint64(total) || inXDP < 9*inGo {
			t.Errorf("%d packets forwarded in the kernel, %d in userspace, of %d sent each way: want the DF-clear flows offloaded", inXDP, inGo, total)
		}
	})

	// The way out's MTU lowered while a flow is offloaded (ip link set
	// dev wan0 mtu 1400): the entry, made for 1500, must follow, or the
	// program sends on frames the interface no longer takes; passgate
	// answers those with frag-needed at the new MTU instead.
	t.Run("MTU lowered", func(t *testing.T) {
		c0 := counters()
		p := labtest.StartT(t, l, lab.Lan1, "/usr/bin/python3", filepath.Join(dir, "mtu.py"), lab.Srv1, "9000", "1400")
		if err := p.WaitOutput("before ", 10*time.Second); err != nil {
			t.Fatal(err)
		}
		labtest.RunT(t, l, 10*time.Second, lab.Router, "ip", "link", "set", "wan0", "mtu", "1400")
		defer labtest.Run(l, 10*time.Second, lab.Router, "ip", "link", "set", "wan0", "mtu", "1500")
		if err := p.Wait(20 * time.Second); err != nil {
			t.Fatalf("mtu.py: %v\n%s", err, p.Output())
		}
		out := p.Output()
		c := counters()
		t.Logf("wan0's MTU lowered to 1400 3 s in:\n%s; offloads installed %d, withdrawn %d",
			strings.TrimSpace(out), c["offload_installed"]-c0["offload_installed"], c["offload_removed"]-c0["offload_removed"])
		var ok, sent int
		if i := strings.Index(out, "small "); i < 0 {
			t.Fatalf("mtu.py said %q", out)
		} else if _, err := fmt.Sscanf(out[i:], "small %d of %d", &ok, &sent); err != nil {
			t.Fatalf("mtu.py said %q: %v", out, err)
		}
		// 1400 bytes of data: a 1428-byte packet, its echo longer.
		if !strings.Contains(out, "before echo 1400") {
			t.Errorf("the large datagram did not cross before the MTU changed: %q", out)
		}
		if !strings.Contains(out, "after error EMSGSIZE mtu 1400") {
			t.Errorf("the large datagram after the MTU changed was not answered frag-needed 1400: %q", out)
		}
		if sent < 100 || ok < sent*9/10 {
			t.Errorf("small datagrams: %d of %d answered", ok, sent)
		}
		// The entries made for 1500 were replaced by ones for 1400.
		if c["offload_installed"]-c0["offload_installed"] < 2 || c["offload_removed"] == c0["offload_removed"] {
			t.Errorf("the flow was not offloaded again for the new MTU: %v", c)
		}
	})

	// The next hop answers from another MAC (a replaced gateway, an
	// address taken over) while a flow to it is offloaded: the entry,
	// made with the old MAC, must follow, or the flow's packets go on to
	// a station that is no longer there.
	t.Run("next hop's MAC changes", func(t *testing.T) {
		c0 := counters()
		old := strings.TrimSpace(labtest.RunT(t, l, 10*time.Second, lab.Server1, "cat", "/sys/class/net/eth0/address"))
		defer labtest.Run(l, 10*time.Second, lab.Server1, "ip", "link", "set", "eth0", "address", old)
		done := make(chan string, 1)
		go func() {
			// With arp_notify, the kernel announces the new MAC (a
			// gratuitous ARP) when it changes.
			out, err := labtest.Run(l, 20*time.Second, lab.Server1, "sh", "-c",
				"sleep 2 && sysctl -qw net.ipv4.conf.eth0.arp_notify=1 && ip link set eth0 address 02:00:5e:10:00:99")
			done <- fmt.Sprint(out, err)
		}()
		out, err := labtest.Run(l, 60*time.Second, lab.Lan1, "/usr/bin/python3", filepath.Join(dir, "stream.py"), lab.Srv1, "9000", "6")
		if err != nil {
			t.Fatalf("stream: %v: %s", err, out)
		}
		if msg := <-done; msg != "<nil>" {
			t.Fatalf("changing srv1's MAC: %s", msg)
		}
		var sent, answered, bad int
		var ports string
		if _, err := fmt.Sscanf(out, "sent %d answered %d bad %d ports %s", &sent, &answered, &bad, &ports); err != nil {
			t.Fatalf("stream said %q: %v", out, err)
		}
		c := counters()
		t.Logf("UDP, srv1's MAC changed 2 s in: %s; offloads installed %d, withdrawn %d",
			strings.TrimSpace(out), c["offload_installed"]-c0["offload_installed"], c["offload_removed"]-c0["offload_removed"])
		// Until the new MAC is announced 2 s in a third of the stream;
		// after it, a sync (200 ms) replaces the entry.
		if sent < 1000 || answered < sent*9/10 {
			t.Errorf("UDP to srv1 across its MAC change: %s; want 90%% answered", out)
		}
		if c["offload_installed"]-c0["offload_installed"] < 2 {
			t.Errorf("the flow was not offloaded again with the new MAC: %v", c)
		}
	})

	// A decision ends an offloaded flow: deleting the port forward it
	// came in by withdraws its entry before the change is answered.
	t.Run("forward deleted", func(t *testing.T) {
		echo := labtest.StartT(t, l, lab.Lan1, "/usr/bin/python3", filepath.Join(dir, "echo.py"), lab.LAN1, "9000")
		if err := echo.WaitLine("ready", 10*time.Second); err != nil {
			t.Fatal(err)
		}
		if out, err := g.CLI(ctx, "forward", "add", "offl", "udp", "9100", lab.LAN1+":9000"); err != nil {
			t.Fatalf("forward add: %v: %s", err, out)
		}
		c0 := counters()
		out, err := labtest.Run(l, 30*time.Second, lab.Server1, "/usr/bin/python3", "-c", `
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(0.05)
ok = 0
for i in range(60):
    s.sendto(b"in-%d" % i, ("`+lab.WANAddr+`", 9100))
    try:
        s.recv(2048); ok += 1
    except socket.timeout:
        pass
    time.sleep(0.02)
print(ok)`)
		if err != nil || strings.TrimSpace(out) == "0" {
			t.Fatalf("no answers through the forward: %v %q", err, out)
		}
		c := counters()
		if c["offload_installed"] == c0["offload_installed"] || c["offload_flows"] == 0 {
			t.Fatalf("the forwarded flow was not offloaded: %v", c)
		}
		if out, err := g.CLI(ctx, "forward", "del", "offl"); err != nil {
			t.Fatalf("forward del: %v: %s", err, out)
		}
		c1 := counters()
		if c1["offload_removed"] <= c["offload_removed"] || c1["offload_flows"] >= c["offload_flows"] {
			t.Errorf("the forward's offloaded flow outlived its deletion: before %v after %v", c, c1)
		}
	})
}

// idSpan is how many IDs, wrapping at 65536, the smallest run that holds
// every ID of seen covers.
func idSpan(seen map[uint16]int) int {
	if len(seen) == 0 {
		return 0
	}
	ids := make([]int, 0, len(seen))
	for id := range seen {
		ids = append(ids, int(id))
	}
	sort.Ints(ids)
	gap := ids[0] + 65536 - ids[len(ids)-1] // the wrap's
	for i := 1; i < len(ids); i++ {
		gap = max(gap, ids[i]-ids[i-1])
	}
	return 65536 - gap + 1
}

// pattern is an endless stream of bytes that is not all zero, so a
// misplaced segment shows in the hash.
type pattern struct{ n uint64 }

func (p *pattern) Read(b []byte) (int, error) {
	for i := range b {
		p.n++
		b[i] = byte(p.n*2654435761>>13) ^ byte(p.n>>20)
	}
	return len(b), nil
}
