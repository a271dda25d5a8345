package pppstub

// Async HDLC-like framing of PPP (RFC 1662 section 4): frames are delimited
// by the flag 0x7E, the flag, the escape 0x7D and (under the default ACCM)
// every byte below 0x20 are sent as 0x7D followed by the byte XOR 0x20, and
// each frame ends with a 16-bit FCS sent least significant byte first.

const (
	hdlcFlag   = 0x7e
	hdlcEscape = 0x7d
	hdlcXor    = 0x20

	fcsInit = 0xffff // initial FCS value
	fcsGood = 0xf0b8 // FCS over a frame plus its own FCS bytes
)

// fcsTable is the lookup table of RFC 1662 appendix C.2 (polynomial
// x^16 + x^12 + x^5 + 1, bit-reversed 0x8408).
var fcsTable = func() (t [256]uint16) {
	for b := range 256 {
		v := uint16(b)
		for range 8 {
			if v&1 != 0 {
				v = v>>1 ^ 0x8408
			} else {
				v >>= 1
			}
		}
		t[b] = v
	}
	return t
}()

// fcs16 folds p into the running FCS.
func fcs16(fcs uint16, p []byte) uint16 {
	for _, b := range p {
		fcs = fcs>>8 ^ fcsTable[byte(fcs)^b]
	}
	return fcs
}

// needsEscape reports whether b is sent escaped under the default ACCM.
func needsEscape(b byte) bool {
	return b < 0x20 || b == hdlcFlag || b == hdlcEscape
}

// hdlcEncode appends to dst frame (address, control, protocol and data, as
// a PPP frame) framed for an async link: an opening flag, the stuffed bytes,
// the stuffed FCS and a closing flag.
func hdlcEncode(dst, frame []byte) []byte {
	dst = append(dst, hdlcFlag)
	put := func(b byte) {
		if needsEscape(b) {
			dst = append(dst, hdlcEscape, b^hdlcXor)
		} else {
			dst = append(dst, b)
		}
	}
	for _, b := range frame {
		put(b)
	}
	fcs := ^fcs16(fcsInit, frame)
	put(byte(fcs))
	put(byte(fcs >> 8))
	return append(dst, hdlcFlag)
}

// hdlcDecoder splits an async HDLC byte stream into frames. Feed it bytes in
// any chunks; it returns each complete frame whose FCS is good, without the
// FCS, and counts the frames it dropped.
type hdlcDecoder struct {
	buf     []byte
	escaped bool
	BadFCS  int // frames dropped for a wrong FCS
	Runts   int // frames dropped for being shorter than the FCS
	Aborts  int // frames ended by 0x7D 0x7E (abort sequence)
}

// Feed consumes p and calls fn with every complete good frame (the slice is
// only valid during the call).
func (d *hdlcDecoder) Feed(p []byte, fn func(frame []byte)) {
	for _, b := range p {
		switch {
		case b == hdlcFlag:
			if d.escaped {
				d.Aborts++
				d.escaped = false
				d.buf = d.buf[:0]
				continue
			}
			d.finish(fn)
		case d.escaped:
			d.escaped = false
			d.buf = append(d.buf, b^hdlcXor)
		case b == hdlcEscape:
			d.escaped = true
		default:
			d.buf = append(d.buf, b)
		}
	}
}

func (d *hdlcDecoder) finish(fn func(frame []byte)) {
	defer func() { d.buf = d.buf[:0] }()
	switch {
	case len(d.buf) == 0: // back-to-back flags
		return
	case len(d.buf) < 3:
		d.Runts++
		return
	case fcs16(fcsInit, d.buf) != fcsGood:
		d.BadFCS++
		return
	}
	fn(d.buf[:len(d.buf)-2])
}
