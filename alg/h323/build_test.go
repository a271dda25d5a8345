package h323

// An aligned PER encoder for the subset of H.225.0 and H.245 the tests
// send, written from the ASN.1 (H323-MESSAGES, MULTIMEDIA-SYSTEM-CONTROL)
// independently of the walker, so tshark's dissectors can judge both.

import (
	"encoding/binary"
	"net/netip"
)

type perw struct {
	b   []byte
	bit int
}

func (w *perw) bits(v uint64, n int) {
	for i := n - 1; i >= 0; i-- {
		if w.bit%8 == 0 {
			w.b = append(w.b, 0)
		}
		if v>>i&1 == 1 {
			w.b[w.bit/8] |= 0x80 >> (w.bit % 8)
		}
		w.bit++
	}
}

func (w *perw) flag(v bool) {
	if v {
		w.bits(1, 1)
	} else {
		w.bits(0, 1)
	}
}

func (w *perw) align() { w.bit = (w.bit + 7) &^ 7 }

func (w *perw) octets(p []byte) {
	w.align()
	w.b = append(w.b, p...)
	w.bit += 8 * len(p)
}

func (w *perw) cint(v, lb, ub int64) {
	rng := uint64(ub-lb) + 1
	d := uint64(v - lb)
	switch {
	case rng == 1:
	case rng <= 255:
		w.bits(d, nbits(rng-1))
	case rng == 256:
		w.align()
		w.bits(d, 8)
	case rng <= 65536:
		w.align()
		w.bits(d, 16)
	default:
		panic("range")
	}
}

func (w *perw) length(n int) {
	w.align()
	if n < 128 {
		w.bits(uint64(n), 8)
	} else {
		w.bits(0x8000|uint64(n), 16)
	}
}

func (w *perw) octetString(p []byte) { w.length(len(p)); w.octets(p) }

// seq writes a SEQUENCE preamble.
func (w *perw) seq(ext bool, extPresent bool, opts ...bool) {
	if ext {
		w.flag(extPresent)
	}
	for _, o := range opts {
		w.flag(o)
	}
}

func (w *perw) choice(nroot, i int) { w.flag(false); w.cint(int64(i), 0, int64(nroot-1)) }

// choiceExt writes an extension alternative with its encoding.
func (w *perw) choiceExt(i int, enc []byte) {
	w.flag(true)
	w.flag(false)
	w.bits(uint64(i), 6)
	w.open(enc)
}

func (w *perw) open(enc []byte) {
	if len(enc) == 0 {
		enc = []byte{0}
	}
	w.octetString(enc)
}

// extensions writes n extension additions; adds holds the present ones.
func (w *perw) extensions(n int, adds map[int][]byte) {
	w.flag(false)
	w.bits(uint64(n-1), 6)
	for i := 0; i < n; i++ {
		_, ok := adds[i]
		w.flag(ok)
	}
	for i := 0; i < n; i++ {
		if a, ok := adds[i]; ok {
			w.open(a)
		}
	}
}

func enc(f func(w *perw)) []byte {
	w := &perw{}
	f(w)
	return w.b
}

// --- H.245 ---

func ta245(w *perw, ap netip.AddrPort) {
	w.choice(2, 0) // unicastAddress
	w.choice(5, 0) // iPAddress
	w.seq(true, false)
	a := ap.Addr().As4()
	w.octets(a[:])
	w.cint(int64(ap.Port()), 0, 65535)
}

func g711(w *perw) {
	w.choice(6, 3)  // audioData
	w.choice(14, 3) // g711Ulaw64k
	w.cint(20, 1, 256)
}

// h2250Params is H2250LogicalChannelParameters with the given addresses
// (invalid ones absent).
func h2250Params(session int, rtp, rtcp netip.AddrPort) []byte {
	return enc(func(w *perw) {
		w.seq(true, false, false, false, rtp.IsValid(), false, rtcp.IsValid(), false, false, false, false, false)
		w.cint(int64(session), 0, 255)
		if rtp.IsValid() {
			ta245(w, rtp)
		}
		if rtcp.IsValid() {
			ta245(w, rtcp)
		}
	})
}

