package h323

// The walk follows the ASN.1 of H.225.0 (H323-MESSAGES, 12/2009), H.235
// (H235-SECURITY-MESSAGES, the tokens before a Progress's fastStart) and
// H.245 (MULTIMEDIA-SYSTEM-CONTROL) just far enough to find the transport
// addresses, stepping over everything before them. Extension additions
// and extension alternatives are open types and skip by length (but the
// progress body, decoded within its open type); a root
// alternative the walk has no table for (H.263 video capabilities, data
// applications, H.223 multiplex parameters, ...) stops it with errPER.
// An IPv4 address and port are fixed-size and octet-aligned in PER, so a
// found address is a 6-byte run (4 address, 2 port) patched in place.

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
	body int
	ttl  uint32 // a RegistrationRequest's timeToLive in seconds, 0 if absent
}

func (w *walker) add(at int, k kind) error {
	if k == kNone {
		return nil
	}
	if w.n == len(w.refs) {
		return errPER
	}
	w.refs[w.n] = ref{at: at, kind: k, crv: w.crv}
	w.n++
	return nil
}

// sub returns a reader over n payload bytes at at, inside r.
func sub(r *reader, at, n int) reader {
	s := at - r.base
	return reader{b: r.b[s : s+n], base: at}
}

// --- H.225.0 ---

// uuie walks H323-UserInformation: the message body, then the H.245
// messages tunnelled in h245Control.
func (w *walker) uuie(r *reader) error {
	if _, _, err := r.seq(true, 1); err != nil { // H323-UserInformation
		return err
	}
	e, o, err := r.seq(true, 1) // H323-UU-PDU
	if err != nil {
		return err
	}
	if err := w.body225(r); err != nil {
		return err
	}
	if o == 1 {
		if err := nonStandard225(r); err != nil {
			return err
		}
	}
	if !e {
		return nil
	}
	// H323-UU-PDU's additions: h4501SupplementaryService, h245Tunnelling,
	// h245Control (2), ...
	return r.extensions(func(i int, s reader) error {
		if i == 2 {
			return w.h245Control(&s)
		}
		return nil
	})
}

// body225 walks the h323-message-body to its end.
func (w *walker) body225(r *reader) error {
	i, ext, err := r.choice(true, 7)
	if err != nil {
		return err
	}
	if ext { // progress, empty, status, ...: an open type
		w.body = bodyExtension + i
		s, err := r.open()
		if err != nil || w.body != bodyProgress {
			return err
		}
		// The rewrite is in place (6 octets for 6), so the open type's
		// length, like every length around it, stays right.
		return w.progress(&s)
	}
	w.body = i
	switch i {
	case bodySetup:
		return w.setup(r)
	case bodyCallProceeding, bodyAlerting:
		return w.proceedingOrAlerting(r)
	case bodyConnect:
		return w.connect(r)
	case bodyFacility:
		return w.facility(r)
	case bodyInformation:
		e, _, err := r.seq(true, 0)
		if err != nil {
			return err
		}
		if err := r.oid(); err != nil {
			return err
		}
		return r.skipExt(e)
	default: // bodyReleaseComplete
		e, o, err := r.seq(true, 1)
		if err != nil {
			return err
		}
		if err := r.oid(); err != nil {
			return err
		}
		if o == 1 {
			if err := skipNullChoice(r, 12); err != nil { // reason
				return err
			}
		}
		return r.skipExt(e)
	}
}

// h245Control walks SEQUENCE OF OCTET STRING, each a tunnelled H.245
// MultimediaSystemControlMessage.
func (w *walker) h245Control(r *reader) error {
	n, err := r.length()
	if err != nil {
		return err
	}
	for ; n > 0; n-- {
		at, l, err := r.octetString(0, -1)
		if err != nil {
			return err
		}
		s := sub(r, at, l)
		if err := w.msc(&s); err != nil {
			return err
		}
	}
	return nil
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
	i, ext, err := r.choice(true, 25)
	if err != nil || ext {
		return err
	}
	switch i {
	case rasGRQ:
		_, o, err := r.seq(true, 4)
		if err != nil {
			return err
		}
		if _, err := r.cint(1, 65535); err != nil { // requestSeqNum
			return err
		}
		if err := r.oid(); err != nil {
			return err
		}
		if has(o, 4, 0) {
			if err := nonStandard225(r); err != nil {
				return err
			}
		}
		return w.transport225(r, kRAS)
	case rasRRQ:
		e, o, err := r.seq(true, 3)
		if err != nil {
			return err
		}
		if _, err := r.cint(1, 65535); err != nil {
			return err
		}
		if err := r.oid(); err != nil {
			return err
		}
		if has(o, 3, 0) {
			if err := nonStandard225(r); err != nil {
				return err
			}
		}
		if err := r.skip(1); err != nil { // discoveryComplete
			return err
		}
		for _, k := range [2]kind{kCall, kRAS} { // callSignalAddress, rasAddress
			n, err := r.length()
			if err != nil {
				return err
			}
			for ; n > 0; n-- {
				if err := w.transport225(r, k); err != nil {
					return err
				}
			}
		}
		// The addresses are found; the rest only for timeToLive, and a
		// failure there is no failure of the walk.
		w.rrqTTL(r, e, o)
	}
	return nil
}

