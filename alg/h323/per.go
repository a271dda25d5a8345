package h323

import "errors"

// errPER is returned for anything the walker cannot read: a truncated
// encoding, a fragmented length, or a type it does not know how to skip.
// It is a single value so the walk never allocates.
var errPER = errors.New("h323: PER encoding not understood")

// reader reads ASN.1 aligned PER (ITU-T X.691) from b. Positions are in
// bits from b[0]; base is the byte offset of b[0] in the payload, so what
// the walk finds can be patched in the payload.
type reader struct {
	b    []byte
	base int
	bit  int
}

func (r *reader) align() { r.bit = (r.bit + 7) &^ 7 }

// bits reads n (at most 32) bits, most significant first.
func (r *reader) bits(n int) (uint32, error) {
	if n < 0 || n > 32 || r.bit+n > len(r.b)*8 {
		return 0, errPER
	}
	var v uint32
	for i := 0; i < n; i++ {
		p := r.bit + i
		v = v<<1 | uint32(r.b[p>>3]>>(7-p&7)&1)
	}
	r.bit += n
	return v, nil
}

func (r *reader) bit1() (bool, error) {
	v, err := r.bits(1)
	return v == 1, err
}

func (r *reader) skip(n int) error {
	if n < 0 || r.bit+n > len(r.b)*8 {
		return errPER
	}
	r.bit += n
	return nil
}

// octets aligns and steps over n octets, returning the payload offset of
// the first.
func (r *reader) octets(n int) (int, error) {
	r.align()
	at := r.bit >> 3
	if n < 0 || at+n > len(r.b) {
		return 0, errPER
	}
	r.bit += n * 8
	return r.base + at, nil
}

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
func (r *reader) cint(lb, ub int64) (int64, error) {
	rng := uint64(ub-lb) + 1
	switch {
	case rng == 1:
		return lb, nil
	case rng <= 255:
		v, err := r.bits(nbits(rng - 1))
		return lb + int64(v), err
	case rng == 256:
		r.align()
		v, err := r.bits(8)
		return lb + int64(v), err
	case rng <= 65536:
		r.align()
		v, err := r.bits(16)
		return lb + int64(v), err
	}
	// Larger ranges: the number of octets, then the octets.
	n, err := r.cint(1, int64((nbits(rng-1)+7)/8))
	if err != nil {
		return 0, err
	}
	r.align()
	var v uint64
	for i := int64(0); i < n; i++ {
		b, err := r.bits(8)
		if err != nil {
			return 0, err
		}
		v = v<<8 | uint64(b)
	}
	return lb + int64(v), nil
}

// length reads an unconstrained length determinant (X.691 10.9.3.5-7).
// Fragmented lengths (16K and more) are not supported.
func (r *reader) length() (int, error) {
	r.align()
	b, err := r.bits(8)
	if err != nil {
		return 0, err
	}
	switch {
	case b&0x80 == 0:
		return int(b), nil
	case b&0xc0 == 0x80:
		b2, err := r.bits(8)
		return int(b&0x3f)<<8 | int(b2), err
	}
	return 0, errPER
}

// clength reads a length constrained to lb..ub.
func (r *reader) clength(lb, ub int) (int, error) {
	if ub >= 65536 {
		return r.length()
	}
	v, err := r.cint(int64(lb), int64(ub))
	return int(v), err
}

// smallNN reads a normally small non-negative whole number (10.6), as
// extension choice indexes are.
func (r *reader) smallNN() (int, error) {
	big, err := r.bit1()
	if err != nil {
		return 0, err
	}
	if big {
		return 0, errPER // 64 and more: no table here has that many
	}
	v, err := r.bits(6)
	return int(v), err
}