// olcForward is a forward channel: the sender transmits G.711 and
// receives RTCP at rtcp.
func olcForward(w *perw, lcn int, rtcp netip.AddrPort) {
	w.seq(true, false, false) // no reverse parameters
	w.cint(int64(lcn), 1, 65535)
	w.seq(true, false, false) // forwardLogicalChannelParameters, no portNumber
	g711(w)
	w.choiceExt(0, h2250Params(1, netip.AddrPort{}, rtcp))
}

// olcReverse is a fast-start reverse channel: the sender receives G.711
// at rtp (RTCP at rtcp).
func olcReverse(w *perw, lcn int, rtp, rtcp netip.AddrPort) {
	w.seq(true, false, true)
	w.cint(int64(lcn), 1, 65535)
	w.seq(true, false, false)
	w.choice(6, 1)           // nullData
	w.choiceExt(1, []byte{}) // multiplexParameters: none
	w.seq(true, false, true) // reverseLogicalChannelParameters
	g711(w)
	w.choiceExt(0, h2250Params(1, rtp, rtcp))
}

func olcAck(w *perw, lcn int, rtp, rtcp netip.AddrPort) {
	ack := enc(func(w *perw) {
		w.flag(false) // forwardMultiplexAckParameters: extensible CHOICE, one root alternative (no index bits)
		w.seq(true, false, false, true, true, true, false)
		w.cint(1, 1, 255)
		ta245(w, rtp)
		ta245(w, rtcp)
	})
	w.seq(true, true, false)
	w.cint(int64(lcn), 1, 65535)
	w.extensions(2, map[int][]byte{1: ack})
}

// mscOLC is a MultimediaSystemControlMessage request: OpenLogicalChannel.
func mscOLC(lcn int, rtcp netip.AddrPort) []byte {
	return enc(func(w *perw) {
		w.choice(4, 0)  // request
		w.choice(11, 3) // openLogicalChannel
		olcForward(w, lcn, rtcp)
	})
}

// mscOLCAck is a MultimediaSystemControlMessage response: OpenLogicalChannelAck.
func mscOLCAck(lcn int, rtp, rtcp netip.AddrPort) []byte {
	return enc(func(w *perw) {
		w.choice(4, 1)  // response
		w.choice(19, 5) // openLogicalChannelAck
		olcAck(w, lcn, rtp, rtcp)
	})
}

func h245OLC(lcn int, rtcp netip.AddrPort) []byte { return tpktWrap(mscOLC(lcn, rtcp)) }

func h245OLCAck(lcn int, rtp, rtcp netip.AddrPort) []byte {
	return tpktWrap(mscOLCAck(lcn, rtp, rtcp))
}

// --- H.225.0 ---

func ta225(w *perw, ap netip.AddrPort) {
	w.choice(7, 0)
	a := ap.Addr().As4()
	w.octets(a[:])
	w.cint(int64(ap.Port()), 0, 65535)
}

var protocolID = []byte{0x00, 0x08, 0x91, 0x4a, 0x00, 0x04} // 0.0.8.2250.0.4

func vendor(w *perw) {
	w.seq(true, false, true, true) // VendorIdentifier
	w.seq(true, false)             // H221NonStandard
	w.cint(181, 0, 255)
	w.cint(0, 0, 255)
	w.cint(21324, 0, 65535)
	for _, s := range []string{"passgate-test", "1.0"} {
		w.cint(int64(len(s)), 1, 256)
		w.octets([]byte(s))
	}
}

func endpoint(w *perw) {
	w.seq(true, false, false, true, false, false, false, true) // vendor, terminal
	vendor(w)
	w.seq(true, false, false) // TerminalInfo
	w.flag(false)             // mc
	w.flag(false)             // undefinedNode
}

func h323ID(w *perw, s string) {
	w.choice(2, 1)
	w.cint(int64(len(s)), 1, 256)
	w.align()
	for _, c := range s {
		w.bits(uint64(c), 16)
	}
}

func dialled(w *perw, s string) {
	w.choice(2, 0)
	w.cint(int64(len(s)), 1, 128)
	w.align()
	const alphabet = "#*,0123456789" // sorted: index encoding
	for _, c := range s {
		for i := range alphabet {
			if rune(alphabet[i]) == c {
				w.bits(uint64(i), 4)
			}
		}
	}
}

