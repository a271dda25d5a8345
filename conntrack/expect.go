package conntrack

// Expectation is a flow a helper predicts before its first packet (the GRE
// of a PPTP call, the RTP of a SIP call, FTP data). It matches a packet
// whose tuple equals Match, where a zero Match.SrcID matches any source id.
type Expectation struct {
	Match Tuple
	Reply Tuple   // the reply tuple the new flow gets
	Host  [4]byte // LAN host to charge
	// Owner is charged too (the owner of the flow that predicted it: a
	// LAN MAC, a rule), so a host forging addresses gets one share.
	Owner    Owner
	Helper   uint8
	Data     uint64
	Tag      uint64 // the helper's name for it, to remove it later
	Claim    bool   // the helper owns the flow it becomes
	Deadline int64
}

// maxExpectations bounds helpers' predictions so a chatty peer cannot grow
// the table without bound, and maxExpectationsPerHost is one LAN host's
// share of them, so one host's calls cannot use them all up.
const (
	maxExpectations        = 4096
	maxExpectationsPerHost = maxExpectations / 8
)

// ErrTooManyExpectations is returned when the bound is reached.
var ErrTooManyExpectations = errorString("conntrack: too many expectations")

type errorString string

func (e errorString) Error() string { return string(e) }

// Expect registers an expectation, replacing one with the same Match.
// A host with maxExpectationsPerHost pending gets ErrTooManyExpectations
// too.
func (t *Table) Expect(e Expectation) error {
	old, ok := t.expect[e.Match]
	if !ok && len(t.expect) >= maxExpectations {
		return ErrTooManyExpectations
	}
	if (!ok || old.Host != e.Host) && e.Host != ([4]byte{}) && t.expHost[e.Host] >= maxExpectationsPerHost {
		return ErrTooManyExpectations
	}
	if (!ok || old.Owner != e.Owner) && e.Owner.Kind != OwnerNone && t.expOwner[e.Owner] >= maxExpectationsPerHost {
		return ErrTooManyExpectations
	}
	if ok {
		t.unexpect(&old)
		t.gone(&old)
	}
	t.expect[e.Match] = e
	if e.Host != ([4]byte{}) {
		t.expHost[e.Host]++
	}
	if e.Owner.Kind != OwnerNone {
		t.expOwner[e.Owner]++
	}
	return nil
}

// unexpect removes e and its charges to its host and owner.
func (t *Table) unexpect(e *Expectation) {
	delete(t.expect, e.Match)
	if e.Owner.Kind != OwnerNone {
		if n := t.expOwner[e.Owner] - 1; n > 0 {
			t.expOwner[e.Owner] = n
		} else {
			delete(t.expOwner, e.Owner)
		}
	}
	if e.Host == ([4]byte{}) {
		return
	}
	if n := t.expHost[e.Host] - 1; n > 0 {
		t.expHost[e.Host] = n
	} else {
		delete(t.expHost, e.Host)
	}
}

// HostExpectations is the number of expectations charged to host.
func (t *Table) HostExpectations(host [4]byte) int { return int(t.expHost[host]) }

// gone tells the owner an expectation went unfulfilled.
func (t *Table) gone(e *Expectation) {
	if t.OnExpectationGone != nil {
		t.OnExpectationGone(e)
	}
}

// Expected finds and removes the expectation that k fulfils: an exact match
// first, then one with any source id.
func (t *Table) Expected(k Tuple, now int64) (Expectation, bool) {
	if len(t.expect) == 0 {
		return Expectation{}, false
	}
	e, ok := t.expect[k]
	if !ok {
		k.SrcID = 0
		e, ok = t.expect[k]
	}
	if !ok {
		return Expectation{}, false
	}
	t.unexpect(&e)
	if e.Deadline <= now {
		t.gone(&e)
		return Expectation{}, false
	}
	return e, true
}

// Unexpect removes every expectation for which drop returns true (a helper
// ending a call removes its predictions).
func (t *Table) Unexpect(drop func(*Expectation) bool) {
	for _, e := range t.expect {
		if drop(&e) {
			t.unexpect(&e)
			t.gone(&e)
		}
	}
}

// Expectations is the number of pending expectations.
func (t *Table) Expectations() int { return len(t.expect) }

// expireExpectations drops stale expectations. They are few (bounded by
// maxExpectations and in practice a handful per call), so a pass over them
// is cheap.
func (t *Table) expireExpectations(now int64) int {
	n := 0
	for _, e := range t.expect {
		if e.Deadline <= now {
			t.unexpect(&e)
			t.gone(&e)
			n++
		}
	}
	return n
}

// RangeExpectations calls fn for every pending expectation until fn
// returns false. Not for the packet path.
func (t *Table) RangeExpectations(fn func(*Expectation) bool) {
	for _, e := range t.expect {
		if !fn(&e) {
			return
		}
	}
}
