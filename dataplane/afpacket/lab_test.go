//go:build lab

package afpacket

// Test plumbing: every test builds its own pair of network namespaces joined
// by a veth pair, so nothing outside them is ever addressed. Namespaces are
// named pgafp-<pid>-<n>-{a,b} and deleted in t.Cleanup; TestMain also
// removes leftovers of test processes that died.

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const nsPrefix = "pgafp-"

func TestMain(m *testing.M) {
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "afpacket tests create network namespaces and raw sockets: run them as root")
		os.Exit(1)
	}
	for _, tool := range []string{"ip", "ethtool"} {
		if _, err := exec.LookPath(tool); err != nil {
			fmt.Fprintf(os.Stderr, "afpacket tests need %s: %v\n", tool, err)
			os.Exit(1)
		}
	}
	removeStaleNamespaces()
	os.Exit(m.Run())
}

// removeStaleNamespaces deletes pgafp- namespaces whose creating process is
// gone (a test binary killed by a timeout cannot run its cleanups).
func removeStaleNamespaces() {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || !strings.HasPrefix(f[0], nsPrefix) {
			continue
		}
		name := f[0]
		pidStr, _, _ := strings.Cut(strings.TrimPrefix(name, nsPrefix), "-")
		pid, err := strconv.Atoi(pidStr)
		if err != nil || pid == os.Getpid() {
			continue
		}
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); os.IsNotExist(err) {
			_ = exec.Command("ip", "netns", "del", name).Run()
		}
	}
}

var labSeq atomic.Int32

// lab is two namespaces, a and b, with veth devA in a linked to devB in b.
type lab struct {
	nsA, nsB string
}

const (
	devA = "pgafp0"
	devB = "pgafp1"
)

func run(t testing.TB, args ...string) {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func newLab(t testing.TB) *lab {
	t.Helper()
	n := labSeq.Add(1)
	l := &lab{
		nsA: fmt.Sprintf("%s%d-%d-a", nsPrefix, os.Getpid(), n),
		nsB: fmt.Sprintf("%s%d-%d-b", nsPrefix, os.Getpid(), n),
	}
	for _, ns := range []string{l.nsA, l.nsB} {
		run(t, "ip", "netns", "add", ns)
		t.Cleanup(func() {
			if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
				t.Errorf("ip netns del %s: %v\n%s", ns, err, out)
			}
		})
		// No IPv6 means no router solicitations, MLD or DAD: the only
		// frames on the wire are the ones the test sends.
		run(t, "ip", "netns", "exec", ns, "sysctl", "-qw",
			"net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
	}
	run(t, "ip", "-n", l.nsA, "link", "add", devA, "type", "veth", "peer", "name", devB, "netns", l.nsB)
	for _, p := range [][2]string{{l.nsA, devA}, {l.nsB, devB}} {
		run(t, "ip", "netns", "exec", p[0], "ethtool", "-K", p[1], "rx", "off", "tx", "off", "tso", "off", "gso", "off", "gro", "off")
		run(t, "ip", "-n", p[0], "link", "set", p[1], "up")
	}
	for _, p := range [][2]string{{l.nsA, devA}, {l.nsB, devB}} {
		waitLowerUp(t, p[0], p[1])
	}
	return l
}

func waitLowerUp(t testing.TB, ns, dev string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		out, err := exec.Command("ip", "-n", ns, "-o", "link", "show", "dev", dev).CombinedOutput()
		if err == nil && strings.Contains(string(out), "LOWER_UP") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s in %s never came up: %s", dev, ns, out)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// inNetns runs fn on a locked OS thread switched into namespace ns, then
// switches back. Sockets created by fn stay in ns. If switching back fails
// the thread is left locked, so the runtime discards it with the goroutine
// instead of reusing a thread in the wrong namespace.
func inNetns(t testing.TB, ns string, fn func()) {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- fmt.Errorf("open own netns: %w", err)
			return
		}
		defer unix.Close(orig)
		target, err := unix.Open("/var/run/netns/"+ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("open netns %s: %w", ns, err)
			return
		}
		defer unix.Close(target)
		if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("setns %s: %w", ns, err)
			return
		}
		fn()
		if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("restore netns: %w", err)
			return
		}
		runtime.UnlockOSThread()
		errc <- nil
	}()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