// rrqTTL walks the rest of a RegistrationRequest for its timeToLive.
func (w *walker) rrqTTL(r *reader, e bool, o uint32) {
	if endpointType(r) != nil { // terminalType
		return
	}
	if has(o, 3, 1) && aliases(r) != nil { // terminalAlias
		return
	}
	if has(o, 3, 2) && r.charString(1, 128, 16) != nil { // gatekeeperIdentifier
		return
	}
	if vendorID(r) != nil || !e { // endpointVendor
		return
	}
	r.extensions(func(i int, s reader) error {
		if i == 1 { // timeToLive: INTEGER (1..4294967295)
			v, err := s.cint(1, 4294967295)
			if err == nil {
				w.ttl = uint32(v)
			}
		}
		return nil
	})
}

func (w *walker) setup(r *reader) error {
	e, o, err := r.seq(true, 7)
	if err != nil {
		return err
	}
	if err := r.oid(); err != nil { // protocolIdentifier
		return err
	}
	if has(o, 7, 0) {
		if err := w.transport225(r, kH245); err != nil {
			return err
		}
	}
	if has(o, 7, 1) {
		if err := aliases(r); err != nil { // sourceAddress
			return err
		}
	}
	if err := endpointType(r); err != nil { // sourceInfo
		return err
	}
	if has(o, 7, 2) {
		if err := aliases(r); err != nil { // destinationAddress
			return err
		}
	}
	if has(o, 7, 3) {
		if err := w.transport225(r, kNone); err != nil { // destCallSignalAddress
			return err
		}
	}
	if has(o, 7, 4) {
		if err := aliases(r); err != nil { // destExtraCallInfo
			return err
		}
	}
	if has(o, 7, 5) { // destExtraCRV
		n, err := r.length()
		if err != nil {
			return err
		}
		for ; n > 0; n-- {
			if _, err := r.cint(0, 65535); err != nil {
				return err
			}
		}
	}
	if err := r.skip(1); err != nil { // activeMC
		return err
	}
	if _, err := r.octets(16); err != nil { // conferenceID
		return err
	}
	if err := skipNullChoice(r, 3); err != nil { // conferenceGoal
		return err
	}
	if has(o, 7, 6) {
		if err := qseries(r); err != nil { // callServices
			return err
		}
	}
	if err := skipNullChoice(r, 4); err != nil { // callType
		return err
	}
	if !e {
		return nil
	}
	return r.extensions(func(i int, s reader) error {
		if i == 6 {
			return w.fastStart(&s)
		}
		return nil
	})
}

// destH245 walks the start CallProceeding-, Alerting- and Progress-UUIE
// share: the preamble (the extension bit and nopt presence bits, returned;
// h245Address's is the first), protocolIdentifier, destinationInfo and
// h245Address.
func (w *walker) destH245(r *reader, nopt int) (bool, uint32, error) {
	e, o, err := r.seq(true, nopt)
	if err != nil {
		return false, 0, err
	}
	if err := r.oid(); err != nil {
		return false, 0, err
	}
	if err := endpointType(r); err != nil { // destinationInfo
		return false, 0, err
	}
	if has(o, nopt, 0) {
		if err := w.transport225(r, kH245); err != nil {
			return false, 0, err
		}
	}
	return e, o, nil
}

// proceedingOrAlerting walks CallProceeding-UUIE or Alerting-UUIE, whose
// roots and first extension additions are alike.
func (w *walker) proceedingOrAlerting(r *reader) error {
	e, _, err := w.destH245(r, 1)
	if err != nil {
		return err
	}
	return w.fastStartExt(r, e, 4)
}

