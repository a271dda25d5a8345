package offload

import (
	"encoding/binary"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"

	"passgate/nat"
)

// Label is where Instructions jumps when a frame is not offloaded, with
// R1 the program's context again: the instructions that follow it (the
// socket steering) handle the frame as without offload.
const Label = "offload_miss"

// Context field offsets: xdp_md's and __sk_buff's (include/uapi/linux/bpf.h).
const (
	mdData           = 0
	mdDataEnd        = 4
	mdIngressIfindex = 12

	skbLen         = 0
	skbPktType     = 4
	skbMark        = 8
	skbProtocol    = 16
	skbVLANPresent = 20
	skbIfindex     = 40
	skbData        = 76
	skbDataEnd     = 80
)

// Flags of the kernel's checksum helpers.
const (
	fPseudoHdr    = 0x10 // BPF_F_PSEUDO_HDR
	fMarkMangled0 = 0x20 // BPF_F_MARK_MANGLED_0
	tcActOK       = 0    // TC_ACT_OK
	tcActRedirect = 7    // TC_ACT_REDIRECT, what bpf_redirect returns
)

// Instructions is the head of the XDP program with offload: it expects
// the context in R1, looks frames Match takes up in flows (a hash map of
// Key to Value) and on a hit rewrites them as Apply does, a new IP ID
// from ids (NewIDMap's map) to a datagram with DF clear whose source it
// rewrites, counts them in the entry and returns bpf_redirect to the
// entry's ifindex. Everything else goes on at Label, which the caller's
// instructions must define.
func Instructions(flows, ids *ebpf.Map) asm.Instructions {
	return instructions(flows, ids, false)
}

// TCInstructions is the head of the tc (sched_cls) program with offload,
// for skbs at ingress: the same lookup and rewrite, but the checksums are
// updated by the kernel's helpers (bpf_l3_csum_replace and
// bpf_l4_csum_replace, the addresses' part as a pseudo-header change), so
// a checksum left partial (CHECKSUM_PARTIAL) and skb->csum of a
// CHECKSUM_COMPLETE skb come out right too; the size checked against the
// way out is skb->len, so GRO'd skbs larger than it go to passgate; VLAN
// tagged skbs (an accelerated tag) are not looked up; headers outside
// the skb's linear part are pulled in (bpf_skb_pull_data). A hit returns
// bpf_redirect's TC_ACT_REDIRECT (out through the device's transmit, as
// the kernel's own forwarding); everything else goes on at Label with R1
// the context.
func TCInstructions(flows, ids *ebpf.Map) asm.Instructions {
	return instructions(flows, ids, true)
}