// open opens a Socket on dev inside ns and closes it at cleanup.
func openIn(t testing.TB, ns string, cfg Config) *Socket {
	t.Helper()
	var s *Socket
	var err error
	inNetns(t, ns, func() { s, err = Open(cfg) })
	if err != nil {
		t.Fatalf("Open(%+v) in %s: %v", cfg, ns, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// rawIn opens a plain AF_PACKET socket on dev inside ns, without any of the
// options Open sets: it sees outgoing frames and sends through the qdisc.
func rawIn(t testing.TB, ns, dev string) int {
	t.Helper()
	fd := -1
	var err error
	inNetns(t, ns, func() {
		var ifi *net.Interface
		if ifi, err = net.InterfaceByName(dev); err != nil {
			return
		}
		if fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL))); err != nil {
			return
		}
		err = unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index})
		if err == nil {
			tv := unix.NsecToTimeval(int64(20 * time.Millisecond))
			err = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
		}
	})
	if err != nil {
		if fd >= 0 {
			unix.Close(fd)
		}
		t.Fatalf("raw socket on %s in %s: %v", dev, ns, err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

// rawCollect reads frames of run tok from a raw socket for d.
func rawCollect(fd int, tok uint64, d time.Duration) [][]byte {
	var got [][]byte
	buf := make([]byte, 65536)
	for deadline := time.Now().Add(d); time.Now().Before(deadline); {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			continue // SO_RCVTIMEO
		}
		if _, ok := parseFrame(buf[:n], tok); ok {
			got = append(got, append([]byte(nil), buf[:n]...))
		}
	}
	return got
}

// rawCollectN reads frames of run tok from a raw socket until it has want
// of them or d has passed.
func rawCollectN(fd int, tok uint64, want int, d time.Duration) [][]byte {
	var got [][]byte
	buf := make([]byte, 65536)
	for deadline := time.Now().Add(d); len(got) < want && time.Now().Before(deadline); {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			continue // SO_RCVTIMEO
		}
		if _, ok := parseFrame(buf[:n], tok); ok {
			got = append(got, append([]byte(nil), buf[:n]...))
		}
	}
	return got
}

// Test frames are IPv4/UDP so that the fanout hash sees flows. They go to a
// MAC address nobody owns, so the receiving kernel stack ignores them. The
// payload carries a magic, a per-run token and a sequence number.

var (
	testDst = net.HardwareAddr{0x02, 0x00, 0x5e, 0x00, 0x00, 0x02}
	testSrc = net.HardwareAddr{0x02, 0x00, 0x5e, 0x00, 0x00, 0x01}
)

const (
	magic       = "PGAFP"
	ethIPUDPLen = 14 + 20 + 8
	minTestLen  = ethIPUDPLen + len(magic) + 8 + 4
)

func newToken() uint64 { return rand.Uint64() }

