package offload

import (
	"encoding/binary"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

// Label is where Instructions jumps when a frame is not offloaded, with
// R1 the program's context again: the instructions that follow it (the
// socket steering) handle the frame as without offload.
const Label = "offload_miss"

// xdp_md field offsets.
const (
	mdData           = 0
	mdDataEnd        = 4
	mdIngressIfindex = 12
)

// Instructions is the head of the XDP program with offload: it expects
// the context in R1, looks frames Match takes up in flows (a hash map of
// Key to Value) and on a hit rewrites them as Apply does, counts them in
// the entry and returns bpf_redirect to the entry's ifindex. Everything
// else goes on at Label, which the caller's instructions must define.
func Instructions(flows *ebpf.Map) asm.Instructions {
	const (
		e    = 14
		ip   = e
		l4   = e + 20
		keyo = -KeySize // the key on the stack
	)
	ctx, data, end, proto := asm.R6, asm.R8, asm.R9, asm.R7
	swap := func(v uint16) int32 {
		var b [2]byte
		binary.BigEndian.PutUint16(b[:], v)
		return int32(binary.NativeEndian.Uint16(b[:]))
	}
	// fold adds the carries above bit 16 of R2 back into it, twice, which
	// leaves any sum of a few 16-bit words in 16 bits (R3 is scratch).
	fold := asm.Instructions{
		asm.Mov.Reg(asm.R3, asm.R2),
		asm.RSh.Imm(asm.R3, 16),
		asm.And.Imm(asm.R2, 0xffff),
		asm.Add.Reg(asm.R2, asm.R3),
		asm.Mov.Reg(asm.R3, asm.R2),
		asm.RSh.Imm(asm.R3, 16),
		asm.And.Imm(asm.R2, 0xffff),
		asm.Add.Reg(asm.R2, asm.R3),
	}
	// csum updates the 16-bit field at off of the packet by the delta at
	// doff of the value (R0): ~(~field + delta), folded twice.
	csum := func(off int16, doff int16, udp bool, done string) asm.Instructions {
		is := asm.Instructions{
			asm.LoadMem(asm.R2, data, off, asm.Half),
		}
		if udp {
			is = append(is, asm.JEq.Imm(asm.R2, 0, done)) // no checksum
		}
		is = append(is,
			asm.Xor.Imm(asm.R2, 0xffff),
			asm.LoadMem(asm.R3, asm.R0, doff, asm.Word),
			asm.Add.Reg(asm.R2, asm.R3),
		)
		is = append(is, fold...)
		is = append(is, asm.Xor.Imm(asm.R2, 0xffff))
		if udp {
			is = append(is,
				asm.JNE.Imm(asm.R2, 0, done+"_put"),
				asm.Mov.Imm(asm.R2, 0xffff),
				asm.StoreMem(data, off, asm.R2, asm.Half).WithSymbol(done+"_put"),
			)
		} else {
			is = append(is, asm.StoreMem(data, off, asm.R2, asm.Half))
		}
		return is
	}
	xadd := func(off int16) asm.Instruction {
		in := asm.StoreXAdd(asm.R0, asm.R5, asm.DWord)
		in.Offset = off
		return in
	}
	is := asm.Instructions{
		asm.Mov.Reg(ctx, asm.R1),
		asm.LoadMem(data, ctx, mdData, asm.Word),
		asm.LoadMem(end, ctx, mdDataEnd, asm.Word),
		// Ethernet, a 20-byte IPv4 header and a UDP header at least.
		asm.Mov.Reg(asm.R4, data),
		asm.Add.Imm(asm.R4, l4+8),
		asm.JGT.Reg(asm.R4, end, Label),
		asm.LoadMem(asm.R5, data, 12, asm.Half),
		asm.JNE.Imm(asm.R5, swap(0x0800), Label),
		asm.LoadMem(asm.R5, data, ip, asm.Byte),
		asm.JNE.Imm(asm.R5, 0x45, Label), // options
		asm.LoadMem(asm.R5, data, ip+6, asm.Half),
		asm.And.Imm(asm.R5, swap(0x3fff)),
		asm.JNE.Imm(asm.R5, 0, Label), // a fragment
		asm.LoadMem(asm.R5, data, ip+8, asm.Byte),
		asm.JLE.Imm(asm.R5, 1, Label), // TTL: the engine answers
		asm.LoadMem(proto, data, ip+9, asm.Byte),
		asm.JEq.Imm(proto, 17, "offload_partial"),
		asm.JNE.Imm(proto, 6, Label),
		asm.Mov.Reg(asm.R4, data),
		asm.Add.Imm(asm.R4, l4+20),
		asm.JGT.Reg(asm.R4, end, Label),
		asm.LoadMem(asm.R5, data, l4+13, asm.Byte),
		asm.And.Imm(asm.R5, 0x07), // FIN, SYN, RST: the engine's
		asm.JNE.Imm(asm.R5, 0, Label),

		// A transport checksum left partial (the pseudo-header sum, by
		// a sender on this host relying on checksum offload) goes to
		// the engine, which completes it: the sum in memory order.
		asm.LoadMem(asm.R2, data, ip+12, asm.Half).WithSymbol("offload_partial"),
		asm.LoadMem(asm.R3, data, ip+14, asm.Half),
		asm.Add.Reg(asm.R2, asm.R3),
		asm.LoadMem(asm.R3, data, ip+16, asm.Half),
		asm.Add.Reg(asm.R2, asm.R3),
		asm.LoadMem(asm.R3, data, ip+18, asm.Half),
		asm.Add.Reg(asm.R2, asm.R3),
		asm.Mov.Reg(asm.R3, proto),
		asm.LSh.Imm(asm.R3, 8),
		asm.Add.Reg(asm.R2, asm.R3),
		asm.LoadMem(asm.R3, data, ip+2, asm.Byte), // total length - 20, swapped
		asm.LSh.Imm(asm.R3, 8),
		asm.LoadMem(asm.R4, data, ip+3, asm.Byte),
		asm.Or.Reg(asm.R3, asm.R4),
		asm.Sub.Imm(asm.R3, 20),
		asm.And.Imm(asm.R3, 0xffff),
		asm.Mov.Reg(asm.R4, asm.R3),
		asm.RSh.Imm(asm.R4, 8),
		asm.And.Imm(asm.R3, 0xff),
		asm.LSh.Imm(asm.R3, 8),
		asm.Or.Reg(asm.R3, asm.R4),
		asm.Add.Reg(asm.R2, asm.R3),
	}
	is = append(is, fold...)
	is = append(is,
		asm.LoadMem(asm.R3, data, l4+6, asm.Half),
		asm.JEq.Imm(proto, 17, "offload_partial_cmp"),
		asm.LoadMem(asm.R3, data, l4+16, asm.Half),
		asm.JEq.Imm(asm.R3, 0, "offload_key").WithSymbol("offload_partial_cmp"), // UDP without checksum
		asm.JEq.Reg(asm.R3, asm.R2, Label),

		asm.LoadMem(asm.R5, ctx, mdIngressIfindex, asm.Word).WithSymbol("offload_key"),
		asm.StoreMem(asm.RFP, keyo, asm.R5, asm.Word),
		asm.LoadMem(asm.R5, data, ip+12, asm.Word),
		asm.StoreMem(asm.RFP, keyo+4, asm.R5, asm.Word),
		asm.LoadMem(asm.R5, data, ip+16, asm.Word),
		asm.StoreMem(asm.RFP, keyo+8, asm.R5, asm.Word),
		asm.LoadMem(asm.R5, data, l4, asm.Word),
		asm.StoreMem(asm.RFP, keyo+12, asm.R5, asm.Word),
		asm.StoreMem(asm.RFP, keyo+16, proto, asm.Word),
		asm.LoadMapPtr(asm.R1, flows.FD()),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, keyo),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, Label),

		// Too large for the way out: the engine fragments or answers.
		asm.Mov.Reg(asm.R4, end),
		asm.Sub.Reg(asm.R4, data),
		asm.LoadMem(asm.R5, asm.R0, vMaxFrame, asm.Word),
		asm.JGT.Reg(asm.R4, asm.R5, Label),

		asm.LoadMem(asm.R5, asm.R0, vSrc, asm.Word),
		asm.StoreMem(data, ip+12, asm.R5, asm.Word),
		asm.LoadMem(asm.R5, asm.R0, vDst, asm.Word),
		asm.StoreMem(data, ip+16, asm.R5, asm.Word),
		asm.LoadMem(asm.R5, asm.R0, vPorts, asm.Word),
		asm.StoreMem(data, l4, asm.R5, asm.Word),
		asm.LoadMem(asm.R5, data, ip+8, asm.Byte),
		asm.Sub.Imm(asm.R5, 1),
		asm.StoreMem(data, ip+8, asm.R5, asm.Byte),
	)
	is = append(is, csum(ip+10, vIPDelta, false, "")...)
	is = append(is, asm.JEq.Imm(proto, 17, "offload_udp"))
	is = append(is, csum(l4+16, vL4Delta, false, "")...)
	is = append(is, asm.Ja.Label("offload_mac"))
	udp := csum(l4+6, vL4Delta, true, "offload_mac")
	udp[0] = udp[0].WithSymbol("offload_udp")
	is = append(is, udp...)
	is = append(is,
		asm.LoadMem(asm.R5, asm.R0, vDstMAC, asm.Word).WithSymbol("offload_mac"),
		asm.StoreMem(data, 0, asm.R5, asm.Word),
		asm.LoadMem(asm.R5, asm.R0, vDstMAC+4, asm.Half),
		asm.StoreMem(data, 4, asm.R5, asm.Half),
		asm.LoadMem(asm.R5, asm.R0, vSrcMAC, asm.Half),
		asm.StoreMem(data, 6, asm.R5, asm.Half),
		asm.LoadMem(asm.R5, asm.R0, vSrcMAC+2, asm.Word),
		asm.StoreMem(data, 8, asm.R5, asm.Word),
		asm.Mov.Imm(asm.R5, 1),
		xadd(vPackets),
		asm.Mov.Reg(asm.R5, end),
		asm.Sub.Reg(asm.R5, data),
		asm.Sub.Imm(asm.R5, e),
		xadd(vBytes),
		asm.LoadMem(asm.R1, asm.R0, vIfindex, asm.Word),
		asm.Mov.Imm(asm.R2, 0),
		asm.FnRedirect.Call(),
		asm.Return(),
		asm.Mov.Reg(asm.R1, ctx).WithSymbol(Label),
	)
	return is
}

// NewMap makes the flow map, with room for max entries (one per direction
// of an offloaded flow).
func NewMap(max int) (*ebpf.Map, error) {
	m, err := ebpf.NewMap(&ebpf.MapSpec{Name: "passgate_flows", Type: ebpf.Hash,
		KeySize: KeySize, ValueSize: ValueSize, MaxEntries: uint32(max)})
	if err != nil {
		return nil, fmt.Errorf("offload: flow map: %w", err)
	}
	return m, nil
}