// progress walks Progress-UUIE, whose root holds what CallProceeding and
// Alerting have as extension additions: callIdentifier, h245SecurityMode,
// tokens and cryptoTokens, then fastStart.
func (w *walker) progress(r *reader) error {
	e, o, err := w.destH245(r, 5)
	if err != nil {
		return err
	}
	ce, _, err := r.seq(true, 0) // callIdentifier
	if err != nil {
		return err
	}
	if _, err := r.octets(16); err != nil {
		return err
	}
	if err := r.skipExt(ce); err != nil {
		return err
	}
	if has(o, 5, 1) {
		if err := h245Security(r); err != nil {
			return err
		}
	}
	// tokens, cryptoTokens: SEQUENCE OF ClearToken, of CryptoH323Token.
	// (Plain loops: a reader handed to a function value would escape.)
	for i := 2; i < 4; i++ {
		if !has(o, 5, i) {
			continue
		}
		n, err := r.length()
		for ; n > 0 && err == nil; n-- {
			if i == 2 {
				err = clearToken(r)
			} else {
				err = cryptoH323Token(r)
			}
		}
		if err != nil {
			return err
		}
	}
	if has(o, 5, 4) {
		if err := w.fastStart(r); err != nil {
			return err
		}
	}
	return r.skipExt(e) // multipleCalls, maintainConnection, ...
}

func (w *walker) connect(r *reader) error {
	e, o, err := r.seq(true, 1)
	if err != nil {
		return err
	}
	if err := r.oid(); err != nil {
		return err
	}
	if has(o, 1, 0) {
		if err := w.transport225(r, kH245); err != nil {
			return err
		}
	}
	if err := endpointType(r); err != nil { // destinationInfo
		return err
	}
	if _, err := r.octets(16); err != nil { // conferenceID
		return err
	}
	return w.fastStartExt(r, e, 4)
}

func (w *walker) facility(r *reader) error {
	e, o, err := r.seq(true, 3)
	if err != nil {
		return err
	}
	if err := r.oid(); err != nil {
		return err
	}
	if has(o, 3, 0) {
		if err := w.transport225(r, kNone); err != nil { // alternativeAddress
			return err
		}
	}
	if has(o, 3, 1) {
		if err := aliases(r); err != nil {
			return err
		}
	}
	if has(o, 3, 2) {
		if _, err := r.octets(16); err != nil {
			return err
		}
	}
	if err := skipNullChoice(r, 4); err != nil { // reason
		return err
	}
	if !e {
		return nil
	}
	return r.extensions(func(i int, s reader) error {
		switch i {
		case 6:
			return w.transport225(&s, kH245)
		case 7:
			return w.fastStart(&s)
		}
		return nil
	})
}

func (w *walker) fastStartExt(r *reader, e bool, idx int) error {
	if !e {
		return nil
	}
	return r.extensions(func(i int, s reader) error {
		if i == idx {
			return w.fastStart(&s)
		}
		return nil
	})
}

// fastStart walks SEQUENCE OF OCTET STRING, each an OpenLogicalChannel.
func (w *walker) fastStart(r *reader) error {
	n, err := r.length()
	if err != nil {
		return err
	}
	for ; n > 0; n-- {
		at, l, err := r.octetString(0, -1)
		if err != nil {
			return err
		}
		s := sub(r, at, l)
		if err := w.olc(&s); err != nil {
			return err
		}
	}
	return nil
}

// transport225 walks an H.225.0 TransportAddress, noting an ipAddress as k.
func (w *walker) transport225(r *reader, k kind) error {
	i, ext, err := r.choice(true, 7)
	if err != nil {
		return err
	}
	if ext {
		_, err := r.open()
		return err
	}
	switch i {
	case 0: // ipAddress
		at, err := r.octets(4)
		if err != nil {
			return err
		}
		if _, err := r.cint(0, 65535); err != nil {
			return err
		}
		return w.add(at, k)
	case 1: // ipSourceRoute
		e, _, err := r.seq(true, 0)
		if err != nil {
			return err
		}
		if _, err := r.octets(4); err != nil {
			return err
		}
		if _, err := r.cint(0, 65535); err != nil {
			return err
		}
		n, err := r.length()
		if err != nil {
			return err
		}
		if _, err := r.octets(4 * n); err != nil {
			return err
		}
		if err := skipNullChoice(r, 2); err != nil {
			return err
		}
		return r.skipExt(e)
	case 2: // ipxAddress
		if _, err := r.octets(10); err != nil {
			return err
		}
		return r.skip(16)
	case 3: // ip6Address
		e, _, err := r.seq(true, 0)
		if err != nil {
			return err
		}
		if _, err := r.octets(18); err != nil {
			return err
		}
		return r.skipExt(e)
	case 4: // netBios
		_, err := r.octets(16)
		return err
	case 5: // nsap
		_, _, err := r.octetString(1, 20)
		return err
	default: // nonStandardAddress
		return nonStandard225(r)
	}
}

