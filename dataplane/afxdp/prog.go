package afxdp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"passgate/dataplane/offload"
)

// ProgramName is the name the XDP program is loaded with (bpftool prog
// shows it).
const ProgramName = "passgate_xsk"

// Steered lists the ethertypes the program sends to the sockets; the
// rest goes to the kernel.
var Steered = []uint16{0x0800, 0x8863, 0x8864}

// xdp_md field offsets.
const (
	mdData       = 0
	mdDataEnd    = 4
	mdRxQueueIdx = 16
)

// instructions builds the XDP program. For each frame:
//
//	ethertype not in Steered         -> XDP_PASS (IPv6, ARP, VLAN, ...)
//	IPv4 TCP or UDP to one of pass   -> XDP_PASS (the admin server's and
//	                                    the port mapping servers' sockets)
//	otherwise                        -> bpf_redirect_map(xsks, rx_queue_index, XDP_PASS)
//
// so a queue without a socket passes its frames to the kernel rather than
// dropping them. ARP stays with the kernel, which needs it for its own
// sockets (the admin server); the router reads ARP through an AF_PACKET
// tap instead.
func instructions(xsks *ebpf.Map, pass []Pass) asm.Instructions {
	insns := asm.Instructions{
		// r2 = data, r3 = data_end; need the 14-byte Ethernet header.
		asm.LoadMem(asm.R2, asm.R1, mdData, asm.Word),
		asm.LoadMem(asm.R3, asm.R1, mdDataEnd, asm.Word),
		asm.Mov.Reg(asm.R4, asm.R2),
		asm.Add.Imm(asm.R4, ethHeaderLen),
		asm.JGT.Reg(asm.R4, asm.R3, "pass"),
		// r5 = the ethertype as it sits in memory (big endian, loaded
		// little endian): compare with the byte-swapped constants.
		asm.LoadMem(asm.R5, asm.R2, 12, asm.Half),
	}
	for _, et := range Steered[1:] {
		insns = append(insns, asm.JEq.Imm(asm.R5, int32(swap16(et)), "redirect"))
	}
	insns = append(insns, asm.JNE.Imm(asm.R5, int32(swap16(Steered[0])), "pass"))
	if len(pass) > 0 {
		insns = append(insns,
			// Fixed IPv4 header fields: need 20 bytes.
			asm.Mov.Reg(asm.R4, asm.R2),
			asm.Add.Imm(asm.R4, ethHeaderLen+20),
			asm.JGT.Reg(asm.R4, asm.R3, "redirect"),
			asm.LoadMem(asm.R9, asm.R2, ethHeaderLen+9, asm.Byte),
			// r7 = header length in bytes; r4 = the TCP header.
			asm.LoadMem(asm.R7, asm.R2, ethHeaderLen, asm.Byte),
			asm.And.Imm(asm.R7, 0x0f),
			asm.LSh.Imm(asm.R7, 2),
			asm.Mov.Reg(asm.R4, asm.R2),
			asm.Add.Imm(asm.R4, ethHeaderLen),
			asm.Add.Reg(asm.R4, asm.R7),
			asm.Mov.Reg(asm.R8, asm.R4),
			asm.Add.Imm(asm.R8, 4),
			asm.JGT.Reg(asm.R8, asm.R3, "redirect"),
			asm.LoadMem(asm.R6, asm.R2, ethHeaderLen+16, asm.Word), // daddr
			asm.LoadMem(asm.R8, asm.R4, 2, asm.Half),               // dport (TCP and UDP alike)
		)
		for i, p := range pass {
			next := fmt.Sprintf("next%d", i)
			a := p.Dst.Addr().As4()
			ap := p.Dst
			insns = append(insns,
				asm.JNE.Imm(asm.R9, int32(p.Proto), next),
				asm.JNE.Imm32(asm.R6, int32(binary.NativeEndian.Uint32(a[:])), next),
				asm.JEq.Imm(asm.R8, int32(swap16(ap.Port())), "pass"),
				asm.Mov.Imm(asm.R0, 0).WithSymbol(next), // a no-op to carry the label
			)
		}
	}
	insns = append(insns,
		asm.LoadMem(asm.R2, asm.R1, mdRxQueueIdx, asm.Word).WithSymbol("redirect"),
		asm.LoadMapPtr(asm.R1, xsks.FD()),
		asm.Mov.Imm(asm.R3, 2), // XDP_PASS when the queue has no socket
		asm.FnRedirectMap.Call(),
		asm.Return(),
		asm.Mov.Imm(asm.R0, 2).WithSymbol("pass"), // XDP_PASS
		asm.Return(),
	)
	return insns
}

func swap16(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}

// Pass is a destination the program leaves to the kernel's sockets.
type Pass struct {
	Proto uint8 // unix.IPPROTO_TCP or unix.IPPROTO_UDP
	Dst   netip.AddrPort
}

