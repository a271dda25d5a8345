package ipsec

import (
	"encoding/binary"
	"testing"
)

func ikeHeader(spiI, spiR uint64, version, flags uint8, length uint32) []byte {
	b := make([]byte, IKEHeaderLen)
	binary.BigEndian.PutUint64(b[0:], spiI)
	binary.BigEndian.PutUint64(b[8:], spiR)
	b[16] = 33 // SA
	b[17] = version << 4
	b[18] = 34 // IKE_SA_INIT
	b[19] = flags
	binary.BigEndian.PutUint32(b[24:], length)
	return b
}

func TestParseIKE(t *testing.T) {
	for _, tc := range []struct {
		name    string
		b       []byte
		wantErr error
		resp    bool
	}{
		{"ikev2 request", ikeHeader(0x1122334455667788, 0, 2, 0x08, 300), nil, false},
		{"ikev2 response", ikeHeader(0x1122334455667788, 0x99, 2, 0x20, 300), nil, true},
		{"ikev1", ikeHeader(1, 0, 1, 0, 28), nil, false},
		{"version 3", ikeHeader(1, 0, 3, 0, 28), ErrVersion, false},
		{"short", ikeHeader(1, 0, 2, 0, 28)[:27], ErrShort, false},
		{"length below header", ikeHeader(1, 0, 2, 0, 27), ErrLength, false},
	} {
		m, err := ParseIKE(tc.b)
		if err != tc.wantErr {
			t.Errorf("%s: err %v, want %v", tc.name, err, tc.wantErr)
			continue
		}
		if err == nil && (m.InitiatorSPI() != binary.BigEndian.Uint64(tc.b) || m.IsResponse() != tc.resp) {
			t.Errorf("%s: spi %x response %v", tc.name, m.InitiatorSPI(), m.IsResponse())
		}
	}
}

func TestClassifyNATT(t *testing.T) {
	ike := append([]byte{0, 0, 0, 0}, ikeHeader(5, 0, 2, 0, 28)...)
	esp := []byte{0xc0, 1, 2, 3, 0, 0, 0, 1, 9, 9}
	for _, tc := range []struct {
		b    []byte
		want Kind
	}{
		{[]byte{0xff}, Keepalive},
		{ike, IKEMessage},
		{ike[:20], Invalid},
		{esp, ESPMessage},
		{[]byte{1, 2}, Invalid},
	} {
		if got := ClassifyNATT(tc.b); got != tc.want {
			t.Errorf("%x: %v, want %v", tc.b, got, tc.want)
		}
	}
}

func FuzzIKE(f *testing.F) {
	f.Add(ikeHeader(0x1122334455667788, 0, 2, 0x08, 300))
	f.Add([]byte{0xff})
	f.Add([]byte{0, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		if m, err := ParseIKE(b); err == nil {
			_ = m.InitiatorSPI() ^ m.ResponderSPI()
			_, _ = m.IsResponse(), m.Length()
		}
		_ = ClassifyNATT(b)
		_, _ = ESPSPI(b)
	})
}

func FuzzESP(f *testing.F) {
	f.Add([]byte{0, 0, 1, 0, 0, 0, 0, 1})
	f.Add([]byte{0, 0, 0, 1, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		spi, err := ESPSPI(b)
		if err == nil && (spi < 256 || len(b) < 8) {
			t.Fatalf("accepted spi %d from %d bytes", spi, len(b))
		}
	})
}