var guid = []byte("0123456789abcdef")

func callID() []byte { return enc(func(w *perw) { w.seq(true, false); w.octets(guid) }) }

func boolExt(v bool) []byte { return enc(func(w *perw) { w.flag(v) }) }

func fastStartEnc(olcs [][]byte) []byte {
	return enc(func(w *perw) {
		w.length(len(olcs))
		for _, o := range olcs {
			w.octetString(o)
		}
	})
}

// uuPDU wraps a message body alternative.
func uuPDU(body int, f func(w *perw)) []byte { return uuPDUTunnel(body, f, nil) }

// uuPDUTunnel wraps a message body alternative (an extension one, its
// encoding, if body >= bodyExtension) with H.245 messages tunnelled in
// h245Control (h245Tunnelling TRUE) if h245 is not nil.
func uuPDUTunnel(body int, f func(w *perw), h245 [][]byte) []byte {
	return enc(func(w *perw) {
		w.seq(true, false, false)       // H323-UserInformation, no user-data
		w.seq(true, h245 != nil, false) // H323-UU-PDU, no nonStandardData
		if body >= bodyExtension {
			w.choiceExt(body-bodyExtension, enc(f))
		} else {
			w.choice(7, body)
			f(w)
		}
		if h245 != nil {
			w.extensions(3, map[int][]byte{1: boolExt(true), 2: fastStartEnc(h245)})
		}
	})
}

// emptyUU is the "empty" body (an extension alternative: NULL) carrying
// tunnelled H.245 messages.
func emptyUU(h245 [][]byte) []byte {
	return uuPDUTunnel(bodyExtension+1, func(w *perw) {}, h245)
}

// setupTunnelUU is a Setup without fast start or h245Address that tunnels
// h245 in h245Control.
func setupTunnelUU(h245 [][]byte) []byte {
	return uuPDUTunnel(bodySetup, func(w *perw) {
		w.seq(true, true, false, true, true, false, false, false, false)
		w.octetString(protocolID)
		w.length(1)
		h323ID(w, "alice")
		endpoint(w)
		w.length(1)
		dialled(w, "1234")
		w.flag(false) // activeMC
		w.octets(guid)
		w.choice(3, 0) // create
		w.choice(4, 0) // pointToPoint
		w.extensions(12, map[int][]byte{2: callID(), 7: boolExt(false), 8: boolExt(false), 10: boolExt(false), 11: boolExt(false)})
	}, h245)
}

// --- H.235 and Progress ---

// bitString writes a BIT STRING (SIZE (0..ub)), unbounded if ub < 0, of
// n bits from p: the length, then the bits octet-aligned.
func (w *perw) bitString(p []byte, n, ub int) {
	if ub < 0 {
		w.length(n)
	} else {
		w.cint(int64(n), 0, int64(ub))
	}
	w.align()
	for i := 0; i < n; i++ {
		w.bits(uint64(p[i/8]>>(7-i%8)&1), 1)
	}
}

// bmp writes a BMPString (SIZE (1..128)).
func (w *perw) bmp(s string) {
	w.cint(int64(len(s)), 1, 128)
	w.align()
	for _, c := range s {
		w.bits(uint64(c), 16)
	}
}

var (
	tokenOID = []byte{0x00, 0x08, 0x81, 0x6b, 0x00, 0x02, 0x05} // 0.0.8.235.0.2.5
	hmacOID  = []byte{0x2b, 0x0e, 0x03, 0x02, 0x1a}             // 1.3.14.3.2.26
	octets8  = []byte("8octets!")
)

// params235 writes an H.235 Params with ranInt and iv8.
func params235(w *perw) {
	w.seq(true, false, true, true)
	w.octetString([]byte{0x01, 0x02}) // ranInt: unconstrained INTEGER
	w.octets(octets8)                 // iv8: SIZE (8), no length
}

// hashed235 writes a HASHED{}: algorithmOID, paramS, a 96-bit hash.
func hashed235(w *perw) {
	w.octetString(hmacOID)
	params235(w)
	w.bitString([]byte("twelve octet"), 96, -1)
}

