package h323

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
)

// writePcap writes IPv4 packets as Ethernet frames to dir/h323.pcap
// (libpcap format: a 24-byte file header, a 16-byte header a record).
func writePcap(t *testing.T, dir string, pkts [][]byte) string {
	t.Helper()
	var b []byte
	hdr := make([]byte, 24)
	binary.LittleEndian.PutUint32(hdr[0:], 0xa1b2c3d4)
	binary.LittleEndian.PutUint16(hdr[4:], 2)
	binary.LittleEndian.PutUint16(hdr[6:], 4)
	binary.LittleEndian.PutUint32(hdr[16:], 65535)
	binary.LittleEndian.PutUint32(hdr[20:], 1) // LINKTYPE_ETHERNET
	b = append(b, hdr...)
	for i, p := range pkts {
		rec := make([]byte, 16)
		binary.LittleEndian.PutUint32(rec[0:], uint32(1700000000+i))
		binary.LittleEndian.PutUint32(rec[8:], uint32(14+len(p)))
		binary.LittleEndian.PutUint32(rec[12:], uint32(14+len(p)))
		b = append(b, rec...)
		b = append(b, 0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00)
		b = append(b, p...)
	}
	path := filepath.Join(dir, "h323.pcap")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}