// skipNullChoice steps over an extensible CHOICE of NULLs.
func skipNullChoice(r *reader, nroot int) error {
	_, ext, err := r.choice(true, nroot)
	if err == nil && ext {
		_, err = r.open()
	}
	return err
}

func h221(r *reader, ext bool) error {
	e, _, err := r.seq(ext, 0)
	if err != nil {
		return err
	}
	if _, err := r.cint(0, 255); err != nil {
		return err
	}
	if _, err := r.cint(0, 255); err != nil {
		return err
	}
	if _, err := r.cint(0, 65535); err != nil {
		return err
	}
	return r.skipExt(e)
}

// nonStandard225 walks H.225.0's NonStandardParameter.
func nonStandard225(r *reader) error {
	i, ext, err := r.choice(true, 2)
	if err != nil {
		return err
	}
	switch {
	case ext:
		_, err = r.open()
	case i == 0:
		err = r.oid()
	default:
		err = h221(r, true)
	}
	if err != nil {
		return err
	}
	_, _, err = r.octetString(0, -1)
	return err
}

// aliases walks SEQUENCE OF AliasAddress.
func aliases(r *reader) error {
	n, err := r.length()
	if err != nil {
		return err
	}
	for ; n > 0; n-- {
		if err := alias(r); err != nil {
			return err
		}
	}
	return nil
}

// alias walks an AliasAddress.
func alias(r *reader) error {
	i, ext, err := r.choice(true, 2)
	if err != nil {
		return err
	}
	switch {
	case ext:
		_, err = r.open()
	case i == 0: // dialledDigits: 13 characters, 4 bits each
		err = r.charString(1, 128, 4)
	default: // h323-ID
		err = r.charString(1, 256, 16)
	}
	return err
}

// nsdOnly walks the SEQUENCEs whose root is one optional
// NonStandardParameter (GatekeeperInfo, McuInfo, TerminalInfo, H323Caps, ...).
func nsdOnly(r *reader) error {
	e, o, err := r.seq(true, 1)
	if err != nil {
		return err
	}
	if o == 1 {
		if err := nonStandard225(r); err != nil {
			return err
		}
	}
	return r.skipExt(e)
}

func endpointType(r *reader) error {
	e, o, err := r.seq(true, 6)
	if err != nil {
		return err
	}
	if has(o, 6, 0) {
		if err := nonStandard225(r); err != nil {
			return err
		}
	}
	if has(o, 6, 1) { // vendor
		if err := vendorID(r); err != nil {
			return err
		}
	}
	if has(o, 6, 2) { // gatekeeper
		if err := nsdOnly(r); err != nil {
			return err
		}
	}
	if has(o, 6, 3) { // gateway
		ge, gopt, err := r.seq(true, 2)
		if err != nil {
			return err
		}
		if has(gopt, 2, 0) {
			n, err := r.length()
			if err != nil {
				return err
			}
			for ; n > 0; n-- {
				i, ext, err := r.choice(true, 9)
				if err != nil {
					return err
				}
				switch {
				case ext:
					_, err = r.open()
				case i == 0:
					err = nonStandard225(r)
				default:
					err = nsdOnly(r)
				}
				if err != nil {
					return err
				}
			}
		}
		if has(gopt, 2, 1) {
			if err := nonStandard225(r); err != nil {
				return err
			}
		}
		if err := r.skipExt(ge); err != nil {
			return err
		}
	}
	for i := 4; i < 6; i++ { // mcu, terminal
		if has(o, 6, i) {
			if err := nsdOnly(r); err != nil {
				return err
			}
		}
	}
	if err := r.skip(2); err != nil { // mc, undefinedNode
		return err
	}
	return r.skipExt(e)
}