// clearToken235 writes a ClearToken with timeStamp, password, dhkey,
// challenge, random and generalID.
func clearToken235(w *perw) {
	w.seq(true, false, true, true, true, true, true, false, true, false)
	w.octetString(tokenOID)
	bigUint(w, 1700000000, 1) // timeStamp
	w.bmp("secret")           // password
	w.seq(true, false)        // dhkey: DHset
	w.bitString([]byte("halfkey!"), 64, 2048)
	w.bitString([]byte("modsize!"), 61, 2048)
	w.bitString([]byte{0x02}, 2, 2048)
	w.cint(8, 8, 128) // challenge
	w.octets(octets8)
	w.octetString([]byte{0x12, 0x34, 0x56, 0x78}) // random
	w.bmp("alice")                                // generalID
}

// The H.235 fields a Progress built for a test carries.
type sec235 int

const (
	h235None   sec235 = iota
	h235Tokens        // h245SecurityMode, tokens, cryptoTokens
	h235Signed        // and a SIGNED{} cryptoToken, which tshark cannot dissect
)

// progressSecurity writes the root fields a Progress has between its
// callIdentifier and fastStart: h245SecurityMode (tls), one ClearToken,
// and the CryptoH323Tokens cryptoEPPwdHash, cryptoEPPwdEncr and
// nestedcryptoToken's cryptoHashedToken, then with signed a cryptoGKCert.
// (Wireshark does not dissect SIGNED{}'s toBeSigned, an open type: "something
// unknown here [ToBeSigned]".)
func progressSecurity(w *perw, signed bool) {
	w.choice(4, 2)            // tls: SecurityCapabilities
	w.seq(true, false, false) // no nonStandard
	w.choice(3, 1)            // encryption: none
	w.choice(3, 2)            // authenticaton: default
	w.choice(3, 1)            // integrity: none
	w.length(1)
	clearToken235(w)
	if signed {
		w.length(4)
	} else {
		w.length(3)
	}
	w.choice(8, 0) // cryptoEPPwdHash
	h323ID(w, "alice")
	bigUint(w, 1700000000, 1)
	hashed235(w)
	w.choice(8, 2) // cryptoEPPwdEncr: ENCRYPTED{EncodedPwdCertToken}
	w.octetString(hmacOID)
	params235(w)
	w.octetString([]byte("ciphertext"))
	w.choice(8, 7) // nestedcryptoToken
	w.choice(4, 2) // cryptoHashedToken
	w.octetString(tokenOID)
	clearToken235(w)
	hashed235(w)
	if signed {
		w.choice(8, 5) // cryptoGKCert: SIGNED{EncodedPwdCertToken}
		w.open(enc(clearToken235))
		w.octetString(hmacOID)
		params235(w)
		w.bitString([]byte("signature"), 72, -1)
	}
}

// progressUU is a Progress: the first extension alternative of the message
// body, so an open type. Its root holds the h245Address (if valid), the
// callIdentifier, the security fields h235 says, and the fastStart (if
// olcs is not nil); multipleCalls and maintainConnection are its additions.
func progressUU(h245 netip.AddrPort, olcs [][]byte, h235 sec235) []byte {
	return uuPDU(bodyProgress, func(w *perw) {
		sec := h235 != h235None
		w.seq(true, true, h245.IsValid(), sec, sec, sec, olcs != nil)
		w.octetString(protocolID)
		endpoint(w) // destinationInfo
		if h245.IsValid() {
			ta225(w, h245)
		}
		w.seq(true, false) // callIdentifier
		w.octets(guid)
		if sec {
			progressSecurity(w, h235 == h235Signed)
		}
		if olcs != nil {
			w.length(len(olcs))
			for _, o := range olcs {
				w.octetString(o)
			}
		}
		w.extensions(2, map[int][]byte{0: boolExt(false), 1: boolExt(false)})
	})
}

// --- RAS ---

