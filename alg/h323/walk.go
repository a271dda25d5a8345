package h323

// The walk follows the ASN.1 of H.225.0 (H323-MESSAGES, 12/2009), H.235
// (H235-SECURITY-MESSAGES, the tokens before a Progress's fastStart) and
// H.245 (MULTIMEDIA-SYSTEM-CONTROL) just far enough to find the transport
// addresses, stepping over everything before them. Extension additions
// and extension alternatives are open types and skip by length (but the
// progress body, decoded within its open type); a root alternative the
// walk has no code for (H.263 video capabilities, data applications,
// H.223 multiplex parameters, ...) stops it with errPER. An IPv4 address
// and port are fixed-size and octet-aligned in PER, so a found address is
// a 6-byte run (4 address, 2 port) patched in place.
//
// Each function reads its type's fields in the order the ASN.1 lists
// them and returns nothing: the reader keeps the first failure (see
// reader), and the walk's entry points (uuie, msc, ras) report it.

// kind says what a found address is for.
type kind uint8

const (
	kNone kind = iota
	kH245      // TCP: the H.245 control channel (h245Address)
	kRTP       // UDP: mediaChannel
	kRTCP      // UDP: mediaControlChannel
	kRAS       // UDP: a RAS rasAddress (the RAS flow's own mapping)
	kCall      // TCP: a RAS callSignalAddress (where calls reach the host)
)

// maxRefs bounds the addresses one segment may carry.
const maxRefs = 32

// ref is one address found: 6 bytes at payload offset at.
type ref struct {
	at   int
	kind kind
	crv  uint16 // the Q.931 call reference of its message
}

// H.225.0 message body alternatives (H323-UU-PDU.h323-message-body).
const (
	bodySetup = iota
	bodyCallProceeding
	bodyConnect
	bodyAlerting
	bodyInformation
	bodyReleaseComplete
	bodyFacility
	bodyExtension // progress and later: extension alternatives (open types)
)

// bodyProgress is the one extension alternative walked; empty, status,
// statusInquiry, setupAcknowledge and notify carry no address and are
// stepped over.
const bodyProgress = bodyExtension + 0

type walker struct {
	refs [maxRefs]ref
	n    int
	crv  uint16
	ttl  uint32 // a RegistrationRequest's timeToLive in seconds, 0 if absent
}

// add notes the address and port (6 octets) at payload offset at as k, if
// the walk has not failed.
func (w *walker) add(r *reader, at int, k kind) {
	switch {
	case r.bad || k == kNone:
	case w.n == len(w.refs):
		r.fail()
	default:
		w.refs[w.n] = ref{at: at, kind: k, crv: w.crv}
		w.n++
	}
}

// --- H.225.0 ---

// uuie walks H323-UserInformation: the message body, then the H.245
// messages tunnelled in h245Control.
func (w *walker) uuie(r *reader) error {
	r.seq(true, 1)      // H323-UserInformation
	s := r.seq(true, 1) // H323-UU-PDU
	w.body(r)
	if s.has(0) {
		nonStandard(r, true)
	}
	// H323-UU-PDU's additions: h4501SupplementaryService, h245Tunnelling,
	// h245Control (2), ...
	r.additions(s, func(i int) {
		if i == 2 {
			w.octetStrings(r, false)
		}
	})
	return r.err()
}

// body walks the h323-message-body to its end.
func (w *walker) body(r *reader) {
	i, ext := r.choice(true, 7)
	if ext { // progress, empty, status, ...: an open type
		outer := r.open()
		if i+bodyExtension == bodyProgress {
			// The rewrite is in place (6 octets for 6), so the open
			// type's length, like every length around it, stays right.
			w.progress(r)
		}
		r.leave(outer)
		return
	}
	switch i {
	case bodySetup:
		w.setup(r)
	case bodyCallProceeding, bodyAlerting:
		// Their roots, and their additions up to fastStart (4), are alike.
		w.fastStartAt(r, w.destH245(r, 1), 4)
	case bodyConnect:
		w.connect(r)
	case bodyFacility:
		w.facility(r)
	case bodyInformation:
		s := r.seq(true, 0)
		r.oid()
		r.end(s)
	default: // bodyReleaseComplete (and the index 7 no root has)
		s := r.seq(true, 1)
		r.oid()
		if s.has(0) {
			r.alt(12) // reason
		}
		r.end(s)
	}
}

