package h323

import "errors"

// errPER is returned for anything the walker cannot read: a truncated
// encoding, a fragmented length, or a type it does not know how to skip.
// It is a single value so the walk never allocates.
var errPER = errors.New("h323: PER encoding not understood")

// reader reads ASN.1 aligned PER (ITU-T X.691) from b. Positions are in
// bits from b[0]; base is the byte offset of b[0] in the payload, so what
// the walk finds can be patched in the payload.
//
// Like golang.org/x/crypto/cryptobyte's String, the reader keeps its first
// failure: once a read fails (past the end, a fragmented length, a type
// the walk cannot step over) bad is set, every later read returns zero and
// reads nothing, and the walk checks once, at its end (err). An open type
// (or the contents of an octet string) is read by limiting b to it with
// enter and stepping past it with leave, so the whole walk is one reader.
type reader struct {
	b    []byte
	base int
	bit  int
	bad  bool
}

func (r *reader) fail() { r.bad = true }

func (r *reader) err() error {
	if r.bad {
		return errPER
	}
	return nil
}

func (r *reader) align() { r.bit = (r.bit + 7) &^ 7 }

// bits reads n (at most 32) bits, most significant first.
func (r *reader) bits(n int) uint32 {
	if r.bad || n < 0 || n > 32 || r.bit+n > len(r.b)*8 {
		r.bad = true
		return 0
	}
	var v uint32
	for i := 0; i < n; i++ {
		p := r.bit + i
		v = v<<1 | uint32(r.b[p>>3]>>(7-p&7)&1)
	}
	r.bit += n
	return v
}

func (r *reader) flag() bool { return r.bits(1) == 1 }

func (r *reader) skip(n int) {
	if r.bad || n < 0 || r.bit+n > len(r.b)*8 {
		r.bad = true
		return
	}
	r.bit += n
}

// octets aligns and steps over n octets, returning the payload offset of
// the first.
func (r *reader) octets(n int) int {
	r.align()
	at := r.bit >> 3
	if r.bad || n < 0 || at+n > len(r.b) {
		r.bad = true
		return 0
	}
	r.bit += n * 8
	return r.base + at
}

// enter aligns and limits the reader to the next n octets (an open type's
// or an octet string's contents); leave, given what enter returned, steps
// past them and lifts the limit. Every enter has its leave, failed or not.
func (r *reader) enter(n int) int {
	outer := len(r.b)
	r.align()
	at := r.bit >> 3
	if r.bad || n < 0 || at+n > len(r.b) {
		r.bad = true
		return outer
	}
	r.b = r.b[:at+n]
	return outer
}

func (r *reader) leave(outer int) {
	r.bit = len(r.b) * 8
	r.b = r.b[:outer]
}

// open enters an open type (its length, then its encoding).
func (r *reader) open() int { return r.enter(r.length()) }

// skipOpen steps over an open type.
func (r *reader) skipOpen() { r.octets(r.length()) }

// nbits is the number of bits needed to hold v.
func nbits(v uint64) int {
	n := 0
	for v > 0 {
		n++
		v >>= 1
	}
	return n
}

// cint reads a constrained whole number in lb..ub (X.691 10.5.7, aligned).
func (r *reader) cint(lb, ub int64) int64 {
	rng := uint64(ub-lb) + 1
	switch {
	case rng == 1:
		return lb
	case rng <= 255:
		return lb + int64(r.bits(nbits(rng-1)))
	case rng == 256:
		r.align()
		return lb + int64(r.bits(8))
	case rng <= 65536:
		r.align()
		return lb + int64(r.bits(16))
	}
	// Larger ranges: the number of octets, then the octets.
	n := r.cint(1, int64((nbits(rng-1)+7)/8))
	r.align()
	var v uint64
	for i := int64(0); i < n; i++ {
		v = v<<8 | uint64(r.bits(8))
	}
	return lb + int64(v)
}

// length reads an unconstrained length determinant (X.691 10.9.3.5-7).
// Fragmented lengths (16K and more) are not supported.
func (r *reader) length() int {
	r.align()
	b := r.bits(8)
	switch {
	case b&0x80 == 0:
		return int(b)
	case b&0xc0 == 0x80:
		return int(b&0x3f)<<8 | int(r.bits(8))
	}
	r.fail()
	return 0
}