// vendorID walks a VendorIdentifier.
func vendorID(r *reader) error {
	ve, vo, err := r.seq(true, 2)
	if err != nil {
		return err
	}
	if err := h221(r, true); err != nil {
		return err
	}
	for i := 0; i < 2; i++ {
		if has(vo, 2, i) {
			if _, _, err := r.octetString(1, 256); err != nil {
				return err
			}
		}
	}
	return r.skipExt(ve)
}

func qseries(r *reader) error {
	e, _, err := r.seq(true, 0)
	if err != nil {
		return err
	}
	if err := r.skip(7); err != nil {
		return err
	}
	e2, _, err := r.seq(true, 0) // Q954Details
	if err != nil {
		return err
	}
	if err := r.skip(2); err != nil {
		return err
	}
	if err := r.skipExt(e2); err != nil {
		return err
	}
	return r.skipExt(e)
}

// --- H.235 (security fields a Progress has in its root) ---

// h245Security walks an H245Security.
func h245Security(r *reader) error {
	i, ext, err := r.choice(true, 4)
	switch {
	case err != nil:
		return err
	case ext:
		_, err = r.open()
		return err
	case i == 0:
		return nonStandard225(r)
	case i == 1: // noSecurity
		return nil
	}
	// tls, ipsec: SecurityCapabilities
	e, o, err := r.seq(true, 1)
	if err != nil {
		return err
	}
	if o == 1 {
		if err := nonStandard225(r); err != nil {
			return err
		}
	}
	for j := 0; j < 3; j++ { // encryption, authenticaton, integrity
		i, ext, err := r.choice(true, 3) // SecurityServiceMode
		switch {
		case err != nil:
		case ext:
			_, err = r.open()
		case i == 0:
			err = nonStandard225(r)
		}
		if err != nil {
			return err
		}
	}
	return r.skipExt(e)
}

// bmp128 steps over a BMPString (SIZE (1..128)): Password, Identifier,
// GatekeeperIdentifier.
func bmp128(r *reader) error { return r.charString(1, 128, 16) }

// timeStamp steps over a TimeStamp, INTEGER (1..4294967295).
func timeStamp(r *reader) error {
	_, err := r.cint(1, 4294967295)
	return err
}

// integer steps over an unconstrained INTEGER: a length, then the octets,
// as an OCTET STRING is.
func integer(r *reader) error {
	_, _, err := r.octetString(0, -1)
	return err
}

// clearToken walks an H.235 ClearToken.
func clearToken(r *reader) error {
	e, o, err := r.seq(true, 8)
	if err != nil {
		return err
	}
	if err := r.oid(); err != nil { // tokenOID
		return err
	}
	for i := 0; i < 8 && err == nil; i++ {
		if !has(o, 8, i) {
			continue
		}
		switch i {
		case 0:
			err = timeStamp(r)
		case 1, 6: // password, generalID
			err = bmp128(r)
		case 2: // dhkey: DHset
			var de bool
			if de, _, err = r.seq(true, 0); err != nil {
				break
			}
			for j := 0; j < 3 && err == nil; j++ { // halfkey, modSize, generator
				err = r.bitString(0, 2048)
			}
			if err == nil {
				err = r.skipExt(de)
			}
		case 3: // challenge
			_, _, err = r.octetString(8, 128)
		case 4: // random
			err = integer(r)
		case 5: // certificate: TypedCertificate
			var te bool
			if te, _, err = r.seq(true, 0); err != nil {
				break
			}
			if err = r.oid(); err == nil {
				if _, _, err = r.octetString(0, -1); err == nil {
					err = r.skipExt(te)
				}
			}
		case 7: // nonStandard: H.235's NonStandardParameter
			if err = r.oid(); err == nil {
				_, _, err = r.octetString(0, -1)
			}
		}
	}
	if err != nil {
		return err
	}
	return r.skipExt(e)
}

// params walks an H.235 Params.
func params(r *reader) error {
	e, o, err := r.seq(true, 2)
	if err != nil {
		return err
	}
	if has(o, 2, 0) {
		if err := integer(r); err != nil { // ranInt
			return err
		}
	}
	if has(o, 2, 1) {
		if _, _, err := r.octetString(8, 8); err != nil { // iv8
			return err
		}
	}
	return r.skipExt(e)
}

