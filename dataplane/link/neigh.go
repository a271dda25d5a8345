package link

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"passgate/packet"
)

// NeighbourConfig configures the neighbour table of one interface.
type NeighbourConfig struct {
	// MAC is the interface's own Ethernet address.
	MAC packet.MAC
	// Addr is the router's address on the interface and the on-link prefix.
	Addr netip.Prefix
	// ReachableTime is how long a confirmed entry is used without asking
	// again; default 60 s. After it, the entry is still used while it is
	// re-confirmed with unicast requests; unanswered, it is resolved anew.
	ReachableTime time.Duration
	// RetryInterval is the time between two requests for one address;
	// default 1 s.
	RetryInterval time.Duration
	// Retries is how many requests are sent before giving up; default 3.
	Retries int
	// FailedHold is how long packets to an address that did not answer are
	// dropped at once, without asking again; default 3 s.
	FailedHold time.Duration
	// QueueLen is how many packets wait per unresolved next hop; default 8.
	// When the queue is full the oldest is dropped.
	QueueLen int
	// MaxQueued bounds the packets waiting over all next hops; default 256.
	MaxQueued int
	// MaxEntries bounds the table; default 1024.
	MaxEntries int
	// BufSize is the largest frame that can be queued; default 1514.
	BufSize int
}

func (c *NeighbourConfig) setDefaults() {
	if c.ReachableTime <= 0 {
		c.ReachableTime = 60 * time.Second
	}
	if c.RetryInterval <= 0 {
		c.RetryInterval = time.Second
	}
	if c.Retries <= 0 {
		c.Retries = 3
	}
	if c.FailedHold <= 0 {
		c.FailedHold = 3 * time.Second
	}
	if c.QueueLen <= 0 {
		c.QueueLen = 8
	}
	if c.MaxQueued <= 0 {
		c.MaxQueued = 256
	}
	if c.MaxEntries <= 0 {
		c.MaxEntries = 1024
	}
	if c.BufSize <= 0 {
		c.BufSize = packet.EtherHeaderLen + 1500
	}
}

// NeighbourStats are the counters of one neighbour table.
type NeighbourStats struct {
	Entries    int
	Resolved   int
	Incomplete int
	Waiting    int // packets queued now

	RequestsSent     uint64
	RepliesSent      uint64
	RequestsReceived uint64
	RepliesReceived  uint64
	Learned          uint64
	Queued           uint64
	Released         uint64

	DropQueueFull  uint64 // oldest dropped from a full per-hop queue
	DropPoolEmpty  uint64 // MaxQueued packets already waiting
	DropTooBig     uint64 // frame larger than BufSize
	DropUnresolved uint64 // next hop did not answer
	DropTableFull  uint64 // MaxEntries next hops already known
	DropBadNextHop uint64 // zero, own or off-link next hop
}

// Drops is the sum of all drop counters.
func (s NeighbourStats) Drops() uint64 {
	return s.DropQueueFull + s.DropPoolEmpty + s.DropTooBig + s.DropUnresolved + s.DropTableFull + s.DropBadNextHop
}

// Neighbour is one entry as shown to people.
type Neighbour struct {
	Addr  netip.Addr
	MAC   string
	State string
	Queue int
}

type neighState uint8

const (
	stateIncomplete neighState = iota // asking; packets queue
	stateReachable                    // MAC known
	stateFailed                       // did not answer; packets drop until FailedHold passed
)

func (s neighState) String() string {
	switch s {
	case stateIncomplete:
		return "incomplete"
	case stateReachable:
		return "reachable"
	default:
		return "failed"
	}
}

type entry struct {
	mac       packet.MAC
	state     neighState
	confirmed time.Duration // last time the neighbour proved it owns the address
	lastReq   time.Duration // last request we sent
	reqs      int           // requests sent in the current resolution or probe
	since     time.Duration // when the current state began
	used      time.Duration // last time a packet went to it
	probe     bool          // Used asks Poll to re-confirm it (a unicast request)
	queue     [][]byte      // waiting frames (pooled buffers), oldest first
}

