package router

import (
	"encoding/binary"
	"errors"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"passgate/dataplane/offload"
	"passgate/nat"
	"passgate/packet"
)

// offloader keeps the XDP flow map (dataplane/offload) in step with the
// engine, from the expiry timer under the engine's write lock: it reads
// back what the program forwarded and credits it to the flows (so a flow
// forwarded in XDP does not expire in passgate), withdraws the entries of
// flows the engine no longer offers (ended, FIN or RST seen, expired), and
// installs those it newly offers once both next hops' MACs are known.
type offloader struct {
	flows *ebpf.Map
	// ids is the IP ID counters the programs share with the engine
	// (nat.Engine.ShareIPIDs).
	ids     *offload.IDMap
	entries map[int32]*offEntry
	// byKey finds an entry's flow and direction from its encoded key, for
	// the batched reads of the counts.
	byKey map[[offload.KeySize]byte]offRef
	kbuf  [][offload.KeySize]byte
	vbuf  [][offload.ValueSize]byte

	// nbGen and mtu are the neighbour tables' generations and the MTUs
	// the entries were last checked against (offloadCurrent).
	nbGen [2]uint64
	mtu   [2]int

	// hops are the next hops the programs forwarded to since the last
	// credit, per way out: the neighbour tables are told (Used), once
	// each.
	hops [2]map[[4]byte]struct{}

	// kscr and vscr are offloadResync's and offloadCreditLast's buffers
	// (under r.mu's write lock).
	kscr [offload.KeySize]byte
	vscr [offload.ValueSize]byte

	live, installed, removed, full, resynced atomic.Uint64
	packets, bytes                           atomic.Uint64 // forwarded in XDP, as credited
	// inPackets and inBytes are the same by the interface they came in
	// on, for the NAT's traffic counters (Router.NATStats).
	inPackets, inBytes [2]atomic.Uint64
	errLog             rateLimit
}

type offEntry struct {
	gen  uint32
	keys [2]offload.Key
	in   [2]nat.Iface // each direction's way in
	// What each direction's value was made of that can change while the
	// flow lives: the way out, its next hop and the MAC it had, the MTU.
	out [2]nat.Iface
	hop [2][4]byte
	mac [2][6]byte
	mtu [2]int
	// The counts already credited, per direction, and those read since.
	packets, bytes [2]uint64
	read           [2]bool
	newP, newB     [2]uint64
}

type offRef struct {
	id  int32
	dir uint8
}

// offBatch is how many entries one BPF_MAP_LOOKUP_BATCH reads (a hash
// map's batch must hold its fullest bucket).
const offBatch = 512

func newOffloader(maxFlows int) (*offloader, error) {
	m, err := offload.NewMap(2 * maxFlows)
	if err != nil {
		return nil, err
	}
	ids, err := offload.NewIDMap()
	if err != nil {
		m.Close()
		return nil, err
	}
	return &offloader{flows: m, ids: ids, entries: map[int32]*offEntry{}, byKey: map[[offload.KeySize]byte]offRef{},
		hops: [2]map[[4]byte]struct{}{{}, {}},
		kbuf: make([][offload.KeySize]byte, offBatch), vbuf: make([][offload.ValueSize]byte, offBatch)}, nil
}

func (o *offloader) close() error {
	if o == nil || o.flows == nil {
		return nil
	}
	err := errors.Join(o.flows.Close(), o.ids.Close())
	o.flows = nil
	return err
}