// The parameterized H.235 types, none extensible: HASHED{} is
// algorithmOID, paramS, hash (BIT STRING); ENCRYPTED{} algorithmOID,
// paramS, encryptedData (OCTET STRING); SIGNED{} toBeSigned (an open
// type), algorithmOID, paramS, signature (BIT STRING).
func hashed(r *reader) error {
	if err := r.oid(); err != nil {
		return err
	}
	if err := params(r); err != nil {
		return err
	}
	return r.bitString(0, -1)
}

func encrypted(r *reader) error {
	if err := r.oid(); err != nil {
		return err
	}
	if err := params(r); err != nil {
		return err
	}
	_, _, err := r.octetString(0, -1)
	return err
}

func signed(r *reader) error {
	if _, err := r.open(); err != nil { // toBeSigned
		return err
	}
	return hashed(r) // the same fields follow
}

// cryptoH323Token walks a CryptoH323Token.
func cryptoH323Token(r *reader) error {
	i, ext, err := r.choice(true, 8)
	switch {
	case err != nil:
		return err
	case ext:
		_, err = r.open()
		return err
	case i <= 1: // cryptoEPPwdHash, cryptoGKPwdHash
		if i == 0 {
			err = alias(r)
		} else {
			err = bmp128(r) // gatekeeperId
		}
		if err != nil {
			return err
		}
		if err := timeStamp(r); err != nil {
			return err
		}
		return hashed(r)
	case i <= 3: // cryptoEPPwdEncr, cryptoGKPwdEncr
		return encrypted(r)
	case i <= 6: // cryptoEPCert, cryptoGKCert, cryptoFastStart
		return signed(r)
	}
	// nestedcryptoToken: CryptoToken
	i, ext, err = r.choice(true, 4)
	switch {
	case err != nil:
		return err
	case ext:
		_, err = r.open()
		return err
	case i == 3: // cryptoPwdEncr
		return encrypted(r)
	}
	if err := r.oid(); err != nil { // tokenOID
		return err
	}
	switch i {
	case 0: // cryptoEncryptedToken
		return encrypted(r)
	case 1: // cryptoSignedToken
		return signed(r)
	}
	// cryptoHashedToken
	if err := clearToken(r); err != nil { // hashedVals
		return err
	}
	return hashed(r)
}

// --- H.245 ---

// msc walks a MultimediaSystemControlMessage: the addresses of an
// OpenLogicalChannel request or an OpenLogicalChannelAck response.
func (w *walker) msc(r *reader) error {
	i, ext, err := r.choice(true, 4)
	if err != nil || ext {
		return err
	}
	switch i {
	case 0: // request
		j, ext, err := r.choice(true, 11)
		if err != nil || ext || j != 3 {
			return err
		}
		return w.olc(r)
	case 1: // response
		j, ext, err := r.choice(true, 19)
		if err != nil || ext || j != 5 {
			return err
		}
		return w.olcAck(r)
	}
	return nil
}

func (w *walker) olc(r *reader) error {
	_, o, err := r.seq(true, 1)
	if err != nil {
		return err
	}
	if _, err := r.cint(1, 65535); err != nil { // forwardLogicalChannelNumber
		return err
	}
	// forwardLogicalChannelParameters
	fe, fo, err := r.seq(true, 1)
	if err != nil {
		return err
	}
	if fo == 1 {
		if _, err := r.cint(0, 65535); err != nil { // portNumber
			return err
		}
	}
	if err := dataType(r); err != nil {
		return err
	}
	i, ext, err := r.choice(true, 3)
	if err != nil {
		return err
	}
	switch {
	case ext:
		s, err := r.open()
		if err != nil {
			return err
		}
		if i == 0 {
			if err := w.h2250(&s); err != nil {
				return err
			}
		}
	case i == 0:
		if err := h222(r); err != nil {
			return err
		}
	default: // H.223, V.76: not on IP networks
		return errPER
	}
	if err := r.skipExt(fe); err != nil {
		return err
	}
	if o == 0 {
		return nil
	}
	// reverseLogicalChannelParameters
	_, ro, err := r.seq(true, 1)
	if err != nil {
		return err
	}
	if err := dataType(r); err != nil {
		return err
	}
	if ro == 0 {
		return nil
	}
	i, ext, err = r.choice(true, 2)
	if err != nil {
		return err
	}
	if !ext {
		return errPER // H.223, V.76
	}
	s, err := r.open()
	if err != nil || i != 0 {
		return err
	}
	// What follows (dependencies, the OLC's own extensions) holds no
	// address the walk rewrites; the rewrite is in place, so stop here.
	return w.h2250(&s)
}