// octetStrings walks SEQUENCE OF OCTET STRING whose strings each hold an
// OpenLogicalChannel (fastStart, olc) or a MultimediaSystemControlMessage
// (h245Control).
func (w *walker) octetStrings(r *reader, olc bool) {
	for n := r.length(); n > 0 && !r.bad; n-- {
		outer := r.enter(r.length())
		if olc {
			w.olc(r)
		} else {
			w.control(r)
		}
		r.leave(outer)
	}
}

// fastStartAt walks a UUIE's extension additions for fastStart, addition i.
func (w *walker) fastStartAt(r *reader, s seq, i int) {
	r.additions(s, func(j int) {
		if j == i {
			w.octetStrings(r, true)
		}
	})
}

// --- RAS ---

// RasMessage alternatives walked.
const (
	rasGRQ = 0 // gatekeeperRequest
	rasRRQ = 3 // registrationRequest
)

// ras walks a RasMessage: the rasAddress of a GatekeeperRequest, the
// callSignalAddress and rasAddress lists of a RegistrationRequest (and its
// timeToLive, if the walk gets that far). Other messages carry nothing the
// helper rewrites.
func (w *walker) ras(r *reader) error {
	i, ext := r.choice(true, 25)
	if ext || i != rasGRQ && i != rasRRQ {
		return r.err()
	}
	nopt := 4 // GatekeeperRequest's optional fields
	if i == rasRRQ {
		nopt = 3
	}
	s := r.seq(true, nopt)
	r.cint(1, 65535) // requestSeqNum
	r.oid()          // protocolIdentifier
	if s.has(0) {
		nonStandard(r, true)
	}
	if i == rasGRQ {
		w.transport225(r, kRAS)
		return r.err()
	}
	r.skip(1)                                // discoveryComplete
	for _, k := range [2]kind{kCall, kRAS} { // callSignalAddress, rasAddress
		for n := r.length(); n > 0 && !r.bad; n-- {
			w.transport225(r, k)
		}
	}
	if r.bad {
		return errPER
	}
	// The addresses are found; the rest only for timeToLive, and a
	// failure there is no failure of the walk.
	endpointType(r) // terminalType
	if s.has(1) {
		aliases(r) // terminalAlias
	}
	if s.has(2) {
		r.charString(1, 128, 16) // gatekeeperIdentifier
	}
	vendorID(r) // endpointVendor
	r.additions(s, func(i int) {
		if i == 1 { // timeToLive: INTEGER (1..4294967295)
			if v := r.cint(1, 4294967295); !r.bad {
				w.ttl = uint32(v)
			}
		}
	})
	return nil
}

func (w *walker) setup(r *reader) {
	s := r.seq(true, 7)
	r.oid() // protocolIdentifier
	if s.has(0) {
		w.transport225(r, kH245)
	}
	if s.has(1) {
		aliases(r) // sourceAddress
	}
	endpointType(r) // sourceInfo
	if s.has(2) {
		aliases(r) // destinationAddress
	}
	if s.has(3) {
		w.transport225(r, kNone) // destCallSignalAddress
	}
	if s.has(4) {
		aliases(r) // destExtraCallInfo
	}
	if s.has(5) { // destExtraCRV
		for n := r.length(); n > 0 && !r.bad; n-- {
			r.cint(0, 65535)
		}
	}
	r.skip(1)    // activeMC
	r.octets(16) // conferenceID
	r.alt(3)     // conferenceGoal
	if s.has(6) {
		qseries(r) // callServices
	}
	r.alt(4) // callType
	w.fastStartAt(r, s, 6)
}

// destH245 walks the start CallProceeding-, Alerting- and Progress-UUIE
// share: the preamble (nopt optional fields, h245Address the first),
// protocolIdentifier, destinationInfo and h245Address.
func (w *walker) destH245(r *reader, nopt int) seq {
	s := r.seq(true, nopt)
	r.oid()
	endpointType(r) // destinationInfo
	if s.has(0) {
		w.transport225(r, kH245)
	}
	return s
}