// offloadCredit reads back what the program forwarded since the last
// time and credits it to the flows, before the engine expires any, and
// tells the neighbour tables which next hops it forwarded to
// (link.Neighbours.Used): the offloaded packets do not go through the
// table, which would otherwise forget a neighbour in use two reachable
// times on, unconfirmed, and have every flow through it withdrawn and
// installed again; in use, it is re-confirmed as passgate's own packets
// have it. Under r.mu's write lock.
func (r *Router) offloadCredit(now nat.Time) {
	o := r.off
	if len(o.entries) == 0 {
		return
	}
	var cur ebpf.MapBatchCursor
	var v offload.Value
	for {
		n, err := o.flows.BatchLookup(&cur, o.kbuf, o.vbuf, nil)
		for i := range n {
			ref, ok := o.byKey[o.kbuf[i]]
			if !ok {
				continue
			}
			en := o.entries[ref.id]
			v.Decode(&o.vbuf[i])
			en.read[ref.dir], en.newP[ref.dir], en.newB[ref.dir] = true, v.Packets, v.Bytes
		}
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			break
		}
		if err != nil {
			r.offloadErr("reading the counts", err)
			break
		}
	}
	for id, en := range o.entries {
		var pk, by [2]uint64
		for d := range en.read {
			if en.read[d] {
				pk[d], by[d] = en.newP[d]-en.packets[d], en.newB[d]-en.bytes[d]
				en.packets[d], en.bytes[d] = en.newP[d], en.newB[d]
				en.read[d] = false
			}
		}
		r.offloadCount(now, id, en, pk, by)
		for d, n := range pk {
			if n != 0 {
				o.hops[en.out[d]][en.hop[d]] = struct{}{}
			}
		}
	}
	for out, hops := range o.hops {
		for hop := range hops {
			r.nb[out].Used(time.Duration(now), hop)
		}
		clear(hops)
	}
}

// offloadCount credits what the program forwarded of en's flow to the
// flow and to the counters.
func (r *Router) offloadCount(now nat.Time, id int32, en *offEntry, pk, by [2]uint64) {
	o := r.off
	for d := range pk {
		o.inPackets[en.in[d]].Add(pk[d])
		o.inBytes[en.in[d]].Add(by[d])
	}
	o.packets.Add(pk[0] + pk[1])
	o.bytes.Add(by[0] + by[1])
	r.eng.OffloadCredit(now, id, en.gen, pk, by)
}

// offloadCreditLast credits what the program forwarded of en since the
// last read, before its entries are deleted: a flow withdrawn between two
// sweeps (its FIN, a sync, a reconfiguration) would otherwise lose up to a
// sweep's worth of its counts, all of a short download's. Under r.mu's
// write lock.
func (r *Router) offloadCreditLast(now nat.Time, id int32, en *offEntry) {
	o := r.off
	var pk, by [2]uint64
	var v offload.Value
	for d, k := range en.keys {
		k.Encode(&o.kscr)
		if err := o.flows.Lookup(o.kscr[:], o.vscr[:]); err != nil {
			if !errors.Is(err, ebpf.ErrKeyNotExist) {
				r.offloadErr("reading a withdrawn flow's counts", err)
			}
			continue
		}
		v.Decode(&o.vscr)
		if v.Packets >= en.packets[d] && v.Bytes >= en.bytes[d] {
			pk[d], by[d] = v.Packets-en.packets[d], v.Bytes-en.bytes[d]
			en.packets[d], en.bytes[d] = v.Packets, v.Bytes
		}
	}
	if pk[0]+pk[1] != 0 {
		r.offloadCount(now, id, en, pk, by)
	}
}

// offloadSync withdraws the entries of flows the engine no longer offers
// and installs those it newly does (offloadInstall). Under r.mu's write
// lock, after the engine expired flows; its work follows the entries
// installed (the 200 ms tick reads all of their counts anyway).
func (r *Router) offloadSync(now nat.Time) {
	o := r.off
	if o == nil {
		return
	}
	// The neighbours and MTUs the entries were made with, checked again
	// only when either may have changed.
	gens := [2]uint64{r.nb[nat.LAN].Gen(), r.nb[nat.WAN].Gen()}
	mtus := [2]int{r.wayMTU(nat.LAN), r.wayMTU(nat.WAN)}
	recheck := gens != o.nbGen || mtus != o.mtu
	o.nbGen, o.mtu = gens, mtus
	for id, en := range o.entries {
		still := r.eng.StillOffloadable(now, id, en.gen)
		if still && (!recheck || r.offloadCurrent(en)) {
			continue
		}
		r.offloadWithdraw(now, id, en)
		if still {
			// Made with a MAC or MTU that no longer holds: installed
			// again once the next hop is resolved afresh.
			r.eng.OffloadAgain(id, en.gen)
		}
	}
	r.offloadInstall(now)
}