// Neighbours is the neighbour table of one interface, shared by all workers
// and safe for concurrent use. Times are offsets on any monotonic scale, the
// same for all calls.
type Neighbours struct {
	cfg  NeighbourConfig
	self [4]byte

	mu       sync.Mutex
	gen      atomic.Uint64 // bumped when an entry changes or goes: HopCaches drop what they hold
	entries  map[[4]byte]*entry
	pool     [][]byte     // free queue buffers
	waiting  int          // buffers out of the pool
	pending  atomic.Int32 // incomplete entries; read without the lock by Poll
	probes   atomic.Int32 // entries Used marked for a unicast request
	nextPoll time.Duration
	stats    NeighbourStats
}

// NewNeighbours makes the table for one interface.
func NewNeighbours(cfg NeighbourConfig) (*Neighbours, error) {
	if !cfg.Addr.IsValid() || !cfg.Addr.Addr().Is4() {
		return nil, fmt.Errorf("neighbour table: address %v is not an IPv4 prefix", cfg.Addr)
	}
	if cfg.MAC.IsZero() || cfg.MAC.IsMulticast() {
		return nil, errors.New("neighbour table: interface MAC must be a unicast address")
	}
	cfg.setDefaults()
	return &Neighbours{
		cfg:     cfg,
		self:    cfg.Addr.Addr().As4(),
		entries: make(map[[4]byte]*entry),
	}, nil
}

// MAC is the interface's own address.
func (n *Neighbours) MAC() packet.MAC { return n.cfg.MAC }

// Accept reports whether a received frame is for this interface: addressed
// to its MAC or broadcast, and not one it sent itself.
func (n *Neighbours) Accept(e packet.Ether) bool {
	d := e.Dst()
	return (d == n.cfg.MAC || d == packet.Broadcast) && e.Src() != n.cfg.MAC
}

// Output sends frame (an Ethernet frame whose first 14 bytes are free) to
// the IPv4 next hop nh. If nh is resolved, the Ethernet header is written in
// place and the frame added to b; otherwise a copy waits for the answer to
// an ARP request added to b. It reports whether the frame itself was added
// to b (if not, the caller may reuse it at once).
func (n *Neighbours) Output(now time.Duration, nh [4]byte, frame []byte, b *Batch) bool {
	return n.output(now, nh, frame, b, nil)
}

// HopCache is one worker's memory of the next hops it sent to lately
// (direct-mapped by the address's last byte), so that sending to a fresh
// neighbour takes neither the table's lock nor its map: workers on other
// cores sending through the same interface do not meet. Its zero value is
// empty; it is not safe for concurrent use.
type HopCache struct {
	slots [16]hopSlot
}

type hopSlot struct {
	nh    [4]byte
	mac   packet.MAC
	ok    bool
	gen   uint64        // the table's generation when filled
	until time.Duration // the end of the entry's fresh period
}

// OutputCached is Output with c in front of the table. An entry is used
// from c for no longer than the table would use it without asking again,
// and not at all once the table changed.
func (n *Neighbours) OutputCached(now time.Duration, nh [4]byte, frame []byte, b *Batch, c *HopCache) bool {
	s := &c.slots[nh[3]&15]
	if s.ok && s.nh == nh && now < s.until && s.gen == n.gen.Load() && len(frame) >= packet.EtherHeaderLen {
		packet.Ether(frame).SetHeader(s.mac, n.cfg.MAC, packet.EtherTypeIPv4)
		b.Add(frame)
		return true
	}
	return n.output(now, nh, frame, b, s)
}