// progress walks Progress-UUIE, whose root holds what CallProceeding and
// Alerting have as extension additions: callIdentifier, h245SecurityMode,
// tokens and cryptoTokens, then fastStart.
func (w *walker) progress(r *reader) {
	s := w.destH245(r, 5)
	c := r.seq(true, 0) // callIdentifier
	r.octets(16)
	r.end(c)
	if s.has(1) {
		h245Security(r)
	}
	if s.has(2) { // tokens
		for n := r.length(); n > 0 && !r.bad; n-- {
			clearToken(r)
		}
	}
	if s.has(3) { // cryptoTokens
		for n := r.length(); n > 0 && !r.bad; n-- {
			cryptoH323Token(r)
		}
	}
	if s.has(4) {
		w.octetStrings(r, true) // fastStart
	}
	r.end(s) // multipleCalls, maintainConnection, ...
}

func (w *walker) connect(r *reader) {
	s := r.seq(true, 1)
	r.oid()
	if s.has(0) {
		w.transport225(r, kH245)
	}
	endpointType(r) // destinationInfo
	r.octets(16)    // conferenceID
	w.fastStartAt(r, s, 4)
}

func (w *walker) facility(r *reader) {
	s := r.seq(true, 3)
	r.oid()
	if s.has(0) {
		w.transport225(r, kNone) // alternativeAddress
	}
	if s.has(1) {
		aliases(r) // alternativeAliasAddress
	}
	if s.has(2) {
		r.octets(16) // conferenceID
	}
	r.alt(4) // reason
	r.additions(s, func(i int) {
		switch i {
		case 6:
			w.transport225(r, kH245)
		case 7:
			w.octetStrings(r, true) // fastStart
		}
	})
}

// transport225 walks an H.225.0 TransportAddress, noting an ipAddress as k.
func (w *walker) transport225(r *reader, k kind) {
	switch r.alt(7) {
	case -1:
	case 0: // ipAddress: ip, port
		w.add(r, r.octets(6), k)
	case 1: // ipSourceRoute
		s := r.seq(true, 0)
		r.octets(6) // ip, port
		r.octets(4 * r.length())
		r.alt(2) // routing
		r.end(s)
	case 2: // ipxAddress: node, netnum, port
		r.octets(12)
	case 3: // ip6Address
		s := r.seq(true, 0)
		r.octets(18)
		r.end(s)
	case 4: // netBios
		r.octets(16)
	case 5: // nsap
		r.octetString(1, 20)
	default: // nonStandardAddress
		nonStandard(r, true)
	}
}

func h221(r *reader, ext bool) {
	s := r.seq(ext, 0)
	r.cint(0, 255)   // t35CountryCode
	r.cint(0, 255)   // t35Extension
	r.cint(0, 65535) // manufacturerCode
	r.end(s)
}

// nonStandard walks a NonStandardParameter: H.225.0's (and its
// NonStandardIdentifier) extensible, H.245's not.
func nonStandard(r *reader, ext bool) {
	switch i, x := r.choice(ext, 2); {
	case x:
		r.skipOpen()
	case i == 0:
		r.oid() // object
	default:
		h221(r, ext)
	}
	r.octetString(0, -1) // data
}

// aliases walks SEQUENCE OF AliasAddress.
func aliases(r *reader) {
	for n := r.length(); n > 0 && !r.bad; n-- {
		alias(r)
	}
}

// alias walks an AliasAddress.
func alias(r *reader) {
	switch r.alt(2) {
	case 0: // dialledDigits: 13 characters, 4 bits each
		r.charString(1, 128, 4)
	case 1: // h323-ID
		r.charString(1, 256, 16)
	}
}

// nsdOnly walks the SEQUENCEs whose root is one optional
// NonStandardParameter (GatekeeperInfo, McuInfo, TerminalInfo, H323Caps, ...).
func nsdOnly(r *reader) {
	s := r.seq(true, 1)
	if s.has(0) {
		nonStandard(r, true)
	}
	r.end(s)
}

