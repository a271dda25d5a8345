//go:build lab

package afpacket

import (
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// TestOtherHostMeasured measures what marking a frame PACKET_OTHERHOST at
// tc ingress does (the idea: have the tc offload program so mark the IPv4
// frames it misses, so that ip_rcv drops them before the nft fence does).
// A tc program cannot write skb->pkt_type (the verifier refuses the
// store); bpf_skb_change_type can set it. A frame so marked still reaches
// a packet socket bound to ETH_P_IP in non-promiscuous mode, is refused
// by HostOnly's filter (which cannot tell it from another station's), and
// is dropped by ip_rcv (an echo request to the interface's address is not
// answered). So the mark needs HostOnly to accept frames the program
// marked (MarkedHost: by skb->mark as well), and the program to spare the
// frames the kernel must take.
func TestOtherHostMeasured(t *testing.T) {
	l := newLab(t)
	const pktTypeOff = 4 // __sk_buff.pkt_type
	direct := &ebpf.ProgramSpec{Type: ebpf.SchedCLS, License: "GPL", Instructions: asm.Instructions{
		asm.Mov.Imm(asm.R2, unix.PACKET_OTHERHOST),
		asm.StoreMem(asm.R1, pktTypeOff, asm.R2, asm.Word),
		asm.Mov.Imm(asm.R0, 0),
		asm.Return(),
	}}
	if p, err := ebpf.NewProgram(direct); err == nil {
		p.Close()
		t.Errorf("the verifier took a store to skb->pkt_type")
	} else {
		t.Logf("a store to skb->pkt_type: %v", strings.SplitN(err.Error(), "\n", 2)[0])
	}
	const mark = 0x70677463
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.SchedCLS, License: "GPL", Instructions: asm.Instructions{
		asm.Mov.Imm32(asm.R2, mark),
		asm.StoreMem(asm.R1, 8, asm.R2, asm.Word), // skb->mark
		asm.Mov.Imm(asm.R2, unix.PACKET_OTHERHOST),
		asm.FnSkbChangeType.Call(),
		asm.Mov.Imm(asm.R0, 0), // TC_ACT_OK
		asm.Return(),
	}})
	if err != nil {
		t.Fatalf("bpf_skb_change_type: %v", err)
	}
	defer prog.Close()
	run(t, "ip", "-n", l.nsA, "addr", "add", "10.97.0.1/24", "dev", devA)
	run(t, "ip", "-n", l.nsB, "addr", "add", "10.97.0.2/24", "dev", devB)
	ping := func() bool {
		return exec.Command("ip", "netns", "exec", l.nsB, "ping", "-n", "-c", "1", "-W", "1", "10.97.0.1").Run() == nil
	}
	if !ping() {
		t.Fatal("no echo reply without the program")
	}
	var tcx link.Link
	inNetns(t, l.nsA, func() {
		var ifi *unix.Ifreq
		if ifi, err = unix.NewIfreq(devA); err != nil {
			return
		}
		fd, _ := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		defer unix.Close(fd)
		if err = unix.IoctlIfreq(fd, unix.SIOCGIFINDEX, ifi); err != nil {
			return
		}
		tcx, err = link.AttachTCX(link.TCXOptions{Interface: int(ifi.Uint32()), Program: prog, Attach: ebpf.AttachTCXIngress})
	})
	if err != nil {
		t.Fatalf("attach: %v", err)
	}
	defer tcx.Close()
	plain := openIn(t, l.nsA, Config{Iface: devA, Protocol: unix.ETH_P_IP, PollTimeout: 20 * time.Millisecond})
	host := openIn(t, l.nsA, Config{Iface: devA, Protocol: unix.ETH_P_IP, HostOnly: true, PollTimeout: 20 * time.Millisecond})
	marked := openIn(t, l.nsA, Config{Iface: devA, Protocol: unix.ETH_P_IP, HostOnly: true, MarkedHost: mark, PollTimeout: 20 * time.Millisecond})
	raw := rawIn(t, l.nsB, devB)
	tok := newToken()
	const n = 5
	for seq := range uint32(n) {
		f := testFrame(tok, 1, seq, 100)
		copy(f[0:6], plain.HardwareAddr())
		if _, err := unix.Write(raw, f); err != nil {
			t.Fatal(err)
		}
	}
	count := func(s *Socket) int {
		got := 0
		frames := make([][]byte, 16)
		for deadline := time.Now().Add(300 * time.Millisecond); time.Now().Before(deadline); {
			k, err := s.Recv(frames, nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range frames[:k] {
				if _, ok := parseFrame(f, tok); ok {
					got++
				}
			}
		}
		return got
	}
	gotPlain, gotHost, gotMarked := count(plain), count(host), count(marked)
	answered := ping()
	t.Logf("marked PACKET_OTHERHOST at tc ingress, %d frames to the interface's MAC: %d reached a socket bound to ETH_P_IP, %d one with HostOnly, %d one with HostOnly and MarkedHost; echo request answered: %v",
		n, gotPlain, gotHost, gotMarked, answered)
	if gotPlain != n || gotHost != 0 || gotMarked != n || answered {
		t.Errorf("want all %d to the plain socket and MarkedHost's, none to HostOnly's, no echo reply", n)
	}
}