// output is Output, filling s (if not nil) when nh is fresh.
func (n *Neighbours) output(now time.Duration, nh [4]byte, frame []byte, b *Batch, s *hopSlot) bool {
	if len(frame) < packet.EtherHeaderLen {
		return false
	}
	n.mu.Lock()
	e := n.entries[nh]
	if e != nil && e.state == stateReachable {
		age := now - e.confirmed
		if age < n.cfg.ReachableTime {
			e.used = now
			mac := e.mac
			if s != nil {
				// used is refreshed at least once per fresh period, well
				// within the two Expire waits for.
				*s = hopSlot{nh: nh, mac: mac, ok: true, gen: n.gen.Load(), until: e.confirmed + n.cfg.ReachableTime}
			}
			n.mu.Unlock()
			packet.Ether(frame).SetHeader(mac, n.cfg.MAC, packet.EtherTypeIPv4)
			b.Add(frame)
			return true
		}
		if age < n.cfg.ReachableTime+time.Duration(n.cfg.Retries)*n.cfg.RetryInterval {
			// Stale: keep using it while asking the neighbour directly.
			e.used = now
			if now-e.lastReq >= n.cfg.RetryInterval {
				n.request(now, nh, e, e.mac, b)
			}
			mac := e.mac
			n.mu.Unlock()
			packet.Ether(frame).SetHeader(mac, n.cfg.MAC, packet.EtherTypeIPv4)
			b.Add(frame)
			return true
		}
		// Gone quiet: resolve it anew.
		n.setState(e, stateIncomplete, now)
	}
	if e == nil {
		if !n.onLink(nh) {
			n.stats.DropBadNextHop++
			n.mu.Unlock()
			return false
		}
		if len(n.entries) >= n.cfg.MaxEntries {
			n.stats.DropTableFull++
			n.mu.Unlock()
			return false
		}
		e = &entry{state: stateIncomplete, since: now}
		n.entries[nh] = e
		n.pending.Add(1)
	}
	if e.state == stateIncomplete && e.reqs >= n.cfg.Retries && now-e.lastReq >= n.cfg.RetryInterval {
		// Asked enough and Poll has not noticed yet.
		n.stats.DropUnresolved += uint64(len(e.queue))
		n.setState(e, stateFailed, now)
	}
	if e.state == stateFailed {
		if now-e.since < n.cfg.FailedHold {
			n.stats.DropUnresolved++
			n.mu.Unlock()
			return false
		}
		n.setState(e, stateIncomplete, now)
	}
	e.used = now
	n.enqueue(e, frame)
	if e.reqs == 0 || (now-e.lastReq >= n.cfg.RetryInterval && e.reqs < n.cfg.Retries) {
		n.request(now, nh, e, packet.Broadcast, b)
	}
	n.mu.Unlock()
	return false
}

// Input handles a received ARP frame (Accept it first): answers requests
// for our address, learns the sender, and releases packets that waited for
// it into b, which must be the batch of this interface. It reports whether
// the frame was a well-formed ARP packet.
func (n *Neighbours) Input(now time.Duration, frame packet.Ether, b *Batch) bool {
	if len(frame) < packet.EtherHeaderLen || frame.Type() != packet.EtherTypeARP {
		return false
	}
	a, ok := packet.ParseARP(frame.Payload())
	if !ok {
		return false
	}
	op := a.Op()
	if op != packet.ARPRequest && op != packet.ARPReply {
		return false
	}
	sha, spa, tpa := a.SenderMAC(), a.SenderIP(), a.TargetIP()
	forUs := tpa == n.self
	n.mu.Lock()
	defer n.mu.Unlock()
	if op == packet.ARPRequest {
		n.stats.RequestsReceived++
		if forUs && !sha.IsMulticast() && !sha.IsZero() {
			// Reply to the sender (spa may be 0.0.0.0: an RFC 5227 probe).
			if buf := b.Buffer(packet.MinFrameLen); buf != nil {
				b.Add(packet.BuildARP(buf, sha, n.cfg.MAC, packet.ARPReply, n.cfg.MAC, n.self, sha, spa))
				n.stats.RepliesSent++
			}
		}
	} else {
		n.stats.RepliesReceived++
	}
	if sha.IsMulticast() || sha.IsZero() || sha == n.cfg.MAC || spa == n.self || !n.onLink(spa) {
		return true
	}
	e := n.entries[spa]
	if e == nil {
		// Create entries only for neighbours talking to us; others (e.g.
		// gratuitous ARP) just refresh what we already know.
		if !forUs || len(n.entries) >= n.cfg.MaxEntries {
			return true
		}
		e = &entry{state: stateReachable, since: now, used: now}
		n.entries[spa] = e
	}
	if e.state != stateReachable || e.mac != sha {
		n.stats.Learned++
	}
	e.mac = sha
	e.confirmed = now
	n.setState(e, stateReachable, now)
	n.release(e, b)
	return true
}