func endpointType(r *reader) {
	s := r.seq(true, 6)
	if s.has(0) {
		nonStandard(r, true)
	}
	if s.has(1) {
		vendorID(r)
	}
	if s.has(2) {
		nsdOnly(r) // gatekeeper
	}
	if s.has(3) { // gateway
		g := r.seq(true, 2)
		if g.has(0) { // protocol: SEQUENCE OF SupportedProtocols
			for n := r.length(); n > 0 && !r.bad; n-- {
				if i := r.alt(9); i == 0 {
					nonStandard(r, true)
				} else if i > 0 {
					nsdOnly(r) // H310Caps, ...: their roots alike
				}
			}
		}
		if g.has(1) {
			nonStandard(r, true)
		}
		r.end(g)
	}
	for i := 4; i < 6; i++ { // mcu, terminal
		if s.has(i) {
			nsdOnly(r)
		}
	}
	r.skip(2) // mc, undefinedNode
	r.end(s)
}

// vendorID walks a VendorIdentifier.
func vendorID(r *reader) {
	s := r.seq(true, 2)
	h221(r, true)
	for i := 0; i < 2; i++ { // productId, versionId
		if s.has(i) {
			r.octetString(1, 256)
		}
	}
	r.end(s)
}

// qseries walks QseriesOptions: seven BOOLEANs and a Q954Details of two.
func qseries(r *reader) {
	s := r.seq(true, 0)
	r.skip(7)
	d := r.seq(true, 0)
	r.skip(2)
	r.end(d)
	r.end(s)
}

// --- H.235 (security fields a Progress has in its root) ---

// h245Security walks an H245Security.
func h245Security(r *reader) {
	switch r.alt(4) {
	case 0:
		nonStandard(r, true)
	case 2, 3: // tls, ipsec: SecurityCapabilities
		s := r.seq(true, 1)
		if s.has(0) {
			nonStandard(r, true)
		}
		for j := 0; j < 3; j++ { // encryption, authenticaton, integrity
			if r.alt(3) == 0 { // SecurityServiceMode
				nonStandard(r, true)
			}
		}
		r.end(s)
	}
}

// bmp128 steps over a BMPString (SIZE (1..128)): Password, Identifier,
// GatekeeperIdentifier.
func bmp128(r *reader) { r.charString(1, 128, 16) }

// timeStamp steps over a TimeStamp, INTEGER (1..4294967295).
func timeStamp(r *reader) { r.cint(1, 4294967295) }

// integer steps over an unconstrained INTEGER: a length, then the octets,
// as an OCTET STRING is.
func integer(r *reader) { r.octetString(0, -1) }

// clearToken walks an H.235 ClearToken.
func clearToken(r *reader) {
	s := r.seq(true, 8)
	r.oid() // tokenOID
	if s.has(0) {
		timeStamp(r)
	}
	if s.has(1) {
		bmp128(r) // password
	}
	if s.has(2) { // dhkey: DHset
		d := r.seq(true, 0)
		for j := 0; j < 3; j++ { // halfkey, modSize, generator
			r.bitString(0, 2048)
		}
		r.end(d)
	}
	if s.has(3) {
		r.octetString(8, 128) // challenge
	}
	if s.has(4) {
		integer(r) // random
	}
	if s.has(5) { // certificate: TypedCertificate
		c := r.seq(true, 0)
		r.oid()
		r.octetString(0, -1)
		r.end(c)
	}
	if s.has(6) {
		bmp128(r) // generalID
	}
	if s.has(7) { // nonStandard: H.235's NonStandardParameter
		r.oid()
		r.octetString(0, -1)
	}
	r.end(s)
}

// params walks an H.235 Params.
func params(r *reader) {
	s := r.seq(true, 2)
	if s.has(0) {
		integer(r) // ranInt
	}
	if s.has(1) {
		r.octetString(8, 8) // iv8
	}
	r.end(s)
}

// The parameterized H.235 types, none extensible: HASHED{} is
// algorithmOID, paramS, hash (BIT STRING); ENCRYPTED{} algorithmOID,
// paramS, encryptedData (OCTET STRING); SIGNED{} toBeSigned (an open
// type), algorithmOID, paramS, signature (BIT STRING).
func hashed(r *reader) {
	r.oid()
	params(r)
	r.bitString(0, -1)
}

func encrypted(r *reader) {
	r.oid()
	params(r)
	r.octetString(0, -1)
}

func signed(r *reader) {
	r.skipOpen() // toBeSigned
	hashed(r)    // the same fields follow
}