func (w *walker) olcAck(r *reader) error {
	e, o, err := r.seq(true, 1)
	if err != nil {
		return err
	}
	if _, err := r.cint(1, 65535); err != nil {
		return err
	}
	if o == 1 { // reverseLogicalChannelParameters
		re, ro, err := r.seq(true, 2)
		if err != nil {
			return err
		}
		if _, err := r.cint(1, 65535); err != nil {
			return err
		}
		if has(ro, 2, 0) {
			if _, err := r.cint(0, 65535); err != nil {
				return err
			}
		}
		if has(ro, 2, 1) {
			i, ext, err := r.choice(true, 1)
			if err != nil {
				return err
			}
			if ext {
				s, err := r.open()
				if err != nil {
					return err
				}
				if i == 0 {
					if err := w.h2250(&s); err != nil {
						return err
					}
				}
			} else if err := h222(r); err != nil {
				return err
			}
		}
		if err := r.skipExt(re); err != nil {
			return err
		}
	}
	if !e {
		return nil
	}
	return r.extensions(func(i int, s reader) error {
		if i != 1 { // forwardMultiplexAckParameters
			return nil
		}
		j, ext, err := s.choice(true, 1)
		if err != nil || ext || j != 0 {
			return err
		}
		return w.h2250Ack(&s)
	})
}

// h2250 walks H2250LogicalChannelParameters up to mediaControlChannel.
func (w *walker) h2250(r *reader) error {
	_, o, err := r.seq(true, 10)
	if err != nil {
		return err
	}
	if has(o, 10, 0) {
		if err := nonStandardList245(r); err != nil {
			return err
		}
	}
	if _, err := r.cint(0, 255); err != nil { // sessionID
		return err
	}
	if has(o, 10, 1) {
		if _, err := r.cint(1, 255); err != nil { // associatedSessionID
			return err
		}
	}
	if has(o, 10, 2) {
		if err := w.transport245(r, kRTP); err != nil {
			return err
		}
	}
	if has(o, 10, 3) {
		if err := r.skip(1); err != nil { // mediaGuaranteedDelivery
			return err
		}
	}
	if has(o, 10, 4) {
		return w.transport245(r, kRTCP)
	}
	return nil
}

// h2250Ack walks H2250LogicalChannelAckParameters up to mediaControlChannel.
func (w *walker) h2250Ack(r *reader) error {
	_, o, err := r.seq(true, 5)
	if err != nil {
		return err
	}
	if has(o, 5, 0) {
		if err := nonStandardList245(r); err != nil {
			return err
		}
	}
	if has(o, 5, 1) {
		if _, err := r.cint(1, 255); err != nil {
			return err
		}
	}
	if has(o, 5, 2) {
		if err := w.transport245(r, kRTP); err != nil {
			return err
		}
	}
	if has(o, 5, 3) {
		return w.transport245(r, kRTCP)
	}
	return nil
}

// transport245 walks an H.245 TransportAddress, noting a unicast
// iPAddress as k.
func (w *walker) transport245(r *reader, k kind) error {
	i, ext, err := r.choice(true, 2)
	if err != nil {
		return err
	}
	if ext {
		_, err := r.open()
		return err
	}
	if i == 1 { // multicastAddress: left alone
		j, ext, err := r.choice(true, 2)
		if err != nil {
			return err
		}
		if ext {
			_, err := r.open()
			return err
		}
		e, _, err := r.seq(true, 0)
		if err != nil {
			return err
		}
		n := 4
		if j == 1 {
			n = 16
		}
		if _, err := r.octets(n + 2); err != nil {
			return err
		}
		return r.skipExt(e)
	}
	j, ext, err := r.choice(true, 5)
	if err != nil {
		return err
	}
	if ext {
		_, err := r.open()
		return err
	}
	switch j {
	case 0: // iPAddress
		e, _, err := r.seq(true, 0)
		if err != nil {
			return err
		}
		at, err := r.octets(4)
		if err != nil {
			return err
		}
		if _, err := r.cint(0, 65535); err != nil {
			return err
		}
		if err := w.add(at, k); err != nil {
			return err
		}
		return r.skipExt(e)
	case 1: // iPXAddress
		e, _, err := r.seq(true, 0)
		if err != nil {
			return err
		}
		if _, err := r.octets(10); err != nil {
			return err
		}
		if err := r.skip(16); err != nil {
			return err
		}
		return r.skipExt(e)
	case 2: // iP6Address
		e, _, err := r.seq(true, 0)
		if err != nil {
			return err
		}
		if _, err := r.octets(18); err != nil {
			return err
		}
		return r.skipExt(e)
	case 3: // netBios
		_, err := r.octets(16)
		return err
	default: // iPSourceRouteAddress
		e, _, err := r.seq(true, 0)
		if err != nil {
			return err
		}
		if err := r.skip(1); err != nil { // routing
			return err
		}
		if _, err := r.octets(6); err != nil {
			return err
		}
		n, err := r.length()
		if err != nil {
			return err
		}
		if _, err := r.octets(4 * n); err != nil {
			return err
		}
		return r.skipExt(e)
	}
}