// Poll sends the retries that are due, and gives up on next hops that did
// not answer. Workers call it every loop; it does work at most four times
// per RetryInterval.
func (n *Neighbours) Poll(now time.Duration, b *Batch) {
	if n.pending.Load() == 0 && n.probes.Load() == 0 {
		return // the common case, without taking the lock every workers' loop shares
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.pending.Load() == 0 && n.probes.Load() == 0 || now < n.nextPoll {
		return
	}
	n.nextPoll = now + n.cfg.RetryInterval/4
	for ip, e := range n.entries {
		if e.probe {
			e.probe = false
			n.probes.Add(-1)
			if e.state == stateReachable {
				n.request(now, ip, e, e.mac, b)
			}
			continue
		}
		if e.state != stateIncomplete || now-e.lastReq < n.cfg.RetryInterval {
			continue
		}
		if e.reqs >= n.cfg.Retries {
			n.stats.DropUnresolved += uint64(len(e.queue))
			n.setState(e, stateFailed, now)
			continue
		}
		n.request(now, ip, e, packet.Broadcast, b)
	}
}

// Used tells the table that packets went to nh by another way than
// Output (the flow offload's programs forward established flows in the
// kernel, dataplane/offload): the entry is kept as Output keeps one in
// use. Fresh, it is marked used; stale, it is still used while the
// neighbour is asked directly (a unicast request, which the next Poll
// sends), so a neighbour that answers is confirmed, MAC and generation
// unchanged, rather than forgotten two ReachableTimes on; one that does
// not answer within the retries is resolved anew, as Output would (the
// generation moves: what was read with Lookup no longer holds). Not for
// the packet path: once per next hop and expiry tick.
func (n *Neighbours) Used(now time.Duration, nh [4]byte) {
	n.mu.Lock()
	defer n.mu.Unlock()
	e := n.entries[nh]
	if e == nil || e.state != stateReachable {
		return
	}
	age := now - e.confirmed
	switch {
	case age < n.cfg.ReachableTime:
		e.used = now
	case age < n.cfg.ReachableTime+time.Duration(n.cfg.Retries)*n.cfg.RetryInterval:
		e.used = now
		if now-e.lastReq >= n.cfg.RetryInterval && !e.probe {
			e.probe = true
			n.probes.Add(1)
		}
	default:
		// Gone quiet: resolve it anew (Poll asks).
		e.used = now
		n.setState(e, stateIncomplete, now)
	}
}

// Expire forgets entries unused for a while: failed ones after FailedHold,
// others unused for two ReachableTimes.
func (n *Neighbours) Expire(now time.Duration) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for ip, e := range n.entries {
		switch e.state {
		case stateFailed:
			if now-e.since >= n.cfg.FailedHold {
				delete(n.entries, ip)
				n.gen.Add(1)
			}
		case stateReachable:
			if now-e.used >= 2*n.cfg.ReachableTime && now-e.confirmed >= 2*n.cfg.ReachableTime {
				if e.probe {
					n.probes.Add(-1)
				}
				delete(n.entries, ip)
				n.gen.Add(1)
			}
		}
	}
}

// Gen is the table's generation, which moves whenever an entry changes
// or goes: what was read from the table with Lookup at one generation
// holds as long as it stays.
func (n *Neighbours) Gen() uint64 { return n.gen.Load() }

// Lookup returns the MAC of a resolved next hop.
func (n *Neighbours) Lookup(ip [4]byte) (packet.MAC, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if e := n.entries[ip]; e != nil && e.state == stateReachable {
		return e.mac, true
	}
	return packet.MAC{}, false
}

// Stats returns the counters.
func (n *Neighbours) Stats() NeighbourStats {
	n.mu.Lock()
	defer n.mu.Unlock()
	s := n.stats
	s.Entries = len(n.entries)
	s.Waiting = n.waiting
	for _, e := range n.entries {
		switch e.state {
		case stateReachable:
			s.Resolved++
		case stateIncomplete:
			s.Incomplete++
		}
	}
	return s
}