// cryptoH323Token walks a CryptoH323Token.
func cryptoH323Token(r *reader) {
	switch r.alt(8) {
	case 0: // cryptoEPPwdHash
		alias(r)
		timeStamp(r)
		hashed(r)
	case 1: // cryptoGKPwdHash
		bmp128(r) // gatekeeperId
		timeStamp(r)
		hashed(r)
	case 2, 3: // cryptoEPPwdEncr, cryptoGKPwdEncr
		encrypted(r)
	case 4, 5, 6: // cryptoEPCert, cryptoGKCert, cryptoFastStart
		signed(r)
	case 7: // nestedcryptoToken: CryptoToken
		switch i := r.alt(4); i {
		case 0, 1, 2:
			r.oid() // tokenOID
			switch i {
			case 0: // cryptoEncryptedToken
				encrypted(r)
			case 1: // cryptoSignedToken
				signed(r)
			case 2: // cryptoHashedToken
				clearToken(r) // hashedVals
				hashed(r)
			}
		case 3: // cryptoPwdEncr
			encrypted(r)
		}
	}
}

// --- H.245 ---

// msc walks a MultimediaSystemControlMessage: the addresses of an
// OpenLogicalChannel request or an OpenLogicalChannelAck response.
func (w *walker) msc(r *reader) error {
	w.control(r)
	return r.err()
}

func (w *walker) control(r *reader) {
	i, ext := r.choice(true, 4)
	if ext {
		return
	}
	switch i {
	case 0: // request
		if j, ext := r.choice(true, 11); !ext && j == 3 {
			w.olc(r)
		}
	case 1: // response
		if j, ext := r.choice(true, 19); !ext && j == 5 {
			w.olcAck(r)
		}
	}
}

func (w *walker) olc(r *reader) {
	s := r.seq(true, 1)
	r.cint(1, 65535)    // forwardLogicalChannelNumber
	f := r.seq(true, 1) // forwardLogicalChannelParameters
	if f.has(0) {
		r.cint(0, 65535) // portNumber
	}
	dataType(r)
	switch i, ext := r.choice(true, 3); {
	case ext:
		w.h2250In(r, i)
	case i == 0:
		h222(r)
	default: // H.223, V.76: not on IP networks
		r.fail()
	}
	r.end(f)
	if !s.has(0) {
		return
	}
	rv := r.seq(true, 1) // reverseLogicalChannelParameters
	dataType(r)
	if !rv.has(0) {
		return
	}
	i, ext := r.choice(true, 2)
	if !ext {
		r.fail() // H.223, V.76
		return
	}
	// What follows (dependencies, the OLC's own extensions) holds no
	// address the walk rewrites; the rewrite is in place, so stop here.
	w.h2250In(r, i)
}

// h2250In walks the extension alternative i of multiplexParameters:
// H2250LogicalChannelParameters if it is the first.
func (w *walker) h2250In(r *reader, i int) {
	outer := r.open()
	if i == 0 {
		w.h2250(r)
	}
	r.leave(outer)
}

func (w *walker) olcAck(r *reader) {
	s := r.seq(true, 1)
	r.cint(1, 65535) // forwardLogicalChannelNumber
	if s.has(0) {    // reverseLogicalChannelParameters
		rv := r.seq(true, 2)
		r.cint(1, 65535) // reverseLogicalChannelNumber
		if rv.has(0) {
			r.cint(0, 65535) // portNumber
		}
		if rv.has(1) {
			if i, ext := r.choice(true, 1); ext {
				w.h2250In(r, i)
			} else {
				h222(r)
			}
		}
		r.end(rv)
	}
	r.additions(s, func(i int) {
		if i == 1 { // forwardMultiplexAckParameters
			if j, ext := r.choice(true, 1); !ext && j == 0 {
				w.h2250Ack(r)
			}
		}
	})
}

// h2250 walks H2250LogicalChannelParameters up to mediaControlChannel.
func (w *walker) h2250(r *reader) {
	s := r.seq(true, 10)
	if s.has(0) {
		nonStandardList245(r)
	}
	r.cint(0, 255) // sessionID
	if s.has(1) {
		r.cint(1, 255) // associatedSessionID
	}
	if s.has(2) {
		w.transport245(r, kRTP) // mediaChannel
	}
	if s.has(3) {
		r.skip(1) // mediaGuaranteedDelivery
	}
	if s.has(4) {
		w.transport245(r, kRTCP) // mediaControlChannel
	}
}