// bigUint writes an INTEGER (lb..lb+2^32-1) value: a 2-bit octet count,
// then the octets, aligned.
func bigUint(w *perw, v, lb uint32) {
	d := v - lb
	n := 1
	for x := d >> 8; x > 0; x >>= 8 {
		n++
	}
	w.bits(uint64(n-1), 2)
	w.align()
	for i := n - 1; i >= 0; i-- {
		w.bits(uint64(d>>(8*i)&0xff), 8)
	}
}

// rrq is a RasMessage registrationRequest with one call signalling and one
// RAS address, and a timeToLive if ttl is not 0.
func rrq(seqNum int, csa, ras netip.AddrPort, ttl uint32) []byte {
	return enc(func(w *perw) {
		w.choice(25, 3)                       // registrationRequest
		w.seq(true, true, false, true, false) // terminalAlias
		w.cint(int64(seqNum), 1, 65535)
		w.octetString(protocolID)
		w.flag(true) // discoveryComplete
		w.length(1)
		ta225(w, csa)
		w.length(1)
		ta225(w, ras)
		endpoint(w) // terminalType
		w.length(1)
		h323ID(w, "alice")
		vendor(w)                                                                       // endpointVendor
		adds := map[int][]byte{5: boolExt(false), 7: boolExt(false), 8: boolExt(false)} // keepAlive, willSupplyUUIEs, maintainConnection
		if ttl != 0 {
			adds[1] = enc(func(w *perw) { bigUint(w, ttl, 1) })
		}
		w.extensions(9, adds)
	})
}

func setupUU(h245 netip.AddrPort, olcs [][]byte) []byte {
	return uuPDU(bodySetup, func(w *perw) {
		w.seq(true, true, h245.IsValid(), true, true, false, false, false, false)
		w.octetString(protocolID)
		if h245.IsValid() {
			ta225(w, h245)
		}
		w.length(1)
		h323ID(w, "alice")
		endpoint(w)
		w.length(1)
		dialled(w, "1234")
		w.flag(false) // activeMC
		w.octets(guid)
		w.choice(3, 0) // create
		w.choice(4, 0) // pointToPoint
		adds := map[int][]byte{2: callID(), 7: boolExt(false), 8: boolExt(false), 10: boolExt(false), 11: boolExt(false)}
		if olcs != nil {
			adds[6] = fastStartEnc(olcs)
		}
		w.extensions(12, adds)
	})
}

func connectUU(h245 netip.AddrPort, olcs [][]byte) []byte {
	return uuPDU(bodyConnect, func(w *perw) {
		w.seq(true, true, h245.IsValid())
		w.octetString(protocolID)
		if h245.IsValid() {
			ta225(w, h245)
		}
		endpoint(w)
		w.octets(guid)
		adds := map[int][]byte{0: callID(), 5: boolExt(false), 6: boolExt(false)}
		if olcs != nil {
			adds[4] = fastStartEnc(olcs)
		}
		w.extensions(7, adds)
	})
}

func alertingUU() []byte {
	return uuPDU(bodyAlerting, func(w *perw) {
		w.seq(true, true, false)
		w.octetString(protocolID)
		endpoint(w)
		w.extensions(7, map[int][]byte{0: callID(), 5: boolExt(false), 6: boolExt(false)})
	})
}

func releaseUU() []byte {
	return uuPDU(bodyReleaseComplete, func(w *perw) {
		w.seq(true, true, false)
		w.octetString(protocolID)
		w.extensions(1, map[int][]byte{0: callID()})
	})
}

// q931Msg is a TPKT holding a Q.931 message with the user-user PDU.
func q931Msg(mt byte, crv uint16, uu []byte) []byte {
	m := []byte{0x08, 0x02, byte(crv >> 8), byte(crv), mt}
	if mt == 0x05 {
		m = append(m, 0x04, 0x03, 0x88, 0x90, 0xa5) // bearer capability
	}
	m = append(m, 0x7e, 0, 0, 0x05)
	binary.BigEndian.PutUint16(m[len(m)-3:], uint16(len(uu)+1))
	m = append(m, uu...)
	return tpktWrap(m)
}

func tpktWrap(m []byte) []byte {
	b := []byte{3, 0, 0, 0}
	binary.BigEndian.PutUint16(b[2:], uint16(len(m)+4))
	return append(b, m...)
}