// nonStandard245 walks H.245's NonStandardParameter (not extensible).
func nonStandard245(r *reader) error {
	i, _, err := r.choice(false, 2)
	if err != nil {
		return err
	}
	if i == 0 {
		err = r.oid()
	} else {
		err = h221(r, false)
	}
	if err != nil {
		return err
	}
	_, _, err = r.octetString(0, -1)
	return err
}

func nonStandardList245(r *reader) error {
	n, err := r.length()
	if err != nil {
		return err
	}
	for ; n > 0; n-- {
		if err := nonStandard245(r); err != nil {
			return err
		}
	}
	return nil
}

func h222(r *reader) error {
	e, o, err := r.seq(true, 3)
	if err != nil {
		return err
	}
	if _, err := r.cint(0, 65535); err != nil { // resourceID
		return err
	}
	if _, err := r.cint(0, 8191); err != nil { // subChannelID
		return err
	}
	if has(o, 3, 0) {
		if _, err := r.cint(0, 8191); err != nil {
			return err
		}
	}
	for i := 1; i < 3; i++ {
		if has(o, 3, i) {
			if _, _, err := r.octetString(0, -1); err != nil {
				return err
			}
		}
	}
	return r.skipExt(e)
}

// dataType walks the DataType of a logical channel: null, audio, H.261
// video or non-standard; other root alternatives stop the walk.
func dataType(r *reader) error {
	i, ext, err := r.choice(true, 6)
	if err != nil {
		return err
	}
	if ext {
		_, err := r.open()
		return err
	}
	switch i {
	case 0:
		return nonStandard245(r)
	case 1: // nullData
		return nil
	case 2:
		return videoCapability(r)
	case 3:
		return audioCapability(r)
	}
	return errPER
}

func audioCapability(r *reader) error {
	i, ext, err := r.choice(true, 14)
	if err != nil {
		return err
	}
	if ext {
		_, err := r.open()
		return err
	}
	switch i {
	case 0:
		return nonStandard245(r)
	case 8: // g7231
		if _, err := r.cint(1, 256); err != nil {
			return err
		}
		return r.skip(1)
	case 12: // is11172AudioCapability
		e, _, err := r.seq(true, 0)
		if err != nil {
			return err
		}
		if err := r.skip(8); err != nil {
			return err
		}
		if _, err := r.cint(1, 448); err != nil {
			return err
		}
		return r.skipExt(e)
	case 13: // is13818AudioCapability
		e, _, err := r.seq(true, 0)
		if err != nil {
			return err
		}
		if err := r.skip(20); err != nil {
			return err
		}
		if _, err := r.cint(1, 1130); err != nil {
			return err
		}
		return r.skipExt(e)
	}
	// G.711, G.722, G.728, G.729: INTEGER (1..256) frames per packet.
	_, err = r.cint(1, 256)
	return err
}

func videoCapability(r *reader) error {
	i, ext, err := r.choice(true, 5)
	if err != nil {
		return err
	}
	if ext {
		_, err := r.open()
		return err
	}
	switch i {
	case 0:
		return nonStandard245(r)
	case 1: // h261VideoCapability
		e, o, err := r.seq(true, 2)
		if err != nil {
			return err
		}
		for j := 0; j < 2; j++ {
			if has(o, 2, j) {
				if _, err := r.cint(1, 4); err != nil {
					return err
				}
			}
		}
		if err := r.skip(1); err != nil {
			return err
		}
		if _, err := r.cint(1, 19200); err != nil {
			return err
		}
		if err := r.skip(1); err != nil {
			return err
		}
		return r.skipExt(e)
	}
	return errPER // H.262, H.263, IS 11172 video: not walked
}