// h2250Ack walks H2250LogicalChannelAckParameters up to mediaControlChannel.
func (w *walker) h2250Ack(r *reader) {
	s := r.seq(true, 5)
	if s.has(0) {
		nonStandardList245(r)
	}
	if s.has(1) {
		r.cint(1, 255) // sessionID
	}
	if s.has(2) {
		w.transport245(r, kRTP) // mediaChannel
	}
	if s.has(3) {
		w.transport245(r, kRTCP) // mediaControlChannel
	}
}

// transport245 walks an H.245 TransportAddress, noting a unicast
// iPAddress as k.
func (w *walker) transport245(r *reader, k kind) {
	switch r.alt(2) {
	case 0: // unicastAddress
		j := r.alt(5)
		if j < 0 {
			return
		}
		s := r.seq(j != 3, 0) // all but netBios are extensible SEQUENCEs
		switch j {
		case 0: // iPAddress: network, tsapIdentifier
			w.add(r, r.octets(6), k)
		case 1: // iPXAddress: node, netnum, tsapIdentifier
			r.octets(12)
		case 2: // iP6Address: network, tsapIdentifier
			r.octets(18)
		case 3: // netBios
			r.octets(16)
		default: // iPSourceRouteAddress
			r.skip(1)   // routing
			r.octets(6) // network, tsapIdentifier
			r.octets(4 * r.length())
		}
		r.end(s)
	case 1: // multicastAddress: left alone
		if j := r.alt(2); j >= 0 {
			s := r.seq(true, 0)
			r.octets(6 + 12*j) // IPv4 or IPv6 network, tsapIdentifier
			r.end(s)
		}
	}
}

func nonStandardList245(r *reader) {
	for n := r.length(); n > 0 && !r.bad; n-- {
		nonStandard(r, false)
	}
}

func h222(r *reader) {
	s := r.seq(true, 3)
	r.cint(0, 65535) // resourceID
	r.cint(0, 8191)  // subChannelID
	if s.has(0) {
		r.cint(0, 8191) // pcr-pid
	}
	for i := 1; i < 3; i++ { // programDescriptors, streamDescriptors
		if s.has(i) {
			r.octetString(0, -1)
		}
	}
	r.end(s)
}

// dataType walks the DataType of a logical channel: null, audio, H.261
// video or non-standard; other root alternatives stop the walk.
func dataType(r *reader) {
	switch r.alt(6) {
	case -1:
	case 0:
		nonStandard(r, false)
	case 1: // nullData
	case 2:
		videoCapability(r)
	case 3:
		audioCapability(r)
	default: // data, encryptionData, and the indexes no root has
		r.fail()
	}
}

func audioCapability(r *reader) {
	switch r.alt(14) {
	case -1:
	case 0:
		nonStandard(r, false)
	case 8: // g7231: maxAl-sduAudioFrames, silenceSuppression
		r.cint(1, 256)
		r.skip(1)
	case 12: // is11172AudioCapability
		s := r.seq(true, 0)
		r.skip(8)
		r.cint(1, 448)
		r.end(s)
	case 13: // is13818AudioCapability
		s := r.seq(true, 0)
		r.skip(20)
		r.cint(1, 1130)
		r.end(s)
	default: // G.711, G.722, G.728, G.729: INTEGER (1..256) frames per packet.
		r.cint(1, 256)
	}
}

func videoCapability(r *reader) {
	switch r.alt(5) {
	case -1:
	case 0:
		nonStandard(r, false)
	case 1: // h261VideoCapability
		s := r.seq(true, 2)
		for j := 0; j < 2; j++ { // qcifMPI, cifMPI
			if s.has(j) {
				r.cint(1, 4)
			}
		}
		r.skip(1)        // temporalSpatialTradeOffCapability
		r.cint(1, 19200) // maxBitRate
		r.skip(1)        // stillImageTransmission
		r.end(s)
	default: // H.262, H.263, IS 11172 video: not walked
		r.fail()
	}
}
