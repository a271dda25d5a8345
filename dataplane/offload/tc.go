package offload

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// TCProgramName is the tc program's name (bpftool net shows it).
const TCProgramName = "passgate_tc"

// TCProgram is the tc program attached at one interface's ingress
// through tcx: established flows in flows are forwarded there, the rest
// goes on to the stack (and passgate's AF_PACKET sockets, bound to
// ETH_P_IP so that they see frames after tc ingress). Its bpf_link
// belongs to the process: the kernel detaches it when passgate exits,
// even by SIGKILL.
type TCProgram struct {
	prog *ebpf.Program
	link link.Link
}

// MissMark is the skb->mark the tc program gives an IPv4 frame it leaves
// to passgate when it marks it PACKET_OTHERHOST (TCOptions.MarkMissed):
// the AF_PACKET sockets' HostOnly filter takes such a frame
// (afpacket.Config.MarkedHost), as it refuses another host's.
const MissMark = 0x70677463 // "pgtc"

// TCOptions are what the tc program does with the frames it does not
// forward.
type TCOptions struct {
	// MarkMissed has it mark PACKET_OTHERHOST (bpf_skb_change_type; a
	// tc program cannot store to skb->pkt_type) and MissMark the untagged
	// IPv4 frames addressed to this host that it leaves to passgate:
	// passgate's sockets still take them, and the kernel's IP layer drops
	// them at once (ip_rcv) rather than after the nft fence's prerouting
	// hook. Only with the fence: without it the kernel may be meant to
	// take them.
	MarkMissed bool
	// Spare, if not zero, is an address whose frames MarkMissed leaves as
	// they are: the router's LAN address, where the fence lets the
	// router's own services (admin server, port mapping) through to the
	// kernel.
	Spare [4]byte
}

// TCProgramSpec is the whole program: TCInstructions, a miss returning
// TC_ACT_OK, marked as o says.
func TCProgramSpec(flows, ids *ebpf.Map, o TCOptions) *ebpf.ProgramSpec {
	is := TCInstructions(flows, ids)
	if o.MarkMissed {
		ctx := asm.R6 // TCInstructions's, R1 too at Label
		is = append(is,
			asm.LoadMem(asm.R2, ctx, skbPktType, asm.Word),
			asm.JNE.Imm(asm.R2, 0, "tc_pass"), // not PACKET_HOST
			asm.LoadMem(asm.R2, ctx, skbVLANPresent, asm.Word),
			asm.JNE.Imm(asm.R2, 0, "tc_pass"),
			asm.LoadMem(asm.R2, ctx, skbProtocol, asm.Word),
			asm.JNE.Imm(asm.R2, int32(binary.NativeEndian.Uint16([]byte{0x08, 0x00})), "tc_pass"),
		)
		if o.Spare != ([4]byte{}) {
			is = append(is,
				asm.LoadMem(asm.R2, ctx, skbData, asm.Word),
				asm.LoadMem(asm.R3, ctx, skbDataEnd, asm.Word),
				asm.Mov.Reg(asm.R4, asm.R2),
				asm.Add.Imm(asm.R4, 14+20),
				asm.JGT.Reg(asm.R4, asm.R3, "tc_pass"), // too short to tell: the fence's
				asm.LoadMem(asm.R4, asm.R2, 14+16, asm.Word),
				asm.JEq.Imm32(asm.R4, int32(binary.NativeEndian.Uint32(o.Spare[:])), "tc_pass"),
			)
		}
		is = append(is,
			asm.Mov.Imm32(asm.R2, MissMark),
			asm.StoreMem(ctx, skbMark, asm.R2, asm.Word),
			asm.Mov.Reg(asm.R1, ctx),
			asm.Mov.Imm(asm.R2, unix.PACKET_OTHERHOST),
			asm.FnSkbChangeType.Call(),
		)
	}
	is = append(is, asm.Mov.Imm(asm.R0, tcActOK).WithSymbol("tc_pass"), asm.Return())
	return &ebpf.ProgramSpec{Name: TCProgramName, Type: ebpf.SchedCLS, License: "GPL", Instructions: is}
}

// AttachTC loads the program for flows and ids (NewIDMap's map) and
// attaches it at the ingress of the interface ifindex (iface names it in
// errors).
func AttachTC(iface string, ifindex int, flows, ids *ebpf.Map, o TCOptions) (*TCProgram, error) {
	prog, err := ebpf.NewProgram(TCProgramSpec(flows, ids, o))
	if err != nil {
		return nil, fmt.Errorf("offload: tc program for %s: load: %w", iface, err)
	}
	l, err := link.AttachTCX(link.TCXOptions{Interface: ifindex, Program: prog, Attach: ebpf.AttachTCXIngress})
	if err != nil {
		prog.Close()
		return nil, fmt.Errorf("offload: tc program for %s: attach (tcx ingress): %w", iface, err)
	}
	return &TCProgram{prog: prog, link: l}, nil
}

// Close detaches and unloads the program.
func (p *TCProgram) Close() error {
	if p == nil {
		return nil
	}
	return errors.Join(p.link.Close(), p.prog.Close())
}