// testFrame builds a frame of exactly size bytes (size >= minTestLen) for
// flow (UDP source port) and sequence number seq.
func testFrame(tok uint64, flow uint16, seq uint32, size int) []byte {
	f := make([]byte, size)
	copy(f[0:6], testDst)
	copy(f[6:12], testSrc)
	binary.BigEndian.PutUint16(f[12:14], 0x0800)
	ip := f[14:34]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:4], uint16(size-14))
	binary.BigEndian.PutUint16(ip[4:6], uint16(seq))
	ip[6] = 0x40 // DF
	ip[8] = 64
	ip[9] = unix.IPPROTO_UDP
	copy(ip[12:16], []byte{10, 99, byte(flow >> 8), byte(flow)})
	copy(ip[16:20], []byte{10, 98, 0, 1})
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(ip[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(ip[10:12], ^uint16(sum))
	udp := f[34:42]
	binary.BigEndian.PutUint16(udp[0:2], 10000+flow)
	binary.BigEndian.PutUint16(udp[2:4], 9)
	binary.BigEndian.PutUint16(udp[4:6], uint16(size-34))
	p := f[42:]
	copy(p, magic)
	binary.BigEndian.PutUint64(p[5:13], tok)
	binary.BigEndian.PutUint32(p[13:17], seq)
	for i := 17; i < len(p); i++ {
		p[i] = byte(int(seq)*7 + i)
	}
	return f
}

// parseFrame returns the sequence number of a test frame of run tok.
func parseFrame(f []byte, tok uint64) (seq uint32, ok bool) {
	if len(f) < minTestLen || binary.BigEndian.Uint16(f[12:14]) != 0x0800 || f[23] != unix.IPPROTO_UDP {
		return 0, false
	}
	p := f[42:]
	if string(p[:5]) != magic || binary.BigEndian.Uint64(p[5:13]) != tok {
		return 0, false
	}
	return binary.BigEndian.Uint32(p[13:17]), true
}

func flowOf(f []byte) uint16 { return binary.BigEndian.Uint16(f[34:36]) - 10000 }

type rxFrame struct {
	data  []byte
	flags uint32
}

// collect copies frames of run tok out of s, batch at a time, until stop
// reports true (checked after every Recv) or timeout; it then keeps reading
// for grace to catch duplicates or strays. It also counts the Recv calls
// that returned frames.
func collect(t testing.TB, s *Socket, tok uint64, batch int, stop func(got int) bool, timeout, grace time.Duration) (got []rxFrame, calls int) {
	frames := make([][]byte, batch)
	flags := make([]uint32, batch)
	deadline := time.Now().Add(timeout)
	stopped := false
	for {
		now := time.Now()
		if now.After(deadline) {
			return got, calls
		}
		n, err := s.Recv(frames, flags)
		if err != nil {
			t.Errorf("Recv: %v", err)
			return got, calls
		}
		if n > batch {
			t.Errorf("Recv returned %d > len(frames) %d", n, batch)
		}
		if n > 0 {
			calls++
		}
		for i := range n {
			if _, ok := parseFrame(frames[i], tok); ok {
				got = append(got, rxFrame{append([]byte(nil), frames[i]...), flags[i]})
			}
		}
		if !stopped && stop(len(got)) {
			stopped = true
			deadline = time.Now().Add(grace)
		}
	}
}

func atLeast(n int) func(int) bool { return func(got int) bool { return got >= n } }

// TestHostOnly: a socket bound to ETH_P_IP (the router's receiving
// sockets) is handed, by the kernel, an IPv4 frame tagged with a VLAN the
// interface has no device for with its tag stripped, and frames for
// another station's MAC: on a trunk port, traffic of another VLAN would
// be taken for the LAN's own. With HostOnly neither comes through; an
// untagged frame to the socket's MAC and a broadcast one do. The same
// for a socket of every ethertype but IPv4 (ARP, PPPoE) with HostOnly.
func TestHostOnly(t *testing.T) {
	l := newLab(t)
	raw := rawIn(t, l.nsB, devB)
	for _, c := range []struct {
		name  string
		cfg   Config
		etype uint16 // the frames' ethertype (IPv4 with 0)
	}{
		{"ETH_P_IP", Config{Iface: devA, Protocol: unix.ETH_P_IP, PollTimeout: 20 * time.Millisecond}, 0},
		{"ETH_P_IP HostOnly", Config{Iface: devA, Protocol: unix.ETH_P_IP, HostOnly: true, PollTimeout: 20 * time.Millisecond}, 0},
		{"NotIPv4 HostOnly", Config{Iface: devA, NotIPv4: true, HostOnly: true, PollTimeout: 20 * time.Millisecond}, 0x88b5},
		// The router's ARP and PPPoE sockets.
		{"ETH_P_ARP", Config{Iface: devA, Protocol: unix.ETH_P_ARP, PollTimeout: 20 * time.Millisecond}, unix.ETH_P_ARP},
		{"ETH_P_ARP HostOnly", Config{Iface: devA, Protocol: unix.ETH_P_ARP, HostOnly: true, PollTimeout: 20 * time.Millisecond}, unix.ETH_P_ARP},
		{"PPPoE session HostOnly", Config{Iface: devA, Protocol: 0x8864, HostOnly: true, PollTimeout: 20 * time.Millisecond}, 0x8864},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := openIn(t, l.nsA, c.cfg)
			tok := newToken()
			mk := func(seq uint32, dst net.HardwareAddr, vlan uint16) []byte {
				f := testFrame(tok, 1, seq, 100)
				copy(f[0:6], dst)
				if c.etype != 0 {
					// An ethertype of its own, the rest as parseFrame
					// reads it once it is put back.
					binary.BigEndian.PutUint16(f[12:], c.etype)
				}
				if vlan == 0 {
					return f
				}
				return append(append(append([]byte(nil), f[:12]...), 0x81, 0x00, byte(vlan>>8), byte(vlan)), f[12:]...)
			}
			sends := map[uint32]string{1: "untagged to us", 2: "broadcast", 3: "VLAN 5 to us", 4: "untagged to another station", 5: "VLAN 5 to another station"}
			for seq, f := range map[uint32][]byte{
				1: mk(1, s.HardwareAddr(), 0),
				2: mk(2, net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, 0),
				3: mk(3, s.HardwareAddr(), 5),
				4: mk(4, testDst, 0),
				5: mk(5, testDst, 5),
			} {
				if _, err := unix.Write(raw, f); err != nil {
					t.Fatalf("send %s: %v", sends[seq], err)
				}
			}
			var got []string
			frames := make([][]byte, 16)
			for deadline := time.Now().Add(300 * time.Millisecond); time.Now().Before(deadline); {
				n, err := s.Recv(frames, nil)
				if err != nil {
					t.Fatal(err)
				}
				for _, f := range frames[:n] {
					if c.etype != 0 && len(f) > 14 && binary.BigEndian.Uint16(f[12:]) == c.etype {
						f = append([]byte(nil), f...)
						binary.BigEndian.PutUint16(f[12:], 0x0800)
					}
					if seq, ok := parseFrame(f, tok); ok {
						got = append(got, sends[seq])
					}
				}
			}
			want := []string{"untagged to us", "broadcast"}
			if !c.cfg.HostOnly {
				// What the kernel hands a socket bound to an ethertype.
				want = []string{"untagged to us", "broadcast", "VLAN 5 to us", "untagged to another station", "VLAN 5 to another station"}
			}
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("received %q, want %q", got, want)
			}
		})
	}
}