// octetString steps over an OCTET STRING of size lb..ub (ub < 0: no upper
// bound) and returns the payload offset and length of its contents.
func (r *reader) octetString(lb, ub int) (int, int, error) {
	if lb == ub {
		if lb <= 2 {
			at := r.base + r.bit>>3
			return at, lb, r.skip(8 * lb)
		}
		at, err := r.octets(lb)
		return at, lb, err
	}
	var n int
	var err error
	if ub < 0 {
		n, err = r.length()
	} else {
		n, err = r.clength(lb, ub)
	}
	if err != nil {
		return 0, 0, err
	}
	if n == 0 {
		return r.base + r.bit>>3, 0, nil
	}
	at, err := r.octets(n)
	return at, n, err
}

// bitString steps over a BIT STRING of size lb..ub bits (ub < 0: no upper
// bound): fixed sizes up to 16 bits unaligned, anything else octet-aligned
// after its length (X.691 16.9-16.11).
func (r *reader) bitString(lb, ub int) error {
	n := lb
	if lb != ub {
		var err error
		if ub < 0 {
			n, err = r.length()
		} else {
			n, err = r.clength(lb, ub)
		}
		if err != nil {
			return err
		}
	} else if n <= 16 {
		return r.skip(n)
	}
	if n > 0 {
		r.align()
	}
	return r.skip(n)
}

// charString steps over a known-multiplier character string (IA5String,
// BMPString, ...) of size lb..ub with b bits a character.
func (r *reader) charString(lb, ub, b int) error {
	n := lb
	if lb != ub {
		var err error
		if n, err = r.clength(lb, ub); err != nil {
			return err
		}
	}
	if ub*b > 16 {
		r.align()
	}
	return r.skip(n * b)
}

// oid steps over an OBJECT IDENTIFIER.
func (r *reader) oid() error {
	_, _, err := r.octetString(0, -1)
	return err
}

// seq reads a SEQUENCE preamble: the extension bit (if extensible) and
// nopt presence bits, first optional in the most significant bit.
func (r *reader) seq(ext bool, nopt int) (bool, uint32, error) {
	e := false
	if ext {
		var err error
		if e, err = r.bit1(); err != nil {
			return false, 0, err
		}
	}
	opts, err := r.bits(nopt)
	return e, opts, err
}

// has says whether optional field i (0-based) of n is present.
func has(opts uint32, n, i int) bool { return opts>>(n-1-i)&1 == 1 }

// choice reads a CHOICE index among nroot root alternatives; ext says the
// index is of an extension addition (its value follows as an open type).
func (r *reader) choice(extensible bool, nroot int) (int, bool, error) {
	if extensible {
		e, err := r.bit1()
		if err != nil {
			return 0, false, err
		}
		if e {
			i, err := r.smallNN()
			return i, true, err
		}
	}
	v, err := r.cint(0, int64(nroot-1))
	return int(v), false, err
}

// open reads an open type's length and returns a reader over its contents,
// stepping this one past them.
func (r *reader) open() (reader, error) {
	n, err := r.length()
	if err != nil {
		return reader{}, err
	}
	at, err := r.octets(n)
	if err != nil {
		return reader{}, err
	}
	s := at - r.base
	return reader{b: r.b[s : s+n], base: at}, nil
}

// extensions reads a SEQUENCE's extension additions (after its root, when
// the extension bit was set) and hands each present one to fn with a
// reader over its encoding; fn may be nil to skip them all.
func (r *reader) extensions(fn func(i int, sub reader) error) error {
	big, err := r.bit1()
	if err != nil {
		return err
	}
	if big {
		return errPER
	}
	n, err := r.bits(6)
	if err != nil {
		return err
	}
	n++
	var present uint64
	for i := uint32(0); i < n; i++ {
		b, err := r.bits(1)
		if err != nil {
			return err
		}
		present = present<<1 | uint64(b)
	}
	for i := 0; i < int(n); i++ {
		if present>>(int(n)-1-i)&1 == 0 {
			continue
		}
		sub, err := r.open()
		if err != nil {
			return err
		}
		if fn != nil {
			if err := fn(i, sub); err != nil {
				return err
			}
		}
	}
	return nil
}

// skipExt steps over extension additions if the extension bit was set.
func (r *reader) skipExt(e bool) error {
	if !e {
		return nil
	}
	return r.extensions(nil)
}