// Entries lists the table.
func (n *Neighbours) Entries() []Neighbour {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]Neighbour, 0, len(n.entries))
	for ip, e := range n.entries {
		nb := Neighbour{Addr: netip.AddrFrom4(ip), State: e.state.String(), Queue: len(e.queue)}
		if e.state == stateReachable {
			nb.MAC = e.mac.String()
		}
		out = append(out, nb)
	}
	return out
}

func (n *Neighbours) onLink(ip [4]byte) bool {
	if ip == n.self || ip == [4]byte{} {
		return false
	}
	return n.cfg.Addr.Contains(netip.AddrFrom4(ip))
}

// setState moves e to s, keeping the pending count and dropping the queue
// when resolution failed. n.mu is held.
func (n *Neighbours) setState(e *entry, s neighState, now time.Duration) {
	n.gen.Add(1)
	if e.state == stateIncomplete && s != stateIncomplete {
		n.pending.Add(-1)
	} else if e.state != stateIncomplete && s == stateIncomplete {
		n.pending.Add(1)
	}
	if s != e.state {
		e.since = now
		e.reqs = 0
	}
	if s == stateReachable && e.state == stateReachable {
		e.reqs = 0
	}
	e.state = s
	if s == stateFailed {
		for _, q := range e.queue {
			n.put(q)
		}
		clear(e.queue)
		e.queue = e.queue[:0]
	}
}

// request adds an ARP request for ip to b: broadcast while resolving,
// unicast to the known MAC while re-confirming. n.mu is held.
func (n *Neighbours) request(now time.Duration, ip [4]byte, e *entry, dst packet.MAC, b *Batch) {
	e.lastReq = now
	e.reqs++
	buf := b.Buffer(packet.MinFrameLen)
	if buf == nil {
		return
	}
	b.Add(packet.BuildARP(buf, dst, n.cfg.MAC, packet.ARPRequest, n.cfg.MAC, n.self, packet.MAC{}, ip))
	n.stats.RequestsSent++
}

// enqueue keeps a copy of frame until e resolves. n.mu is held.
func (n *Neighbours) enqueue(e *entry, frame []byte) {
	if len(frame) > n.cfg.BufSize {
		n.stats.DropTooBig++
		return
	}
	if len(e.queue) >= n.cfg.QueueLen {
		old := e.queue[0]
		copy(e.queue, e.queue[1:])
		e.queue[len(e.queue)-1] = nil
		e.queue = e.queue[:len(e.queue)-1]
		n.put(old)
		n.stats.DropQueueFull++
	}
	buf := n.get()
	if buf == nil {
		n.stats.DropPoolEmpty++
		return
	}
	buf = append(buf[:0], frame...)
	if e.queue == nil {
		e.queue = make([][]byte, 0, n.cfg.QueueLen)
	}
	e.queue = append(e.queue, buf)
	n.stats.Queued++
}

// release sends what waited for e, now resolved, through b. n.mu is held.
func (n *Neighbours) release(e *entry, b *Batch) {
	for i, q := range e.queue {
		out := b.Buffer(len(q))
		if out == nil {
			n.stats.DropTooBig++
		} else {
			copy(out, q)
			packet.Ether(out).SetHeader(e.mac, n.cfg.MAC, packet.EtherTypeIPv4)
			b.Add(out)
			n.stats.Released++
		}
		n.put(q)
		e.queue[i] = nil
	}
	e.queue = e.queue[:0]
}

func (n *Neighbours) get() []byte {
	if n.waiting >= n.cfg.MaxQueued {
		return nil
	}
	n.waiting++
	if k := len(n.pool); k > 0 {
		buf := n.pool[k-1]
		n.pool[k-1] = nil
		n.pool = n.pool[:k-1]
		return buf
	}
	return make([]byte, 0, n.cfg.BufSize)
}

func (n *Neighbours) put(buf []byte) {
	n.waiting--
	n.pool = append(n.pool, buf[:0])
}