func instructions(flows, ids *ebpf.Map, tc bool) asm.Instructions {
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
	// doff of the value (R0), and by the register add if there is one:
	// ~(~field + delta + add), folded twice.
	csum := func(off int16, doff int16, udp bool, done string, add ...asm.Register) asm.Instructions {
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
		for _, r := range add {
			is = append(is, asm.Add.Reg(asm.R2, r))
		}
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
	var is asm.Instructions
	if tc {
		is = asm.Instructions{
			asm.Mov.Reg(ctx, asm.R1),
			asm.LoadMem(asm.R5, ctx, skbVLANPresent, asm.Word),
			asm.JNE.Imm(asm.R5, 0, Label),
			asm.LoadMem(data, ctx, skbData, asm.Word),
			asm.LoadMem(end, ctx, skbDataEnd, asm.Word),
			// The headers may not all be in the skb's linear part (a
			// packet socket's TX ring, a driver's header split sends the
			// rest as page fragments): pull what the program reads, the
			// Ethernet, IPv4 and TCP headers, or the whole skb if it is
			// shorter, and load the pointers again.
			asm.Mov.Reg(asm.R4, data),
			asm.Add.Imm(asm.R4, l4+20),
			asm.JLE.Reg(asm.R4, end, "offload_linear"),
			asm.LoadMem(asm.R2, ctx, skbLen, asm.Word),
			asm.JLE.Imm(asm.R2, l4+20, "offload_pull"),
			asm.Mov.Imm(asm.R2, l4+20),
			asm.Mov.Reg(asm.R1, ctx).WithSymbol("offload_pull"),
			asm.FnSkbPullData.Call(),
			asm.LoadMem(data, ctx, skbData, asm.Word),
			asm.LoadMem(end, ctx, skbDataEnd, asm.Word),
			asm.Mov.Reg(asm.R1, ctx).WithSymbol("offload_linear"),
		}
	} else {
		is = asm.Instructions{
			asm.Mov.Reg(ctx, asm.R1),
			asm.LoadMem(data, ctx, mdData, asm.Word),
			asm.LoadMem(end, ctx, mdDataEnd, asm.Word),
		}
	}
	is = append(is, asm.Instructions{
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
	}...)
	// A header the engine drops as malformed: its checksum wrong (the
	// sum of its words, in either byte order, folds to 0xffff), or a
	// total length past the frame.
	is = append(is, asm.LoadMem(asm.R2, data, ip, asm.Half))
	for o := int16(2); o < 20; o += 2 {
		is = append(is, asm.LoadMem(asm.R3, data, ip+o, asm.Half), asm.Add.Reg(asm.R2, asm.R3))
	}
	is = append(is, fold...)
	is = append(is, asm.JNE.Imm(asm.R2, 0xffff, Label))
	is = append(is, asm.LoadMem(asm.R2, data, ip+2, asm.Half), asm.HostTo(asm.BE, asm.R2, asm.Half), asm.Add.Imm(asm.R2, e))
	if tc {
		is = append(is, asm.LoadMem(asm.R3, ctx, skbLen, asm.Word))
	} else {
		is = append(is, asm.Mov.Reg(asm.R3, end), asm.Sub.Reg(asm.R3, data))
	}
	is = append(is, asm.JGT.Reg(asm.R2, asm.R3, Label))
	is = append(is, asm.Instructions{
		asm.LoadMem(proto, data, ip+9, asm.Byte),
		asm.JEq.Imm(proto, 17, "offload_partial"),
		asm.JNE.Imm(proto, 6, Label),
		asm.Mov.Reg(asm.R4, data),
		asm.Add.Imm(asm.R4, l4+20),
		asm.JGT.Reg(asm.R4, end, Label),
		// ACK, with at most PSH, URG, ECE, CWR and AE besides
		// (PlainACK): a segment without ACK, or with SYN, FIN, RST or a
		// reserved bit, is the engine's.
		asm.LoadMem(asm.R5, data, l4+13, asm.Byte),
		asm.And.Imm(asm.R5, 0x17), // FIN, SYN, RST, ACK
		asm.JNE.Imm(asm.R5, 0x10, Label),
		asm.LoadMem(asm.R5, data, l4+12, asm.Byte),
		asm.And.Imm(asm.R5, 0x0e), // reserved (not AE, 0x01)
		asm.JNE.Imm(asm.R5, 0, Label),
	}...)
	if tc {
		// The helpers handle a checksum left partial: straight to the key.
		is = append(is, asm.Mov.Reg(asm.R1, ctx).WithSymbol("offload_partial")) // UDP's way in: a no-op
		is = append(is, key(ctx, data, proto, skbIfindex, flows)...)
		return append(is, tcRewrite(ctx, data, proto, ids)...)
	}
	is = append(is, asm.Instructions{
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
	}...)
	is = append(is, fold...)
	is = append(is,
		asm.LoadMem(asm.R3, data, l4+6, asm.Half),
		asm.JEq.Imm(proto, 17, "offload_partial_cmp"),
		asm.LoadMem(asm.R3, data, l4+16, asm.Half),
		asm.JEq.Imm(asm.R3, 0, "offload_key").WithSymbol("offload_partial_cmp"), // UDP without checksum
		asm.JEq.Reg(asm.R3, asm.R2, Label),
	)
	is = append(is, key(ctx, data, proto, mdIngressIfindex, flows)...)
	is = append(is, forUs(data, asm.R0)...)
	is = append(is,
		// Too large for the way out: the engine fragments or answers.
		asm.Mov.Reg(asm.R4, end),
		asm.Sub.Reg(asm.R4, data),
		asm.LoadMem(asm.R5, asm.R0, vMaxFrame, asm.Word),
		asm.JGT.Reg(asm.R4, asm.R5, Label),
	)
	is = append(is, recordSeq(data, asm.R0, proto)...)
	is = append(is, newID(data, asm.R0, proto, asm.R1, ids)...)
	is = append(is, rewrite(data, asm.R0)...)
	is = append(is, csum(ip+10, vIPDelta, false, "", asm.R1)...)
	is = append(is, asm.JEq.Imm(proto, 17, "offload_udp"))
	is = append(is, csum(l4+16, vL4Delta, false, "")...)
	is = append(is, asm.Ja.Label("offload_mac"))
	udp := csum(l4+6, vL4Delta, true, "offload_mac")
	udp[0] = udp[0].WithSymbol("offload_udp")
	is = append(is, udp...)
	is = append(is,
		asm.Mov.Imm(asm.R5, 1).WithSymbol("offload_mac"),
		xadd(asm.R0, vPackets),
		asm.Mov.Reg(asm.R5, end),
		asm.Sub.Reg(asm.R5, data),
		asm.Sub.Imm(asm.R5, e),
		xadd(asm.R0, vBytes),
		asm.LoadMem(asm.R1, asm.R0, vIfindex, asm.Word),
		asm.Mov.Imm(asm.R2, 0),
		asm.FnRedirect.Call(),
		asm.Return(),
		asm.Mov.Reg(asm.R1, ctx).WithSymbol(Label),
	)
	return is
}

// recordSeq stores in the entry at val, for a TCP segment (proto 6) at
// data whose acknowledgement the entry's AckSpan lets it learn from and
// that ends at most twice the span ahead of the edge or the span behind
// it, its acknowledgement and window and, if it moves the edge forward,
// where it ends, in native order (as Record does). R2-R5 are scratch. The headers must be
// in bounds: the TCP path checked 20 bytes of them.
func recordSeq(data, val, proto asm.Register) asm.Instructions {
	const (
		ip = 14
		l4 = ip + 20
	)
	return asm.Instructions{
		asm.JNE.Imm(proto, 6, "offload_seq_done"),
		// Learnt from only if the acknowledgement is near the last:
		// (ack - last + span) mod 2^32 <= 2 span, as ackNear.
		asm.LoadMem(asm.R5, val, vAckSpan, asm.Word),
		asm.JEq.Imm(asm.R5, 0, "offload_seq_learn"),
		asm.LoadMem(asm.R4, data, l4+8, asm.Word),
		asm.HostTo(asm.BE, asm.R4, asm.Word),
		asm.LoadMem(asm.R3, val, vSeqAck, asm.Word),
		asm.Sub.Reg32(asm.R4, asm.R3),
		asm.Add.Reg32(asm.R4, asm.R5),
		asm.LSh.Imm32(asm.R5, 1),
		asm.JGT.Reg32(asm.R4, asm.R5, "offload_seq_done"),
		asm.LoadMem(asm.R2, data, ip+2, asm.Half).WithSymbol("offload_seq_learn"), // total length
		asm.HostTo(asm.BE, asm.R2, asm.Half),
		asm.Sub.Imm(asm.R2, 20),
		asm.LoadMem(asm.R3, data, l4+12, asm.Byte), // data offset
		asm.RSh.Imm(asm.R3, 4),
		asm.LSh.Imm(asm.R3, 2),
		asm.Sub.Reg(asm.R2, asm.R3),
		asm.LoadMem(asm.R4, data, l4+4, asm.Word),
		asm.HostTo(asm.BE, asm.R4, asm.Word),
		asm.Add.Reg(asm.R4, asm.R2),
		// With a span, the edge moves only forward and by at most twice
		// it (as the engine's, by at most twice the peer's window):
		// (end - next - 1) mod 2^32 < 2 span. A segment that does not
		// move it teaches nothing either unless it ends at most the span
		// behind it, (next - end) mod 2^32 <= span: an ACK guessed with
		// the sequence number anywhere set the acknowledgement an RST is
		// exact at (as the engine's seqNear).
		asm.LoadMem(asm.R5, val, vAckSpan, asm.Word),
		asm.JEq.Imm(asm.R5, 0, "offload_seq_next"),
		asm.Mov.Reg(asm.R2, asm.R4),
		asm.LoadMem(asm.R3, val, vSeqNext, asm.Word),
		asm.Sub.Reg32(asm.R2, asm.R3),
		asm.Mov.Reg(asm.R3, asm.R2),
		asm.Sub.Imm32(asm.R3, 1),
		asm.LSh.Imm32(asm.R5, 1),
		asm.JLT.Reg32(asm.R3, asm.R5, "offload_seq_next"),
		asm.Mov.Imm32(asm.R3, 0),
		asm.Sub.Reg32(asm.R3, asm.R2),
		asm.RSh.Imm32(asm.R5, 1),
		asm.JGT.Reg32(asm.R3, asm.R5, "offload_seq_done"),
		asm.Ja.Label("offload_seq_ack"),
		asm.StoreMem(val, vSeqNext, asm.R4, asm.Word).WithSymbol("offload_seq_next"),
		asm.LoadMem(asm.R4, data, l4+8, asm.Word).WithSymbol("offload_seq_ack"),
		asm.HostTo(asm.BE, asm.R4, asm.Word),
		asm.StoreMem(val, vSeqAck, asm.R4, asm.Word),
		asm.LoadMem(asm.R4, data, l4+14, asm.Half),
		asm.HostTo(asm.BE, asm.R4, asm.Half),
		asm.StoreMem(val, vSeqWin, asm.R4, asm.Word),
		asm.Mov.Reg(data, data).WithSymbol("offload_seq_done"),
	}
}

// newID gives the frame at data, if it is a datagram with DF clear
// (fragments went before) whose source the entry at val rewrites, a new
// IP ID as the engine does (RFC 7857 section 10, nat/ipid.go): from the
// counter of ids's value (IDs) that nat.IPIDBucket picks for the entry's
// new destination and proto, by an atomic fetch-add of 1, the ID the
// low 16 bits of the sum. It leaves in add what the IPv4 header checksum
// must add for the change (~old + new, words in memory order; 0 without
// one). Before the rewrite, which overwrites the source; R2-R5 are
// scratch, and the IPv4 header must be in bounds.
func newID(data, val, proto, add asm.Register, ids *ebpf.Map) asm.Instructions {
	const ip = 14
	mul := uint64(nat.IPIDHashMul)
	return asm.Instructions{
		asm.Mov.Imm(add, 0),
		asm.LoadMem(asm.R2, data, ip+6, asm.Byte),
		asm.And.Imm(asm.R2, 0x40),
		asm.JNE.Imm(asm.R2, 0, "offload_id_done"), // DF: atomic, keeps its ID
		asm.LoadMem(asm.R2, data, ip+12, asm.Word),
		asm.LoadMem(asm.R3, val, vSrc, asm.Word),
		asm.JEq.Reg(asm.R2, asm.R3, "offload_id_done"), // source kept
		// The bucket: ((dst<<8 | proto) ^ key) * mul >> 54, dst the new
		// destination as a big-endian integer.
		asm.LoadMapValue(asm.R5, ids.FD(), 0),
		asm.LoadMem(asm.R2, asm.R5, idsKey, asm.DWord),
		asm.LoadMem(asm.R3, val, vDst, asm.Word),
		asm.HostTo(asm.BE, asm.R3, asm.Word),
		asm.LSh.Imm(asm.R3, 8),
		asm.Or.Reg(asm.R3, proto),
		asm.Xor.Reg(asm.R3, asm.R2),
		asm.LoadImm(asm.R2, int64(mul), asm.DWord),
		asm.Mul.Reg(asm.R3, asm.R2),
		asm.RSh.Imm(asm.R3, 64-10),
		asm.LSh.Imm(asm.R3, 2),
		asm.Add.Reg(asm.R5, asm.R3),
		asm.Mov.Imm(asm.R2, 1),
		fetchAdd(asm.R5, asm.R2),
		asm.Add.Imm(asm.R2, 1),
		asm.HostTo(asm.BE, asm.R2, asm.Half), // the low 16 bits, in memory order
		asm.LoadMem(asm.R3, data, ip+4, asm.Half),
		asm.StoreMem(data, ip+4, asm.R2, asm.Half),
		asm.Xor.Imm(asm.R3, 0xffff),
		asm.Add.Reg(asm.R3, asm.R2),
		asm.Mov.Reg(add, asm.R3),
		asm.Mov.Reg(data, data).WithSymbol("offload_id_done"),
	}
}

// fetchAdd adds src to the word at dst atomically and leaves in src what
// the word was (BPF_ATOMIC | BPF_W, imm BPF_ADD | BPF_FETCH). cilium/ebpf
// v0.22's Marshal writes the immediate from Constant, taken before it
// sets the atomic operation's (asm.FetchAdd's fetch bit is lost, the add
// left plain): Constant carries it too.
func fetchAdd(dst, src asm.Register) asm.Instruction {
	in := asm.FetchAdd.Mem(dst, src, asm.Word, 0)
	in.Constant = 0x01 // BPF_ADD | BPF_FETCH
	return in
}

// forUs goes to Label unless the frame at data is addressed to the
// entry's (at val) ingress MAC, as the engine drops frames for another
// station or a group. R4 and R5 are scratch; the Ethernet header must be
// in bounds.
func forUs(data, val asm.Register) asm.Instructions {
	return asm.Instructions{
		asm.LoadMem(asm.R4, data, 0, asm.Word),
		asm.LoadMem(asm.R5, val, vInMAC, asm.Word),
		asm.JNE.Reg(asm.R4, asm.R5, Label),
		asm.LoadMem(asm.R4, data, 4, asm.Half),
		asm.LoadMem(asm.R5, val, vInMAC+4, asm.Half),
		asm.JNE.Reg(asm.R4, asm.R5, Label),
	}
}

// xadd adds R5 to the 64-bit count at off of the value at base, atomically.
func xadd(base asm.Register, off int16) asm.Instruction {
	in := asm.StoreXAdd(base, asm.R5, asm.DWord)
	in.Offset = off
	return in
}

// key builds the Key of the frame at data on the stack, the ingress
// ifindex read from the context at ifindexOff, and looks it up in flows:
// R0 is the entry, and a miss goes to Label.
func key(ctx, data, proto asm.Register, ifindexOff int16, flows *ebpf.Map) asm.Instructions {
	const (
		ip   = 14
		l4   = ip + 20
		keyo = -KeySize
	)
	return asm.Instructions{
		asm.LoadMem(asm.R5, ctx, ifindexOff, asm.Word).WithSymbol("offload_key"),
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
	}
}

// rewrite writes the entry at val into the frame at data: addresses,
// ports, the TTL's decrement and the MACs (not the checksums).
func rewrite(data, val asm.Register) asm.Instructions {
	const (
		ip = 14
		l4 = ip + 20
	)
	return asm.Instructions{
		asm.LoadMem(asm.R5, val, vSrc, asm.Word),
		asm.StoreMem(data, ip+12, asm.R5, asm.Word),
		asm.LoadMem(asm.R5, val, vDst, asm.Word),
		asm.StoreMem(data, ip+16, asm.R5, asm.Word),
		asm.LoadMem(asm.R5, val, vPorts, asm.Word),
		asm.StoreMem(data, l4, asm.R5, asm.Word),
		asm.LoadMem(asm.R5, data, ip+8, asm.Byte),
		asm.Sub.Imm(asm.R5, 1),
		asm.StoreMem(data, ip+8, asm.R5, asm.Byte),
		asm.LoadMem(asm.R5, val, vDstMAC, asm.Word),
		asm.StoreMem(data, 0, asm.R5, asm.Word),
		asm.LoadMem(asm.R5, val, vDstMAC+4, asm.Half),
		asm.StoreMem(data, 4, asm.R5, asm.Half),
		asm.LoadMem(asm.R5, val, vSrcMAC, asm.Half),
		asm.StoreMem(data, 6, asm.R5, asm.Half),
		asm.LoadMem(asm.R5, val, vSrcMAC+2, asm.Word),
		asm.StoreMem(data, 8, asm.R5, asm.Word),
	}
}

// tcRewrite is the tc program's hit, the entry in R0: the size check
// against skb->len, the rewrite, the checksums by the kernel's helpers
// (which leave the packet pointers invalid: nothing reads the packet
// after them), the counts and the redirect.
func tcRewrite(ctx, data, proto asm.Register, ids *ebpf.Map) asm.Instructions {
	const (
		ip = 14
		l4 = ip + 20
	)
	val, off := asm.R9, asm.R8 // callee-saved across the helpers
	is := forUs(data, asm.R0)
	is = append(is, asm.Instructions{
		asm.Mov.Reg(val, asm.R0),
		asm.LoadMem(asm.R4, ctx, skbLen, asm.Word),
		asm.LoadMem(asm.R5, val, vMaxFrame, asm.Word),
		asm.JGT.Reg(asm.R4, asm.R5, Label),
	}...)
	is = append(is, recordSeq(data, val, proto)...)
	is = append(is, newID(data, val, proto, asm.R0, ids)...)
	is = append(is, rewrite(data, val)...)
	is = append(is,
		// The header's delta and the new ID's (R0), one diff.
		asm.Mov.Reg(asm.R1, ctx),
		asm.Mov.Imm(asm.R2, ip+10),
		asm.Mov.Imm(asm.R3, 0),
		asm.LoadMem(asm.R4, val, vIPDelta, asm.Word),
		asm.Add.Reg(asm.R4, asm.R0),
		asm.Mov.Imm(asm.R5, 0), // a diff (from 0)
		asm.FnL3CsumReplace.Call(),

		asm.Mov.Imm(off, l4+16),
		asm.JNE.Imm(proto, 17, "offload_tc_addr"),
		asm.Mov.Imm(off, l4+6),
		// The addresses: a pseudo-header change (applied to a partial
		// checksum and to skb->csum of a complete one); a UDP checksum
		// of 0 (none) stays 0 and a result of 0 is written 0xffff.
		asm.Mov.Reg(asm.R1, ctx).WithSymbol("offload_tc_addr"),
		asm.Mov.Reg(asm.R2, off),
		asm.Mov.Imm(asm.R3, 0),
		asm.LoadMem(asm.R4, val, vAddrDelta, asm.Word),
		asm.Mov.Imm(asm.R5, fPseudoHdr),
		asm.JNE.Imm(proto, 17, "offload_tc_addr_call"),
		asm.Mov.Imm(asm.R5, fPseudoHdr|fMarkMangled0),
		asm.FnL4CsumReplace.Call().WithSymbol("offload_tc_addr_call"),
		// The ports: covered by the checksum's data, not the header.
		asm.Mov.Reg(asm.R1, ctx),
		asm.Mov.Reg(asm.R2, off),
		asm.Mov.Imm(asm.R3, 0),
		asm.LoadMem(asm.R4, val, vPortDelta, asm.Word),
		asm.Mov.Imm(asm.R5, 0),
		asm.JNE.Imm(proto, 17, "offload_tc_port_call"),
		asm.Mov.Imm(asm.R5, fMarkMangled0),
		asm.FnL4CsumReplace.Call().WithSymbol("offload_tc_port_call"),

		asm.Mov.Imm(asm.R5, 1),
		xadd(val, vPackets),
		asm.LoadMem(asm.R5, ctx, skbLen, asm.Word),
		asm.Sub.Imm(asm.R5, ip),
		xadd(val, vBytes),
		asm.LoadMem(asm.R1, val, vIfindex, asm.Word),
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