// Program is the XDP program attached to one interface, with its socket
// map (an XSKMAP indexed by receive queue).
type Program struct {
	iface string
	xsks  *ebpf.Map
	flows *ebpf.Map // the offload map, not ours to close; nil without offload
	ids   *ebpf.Map // the offload's IP ID map, likewise
	prog  *ebpf.Program
	link  link.Link
	// Mode is "native" or "generic".
	Mode string
}

// instructions is the program: with offload, its head (which hands the
// frames it does not forward to offload.Label) before the steering.
func (p *Program) instructions(pass []Pass) asm.Instructions {
	if p.flows == nil {
		return instructions(p.xsks, pass)
	}
	return append(offload.Instructions(p.flows, p.ids), instructions(p.xsks, pass)...)
}

// ErrBusy is wrapped by Attach when the interface already has an XDP
// program that is not passgate's own bpf_link.
var ErrBusy = errors.New("the interface already has an XDP program")

// Attach loads the program for an interface with queues receive queues and
// attaches it through a bpf_link, in native mode where the driver has XDP
// support and generic mode otherwise (or only generic, if generic is set).
// A bpf_link belongs to the process: when passgate exits, even by SIGKILL,
// the kernel detaches the program with the last descriptor, so no stale
// program is left behind. pass are destinations the program leaves to the
// kernel.
//
// flows, if not nil, is the offload flow map (dataplane/offload), and
// ids its IP ID map (offload.NewIDMap): the program then forwards the
// frames of the flows in it itself, and steers only the rest.
func Attach(iface string, ifindex, queues int, pass []Pass, generic bool, flows, ids *ebpf.Map) (*Program, error) {
	p, err := attach(iface, ifindex, queues, pass, generic, flows, ids)
	if err != nil {
		return nil, fmt.Errorf("afxdp: XDP program on %s: %w", iface, err)
	}
	return p, nil
}

func attach(iface string, ifindex, queues int, pass []Pass, generic bool, flows, ids *ebpf.Map) (_ *Program, err error) {
	p := &Program{iface: iface, flows: flows, ids: ids}
	defer func() {
		if err != nil {
			p.Close()
		}
	}()
	p.xsks, err = ebpf.NewMap(&ebpf.MapSpec{Name: "passgate_xsks", Type: ebpf.XSKMap, KeySize: 4, ValueSize: 4, MaxEntries: uint32(max(queues, 1))})
	if err != nil {
		return nil, fmt.Errorf("XSKMAP: %w", err)
	}
	if p.prog, err = p.load(pass); err != nil {
		return nil, err
	}
	modes := []link.XDPAttachFlags{link.XDPDriverMode, link.XDPGenericMode}
	if generic {
		modes = modes[1:]
	}
	for _, m := range modes {
		p.link, err = link.AttachXDP(link.XDPOptions{Program: p.prog, Interface: ifindex, Flags: m})
		if err == nil {
			p.Mode = map[link.XDPAttachFlags]string{link.XDPDriverMode: "native", link.XDPGenericMode: "generic"}[m]
			return p, nil
		}
		if errors.Is(err, unix.EBUSY) || errors.Is(err, unix.EEXIST) {
			return nil, fmt.Errorf("%w: %w", ErrBusy, err)
		}
	}
	return nil, fmt.Errorf("attach: %w", err)
}

func (p *Program) load(pass []Pass) (*ebpf.Program, error) {
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name: ProgramName, Type: ebpf.XDP, License: "GPL",
		Instructions: p.instructions(pass),
	})
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	return prog, nil
}

// SetPass replaces the program with one that leaves pass to the kernel,
// atomically (the socket map stays).
func (p *Program) SetPass(pass []Pass) error {
	prog, err := p.load(pass)
	if err != nil {
		return fmt.Errorf("afxdp: %s: %w", p.iface, err)
	}
	if err := p.link.Update(prog); err != nil {
		prog.Close()
		return fmt.Errorf("afxdp: %s: replace program: %w", p.iface, err)
	}
	p.prog.Close()
	p.prog = prog
	return nil
}

// Register steers queue's frames to s.
func (p *Program) Register(queue int, s *Socket) error {
	if err := p.xsks.Put(uint32(queue), uint32(s.FD())); err != nil {
		return fmt.Errorf("afxdp: %s: socket for queue %d: %w", p.iface, queue, err)
	}
	return nil
}

// Close detaches the program and frees it and its map.
func (p *Program) Close() error {
	var errs []error
	if p.link != nil {
		errs = append(errs, p.link.Close())
		p.link = nil
	}
	if p.prog != nil {
		errs = append(errs, p.prog.Close())
		p.prog = nil
	}
	if p.xsks != nil {
		errs = append(errs, p.xsks.Close())
		p.xsks = nil
	}
	return errors.Join(errs...)
}