// offloadWithdraw deletes flow id's entry en from the map, after
// crediting what the program forwarded of it since the last read
// (offloadCreditLast). Under r.mu's write lock.
func (r *Router) offloadWithdraw(now nat.Time, id int32, en *offEntry) {
	o := r.off
	r.offloadCreditLast(now, id, en)
	if en.keys[0].Proto == packet.ProtoTCP {
		// The engine sees the flow's segments from here on: it takes
		// the edges the program saw, and judges by them, not liberally
		// as while the flow was offloaded, where a blind RST ended a
		// flow withdrawn for a neighbour forgotten or changed
		// (lab/guardlab TestBlindRSTAfterWithdrawal), and the flow went
		// back unseeded (the program then recorded any segment). A flow
		// the engine resynced already (its RST or FIN) is left as it is.
		if seqs, ok := r.offloadSeqs(en); ok {
			r.eng.OffloadResync(id, en.gen, seqs)
		}
	}
	for _, k := range en.keys {
		if err := o.flows.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			r.offloadErr("withdrawing a flow", err)
		}
		var kb [offload.KeySize]byte
		k.Encode(&kb)
		delete(o.byKey, kb)
	}
	delete(o.entries, id)
	o.removed.Add(1)
	o.live.Store(uint64(len(o.entries)))
}

// offloadInstall installs the flows the engine newly offers
// (nat.Engine.OffloadNew: its work follows those flows, not the size of
// the flow table), so a worker's kick may run it every offloadGap. A
// flow whose next hop is not resolved yet, or that finds the map full,
// stays with the engine for the next time. Under r.mu's write lock.
func (r *Router) offloadInstall(now nat.Time) {
	o := r.off
	if o == nil {
		return
	}
	var vb [offload.ValueSize]byte
	full := false
	r.eng.OffloadNew(now, func(f *nat.OffloadFlow) bool {
		if en := o.entries[f.ID]; en != nil && en.gen == f.Gen {
			return true
		}
		if full {
			return false // no room this time: not one more Put each
		}
		en := &offEntry{gen: f.Gen}
		var vals [2]offload.Value
		for d, od := range f.Dir {
			mac, ok := r.nb[od.Out].Lookup(od.NextHop)
			if !ok {
				return false // next time, once the neighbour is resolved
			}
			out := r.ifaces[od.Out]
			en.keys[d] = offload.Key{Ifindex: uint32(r.ifaces[od.In].index), Proto: f.Proto,
				Src: od.Src, Dst: od.Dst, SrcPort: od.SrcPort, DstPort: od.DstPort}
			en.in[d], en.out[d], en.hop[d], en.mac[d], en.mtu[d] = od.In, od.Out, od.NextHop, mac, r.wayMTU(od.Out)
			vals[d] = offload.NewValue(en.keys[d], od.NewSrc, od.NewDst, od.NewSrcPort, od.NewDstPort,
				uint32(out.index), mac, out.mac, r.ifaces[od.In].mac, en.mtu[d])
			if od.Seq.Seen {
				// The engine's edges, and the span a segment's
				// acknowledgement must be in to move them.
				vals[d].SeqNext, vals[d].SeqAck, vals[d].SeqWin, vals[d].AckSpan = od.Seq.Next, od.Seq.Ack, od.Seq.Win, od.Seq.Span
			}
		}
		for d := range vals {
			vals[d].Encode(&vb)
			if err := o.flows.Put(en.keys[d], vb[:]); err != nil {
				if d == 1 {
					_ = o.flows.Delete(en.keys[0])
				}
				if errors.Is(err, unix.E2BIG) {
					o.full.Add(1)
					full = true
					return false
				}
				r.offloadErr("installing a flow", err)
				return true
			}
		}
		o.entries[f.ID] = en
		r.eng.OffloadStarted(f.ID, f.Gen)
		for d, k := range en.keys {
			var kb [offload.KeySize]byte
			k.Encode(&kb)
			o.byKey[kb] = offRef{id: f.ID, dir: uint8(d)}
		}
		o.installed.Add(1)
		return true
	})
	o.live.Store(uint64(len(o.entries)))
}

