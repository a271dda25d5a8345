package pppoe

import (
	"bytes"
	"errors"
	"testing"
)

func TestParse(t *testing.T) {
	good := []byte{0x11, CodePADI, 0, 0, 0, 4, 0x01, 0x01, 0, 0, 0xee, 0xee} // padding after LENGTH
	p, err := Parse(good)
	if err != nil {
		t.Fatal(err)
	}
	if len(p) != 10 || p.Code() != CodePADI || p.SessionID() != 0 || p.Length() != 4 || len(p.Payload()) != 4 {
		t.Fatalf("parsed %x: code %x sid %d len %d", []byte(p), p.Code(), p.SessionID(), p.Length())
	}
	for _, tc := range []struct {
		b   []byte
		err error
	}{
		{[]byte{0x11, 0, 0, 1, 0}, ErrShort},
		{[]byte{0x12, 0, 0, 1, 0, 0}, ErrVersion},
		{[]byte{0x21, 0, 0, 1, 0, 0}, ErrVersion},
		{[]byte{0x11, 0, 0, 1, 0, 3, 1, 2}, ErrLength},
	} {
		if _, err := Parse(tc.b); !errors.Is(err, tc.err) {
			t.Errorf("Parse(% x) = %v, want %v", tc.b, err, tc.err)
		}
	}
	s, err := Parse([]byte{0x11, 0, 0x12, 0x34, 0, 2, 0xc0, 0x21})
	if err != nil || s.SessionID() != 0x1234 || s.PPPProtocol() != 0xc021 {
		t.Fatalf("session packet: %v sid %x proto %x", err, s.SessionID(), s.PPPProtocol())
	}
	s.SetSessionID(7)
	if s.SessionID() != 7 {
		t.Fatal("SetSessionID")
	}
}

func TestTags(t *testing.T) {
	var pl []byte
	pl = AppendTag(pl, TagServiceName, nil)
	pl = AppendTag(pl, TagACName, []byte("isp-ac"))
	pl = AppendTag(pl, TagHostUniq, []byte{1, 2, 3, 4})
	pl = AppendTag(pl, TagRelaySessionID, bytes.Repeat([]byte{9}, 12))
	it := Tags(pl)
	var got []Tag
	for it.Next() {
		got = append(got, it.Tag())
		if r := it.Raw(); len(r) != TagHeaderLen+len(it.Tag().Value) {
			t.Fatalf("raw %d bytes for value %d", len(r), len(it.Tag().Value))
		}
	}
	if it.Err() != nil || len(got) != 4 {
		t.Fatalf("walk: %v, %d tags", it.Err(), len(got))
	}
	if got[1].Type != TagACName || string(got[1].Value) != "isp-ac" || len(got[0].Value) != 0 {
		t.Fatalf("tags %+v", got)
	}
	if v, ok, err := FindTag(pl, TagHostUniq); !ok || err != nil || !bytes.Equal(v, []byte{1, 2, 3, 4}) {
		t.Fatalf("FindTag Host-Uniq: %x %v %v", v, ok, err)
	}
	if _, ok, err := FindTag(pl, TagACCookie); ok || err != nil {
		t.Fatalf("FindTag AC-Cookie found %v err %v", ok, err)
	}

	// End-Of-List ends the list, whatever follows.
	eol := AppendTag(AppendTag(AppendTag(nil, TagServiceName, nil), TagEndOfList, nil), TagACName, []byte("hidden"))
	eol = append(eol, 0xff) // even garbage
	if _, ok, err := FindTag(eol, TagACName); ok || err != nil {
		t.Fatalf("tag after End-Of-List: found %v err %v", ok, err)
	}
	if err := CheckTags(eol); err != nil {
		t.Fatal(err)
	}

	// Errors.
	if err := CheckTags(append(AppendTag(nil, TagServiceName, nil), 1, 1)); !errors.Is(err, ErrTagHeader) {
		t.Fatalf("2 bytes left over: %v", err)
	}
	over := AppendTag(nil, TagACName, []byte("abc"))
	over[3] = 4
	if err := CheckTags(over); !errors.Is(err, ErrTagLength) {
		t.Fatalf("overrun: %v", err)
	}
	if _, _, err := FindTag(over, TagHostUniq); !errors.Is(err, ErrTagLength) {
		t.Fatalf("FindTag on overrun: %v", err)
	}
	if err := CheckTags(nil); err != nil {
		t.Fatalf("empty list: %v", err)
	}

	b := make([]byte, 20)
	if n := PutTag(b, TagGenericError, []byte("oops")); n != 8 || !bytes.Equal(b[:8], AppendTag(nil, TagGenericError, []byte("oops"))) {
		t.Fatalf("PutTag wrote %d: % x", n, b[:n])
	}
}

func TestNames(t *testing.T) {
	for c, want := range map[uint8]string{CodePADI: "PADI", CodePADO: "PADO", CodePADR: "PADR", CodePADS: "PADS", CodePADT: "PADT", 0x42: "code 0x42"} {
		if got := CodeName(c); got != want {
			t.Errorf("CodeName(%#x) = %q, want %q", c, got, want)
		}
	}
	for ty, want := range map[uint16]string{TagRelaySessionID: "Relay-Session-Id", TagACCookie: "AC-Cookie", 0xbeef: "tag 0xbeef"} {
		if got := TagName(ty); got != want {
			t.Errorf("TagName(%#x) = %q, want %q", ty, got, want)
		}
	}
	if !IsError(TagGenericError) || IsError(TagHostUniq) {
		t.Error("IsError")
	}
	for r := ReasonNone; r < NumReasons; r++ {
		if r.String() == "" || r.String() == "reason?" {
			t.Errorf("reason %d has no name", r)
		}
	}
}