// clength reads a length constrained to lb..ub.
func (r *reader) clength(lb, ub int) int {
	if ub >= 65536 {
		return r.length()
	}
	return int(r.cint(int64(lb), int64(ub)))
}

// size reads the length of a string of lb..ub (ub < 0: no upper bound).
func (r *reader) size(lb, ub int) int {
	switch {
	case lb == ub:
		return lb
	case ub < 0:
		return r.length()
	}
	return r.clength(lb, ub)
}

// smallNN reads a normally small non-negative whole number (10.6), as
// extension choice indexes are.
func (r *reader) smallNN() int {
	if r.flag() {
		r.fail() // 64 and more: no table here has that many
		return 0
	}
	return int(r.bits(6))
}

// octetString steps over an OCTET STRING of size lb..ub (ub < 0: no upper
// bound): fixed sizes up to two octets unaligned (X.691 17).
func (r *reader) octetString(lb, ub int) {
	if lb == ub && lb <= 2 {
		r.skip(8 * lb)
		return
	}
	if n := r.size(lb, ub); n > 0 {
		r.octets(n)
	}
}

// bitString steps over a BIT STRING of size lb..ub bits (ub < 0: no upper
// bound): fixed sizes up to 16 bits unaligned, anything else octet-aligned
// after its length (X.691 16.9-16.11).
func (r *reader) bitString(lb, ub int) {
	n := r.size(lb, ub)
	if lb == ub && n <= 16 {
		r.skip(n)
		return
	}
	if n > 0 {
		r.align()
	}
	r.skip(n)
}

// charString steps over a known-multiplier character string (IA5String,
// BMPString, ...) of size lb..ub with b bits a character.
func (r *reader) charString(lb, ub, b int) {
	n := r.size(lb, ub)
	if ub*b > 16 {
		r.align()
	}
	r.skip(n * b)
}

// oid steps over an OBJECT IDENTIFIER.
func (r *reader) oid() { r.octetString(0, -1) }

// seq is a SEQUENCE preamble: its extension bit and the presence bits of
// its n optional fields.
type seq struct {
	ext  bool
	opts uint32
	n    int
}

// has says whether optional field i (0-based) is present.
func (s seq) has(i int) bool { return s.opts>>(s.n-1-i)&1 == 1 }

// seq reads a SEQUENCE preamble: the extension bit (if extensible) and
// nopt presence bits, first optional in the most significant bit.
func (r *reader) seq(ext bool, nopt int) seq {
	s := seq{n: nopt}
	if ext {
		s.ext = r.flag()
	}
	s.opts = r.bits(nopt)
	return s
}

// choice reads a CHOICE index among nroot root alternatives; ext says the
// index is of an extension addition (its value follows as an open type).
func (r *reader) choice(extensible bool, nroot int) (i int, ext bool) {
	if extensible && r.flag() {
		return r.smallNN(), true
	}
	return int(r.cint(0, int64(nroot-1))), false
}

// alt reads an extensible CHOICE's index among nroot root alternatives;
// an extension alternative is stepped over and gives -1, as a failed read
// does.
func (r *reader) alt(nroot int) int {
	i, ext := r.choice(true, nroot)
	if ext {
		r.skipOpen()
		return -1
	}
	if r.bad {
		return -1
	}
	return i
}

// additions reads a SEQUENCE's extension additions (after its root, when
// its extension bit s.ext was set) and calls fn with the index of each
// present one, the reader limited to its encoding; fn may be nil to step
// over them all.
func (r *reader) additions(s seq, fn func(i int)) {
	if !s.ext || r.bad {
		return
	}
	if r.flag() {
		r.fail() // 64 and more
		return
	}
	n := int(r.bits(6)) + 1
	var present uint64
	for i := 0; i < n; i++ {
		present = present<<1 | uint64(r.bits(1))
	}
	for i := 0; i < n && !r.bad; i++ {
		if present>>(n-1-i)&1 == 0 {
			continue
		}
		outer := r.open()
		if fn != nil && !r.bad {
			fn(i)
		}
		r.leave(outer)
	}
}

// end steps over a SEQUENCE's extension additions, if any.
func (r *reader) end(s seq) { r.additions(s, nil) }