// offloadCurrent reports whether en's values are still what the router
// would install: each next hop resolved to the MAC the entry sends to,
// and the MTU unchanged. A neighbour that answered from another MAC (a
// replaced gateway, an address taken over) or that was forgotten
// unconfirmed (the offloaded packets do not go through the neighbour
// table, so nothing asks it again) has the entry withdrawn: the flow's
// packets go through passgate, which resolves the next hop afresh, and it
// is installed again with what that found.
func (r *Router) offloadCurrent(en *offEntry) bool {
	for d, out := range en.out {
		mac, ok := r.nb[out].Lookup(en.hop[d])
		if !ok || [6]byte(mac) != en.mac[d] || en.mtu[d] != r.wayMTU(out) {
			return false
		}
	}
	return true
}

// wayMTU is the MTU frames leaving by out are sent by: the configured
// one, less if the interface's (as last read: followMTU) is smaller.
func (r *Router) wayMTU(out nat.Iface) int { return min(r.ifaces[out].mtu, r.mtu[out]) }

// offloadResync hands the engine the sequence edges the program saw of
// the offloaded TCP flow a segment arriving on in belongs to
// (nat.Engine.OffloadResync), before the engine judges it, if the
// programs leave it to the engine for its flags (not offload.PlainACK:
// an RST, FIN or SYN, a segment without ACK, ...): it reports the
// flow, for OffloadStarted once it has. Under r.mu's write lock; rare
// (what ends or restarts an offloaded flow), so a map read per direction
// is affordable.
func (r *Router) offloadResync(in nat.Iface, ip []byte) (id int32, gen uint32, ok bool) {
	o := r.off
	if o == nil || len(o.entries) == 0 || len(ip) < 40 || ip[0] != 0x45 || ip[9] != packet.ProtoTCP ||
		binary.BigEndian.Uint16(ip[6:])&0x1fff != 0 || offload.PlainACK(ip[32], ip[33]) {
		return 0, 0, false
	}
	k := offload.Key{Ifindex: uint32(r.ifaces[in].index), Proto: packet.ProtoTCP, Src: [4]byte(ip[12:16]), Dst: [4]byte(ip[16:20]),
		SrcPort: binary.BigEndian.Uint16(ip[20:]), DstPort: binary.BigEndian.Uint16(ip[22:])}
	k.Encode(&o.kscr)
	ref, found := o.byKey[o.kscr]
	if !found {
		return 0, 0, false
	}
	en := o.entries[ref.id]
	seqs, ok := r.offloadSeqs(en)
	if !ok || !r.eng.OffloadResync(ref.id, en.gen, seqs) {
		return 0, 0, false
	}
	o.resynced.Add(1)
	return ref.id, en.gen, true
}

// offloadSeqs reads the sequence edges the program recorded of en's flow,
// each direction (nat.OffloadSeq). Under r.mu's write lock.
func (r *Router) offloadSeqs(en *offEntry) (seqs [2]nat.OffloadSeq, ok bool) {
	o := r.off
	var v offload.Value
	for d, dk := range en.keys {
		dk.Encode(&o.kscr)
		if err := o.flows.Lookup(o.kscr[:], o.vscr[:]); err != nil {
			r.offloadErr("reading a flow's sequence numbers", err)
			return seqs, false
		}
		v.Decode(&o.vscr)
		seqs[d] = nat.OffloadSeq{Next: v.SeqNext, Ack: v.SeqAck, Win: v.SeqWin, Seen: v.Packets > 0 || v.AckSpan != 0}
	}
	return seqs, true
}

func (r *Router) offloadErr(what string, err error) {
	if r.off.errLog.allow(time.Now()) {
		r.log.Error("offload: "+what, "err", err)
	}
}

func (r *Router) addOffloadCounters(m map[string]uint64) {
	if r.off == nil {
		return
	}
	m["offload_flows"] = r.off.live.Load()
	m["offload_installed"] = r.off.installed.Load()
	m["offload_removed"] = r.off.removed.Load()
	m["offload_map_full"] = r.off.full.Load()
	m["offload_resynced"] = r.off.resynced.Load()
	m["offload_packets"] = r.off.packets.Load()
	m["offload_bytes"] = r.off.bytes.Load()
}
