package upnp

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// SSDP's group and port.
const (
	SSDPGroup = "239.255.255.250"
	SSDPPort  = 1900
	maxAge    = 1800
)

// Device is passgate's IGD as SSDP announces it: two root devices, one
// per IGD version, at their own description URLs.
type Device struct {
	// Base is the HTTP server's URL on the LAN address, e.g.
	// "http://192.168.50.1:5000".
	Base   string
	BootID int // increases at each start (BOOTID.UPNP.ORG)
	seed   [32]byte
}

// NewDevice makes the device; its UUIDs derive from seed (the LAN
// address) so they stay the same across restarts.
func NewDevice(base, seed string, bootID int) *Device {
	return &Device{Base: base, BootID: bootID, seed: sha256.Sum256([]byte(seed))}
}

// UUID of the root (0), WAN (1) or WAN connection (2) device of IGD
// version v.
func (d *Device) UUID(v, which int) string {
	s := d.seed
	s[15] = byte(v<<4 | which)
	s[6] = s[6]&0x0f | 0x50 // name-based (version 5 layout)
	s[8] = s[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", s[0:4], s[4:6], s[6:8], s[8:10], s[10:16])
}

// Location is the description URL of IGD version v.
func (d *Device) Location(v int) string { return fmt.Sprintf("%s/igd%d.xml", d.Base, v) }

// target is one thing SSDP announces: its NT/ST and USN.
type target struct {
	nt, usn string
	v       int
}

func (d *Device) targets() []target {
	var ts []target
	for v := 1; v <= 2; v++ {
		root, wan, conn := "uuid:"+d.UUID(v, 0), "uuid:"+d.UUID(v, 1), "uuid:"+d.UUID(v, 2)
		add := func(nt, udn string) {
			usn := udn
			if nt != udn {
				usn = udn + "::" + nt
			}
			ts = append(ts, target{nt, usn, v})
		}
		vs := strconv.Itoa(v)
		add("upnp:rootdevice", root)
		add(root, root)
		add("urn:schemas-upnp-org:device:InternetGatewayDevice:"+vs, root)
		add(wan, wan)
		add("urn:schemas-upnp-org:device:WANDevice:"+vs, wan)
		add(WANCIF1, wan)
		add(conn, conn)
		add("urn:schemas-upnp-org:device:WANConnectionDevice:"+vs, conn)
		add("urn:schemas-upnp-org:service:WANIPConnection:"+vs, conn)
	}
	return ts
}

const server = "Linux UPnP/1.1 passgate/1"

// MSearch reads an M-SEARCH request and returns its search target.
func MSearch(b []byte) (st string, ok bool) {
	if len(b) > 4096 {
		return "", false
	}
	req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(b)))
	if err != nil || req.Method != "M-SEARCH" || req.Header.Get("Man") != `"ssdp:discover"` {
		return "", false
	}
	st = strings.TrimSpace(req.Header.Get("St"))
	return st, st != ""
}

// Responses are the unicast answers to an M-SEARCH for st: one per
// matching target, all of them for ssdp:all.
func (d *Device) Responses(st string) [][]byte {
	var out [][]byte
	for _, t := range d.targets() {
		if st != "ssdp:all" && st != t.nt {
			continue
		}
		out = append(out, []byte(fmt.Sprintf("HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=%d\r\nEXT:\r\nLOCATION: %s\r\nSERVER: %s\r\nST: %s\r\nUSN: %s\r\nBOOTID.UPNP.ORG: %d\r\nCONFIGID.UPNP.ORG: 1\r\n\r\n",
			maxAge, d.Location(t.v), server, t.nt, t.usn, d.BootID)))
	}
	return out
}

// Notifies are the multicast NOTIFY messages, "ssdp:alive" or
// "ssdp:byebye", one per target.
func (d *Device) Notifies(nts string) [][]byte {
	var out [][]byte
	for _, t := range d.targets() {
		var b strings.Builder
		fmt.Fprintf(&b, "NOTIFY * HTTP/1.1\r\nHOST: %s:%d\r\nNT: %s\r\nNTS: %s\r\nUSN: %s\r\nBOOTID.UPNP.ORG: %d\r\nCONFIGID.UPNP.ORG: 1\r\n", SSDPGroup, SSDPPort, t.nt, nts, t.usn, d.BootID)
		if nts == "ssdp:alive" {
			fmt.Fprintf(&b, "CACHE-CONTROL: max-age=%d\r\nLOCATION: %s\r\nSERVER: %s\r\n", maxAge, d.Location(t.v), server)
		}
		b.WriteString("\r\n")
		out = append(out, []byte(b.String()))
	}
	return out
}

// Description is the device description of IGD version v (1 or 2).
func (d *Device) Description(v int) []byte {
	vs := strconv.Itoa(v)
	minor := "0"
	if v == 2 {
		minor = "1"
	}
	dev := func(typ, uuid, inner string) string {
		return "<device><deviceType>urn:schemas-upnp-org:device:" + typ + ":" + vs + "</deviceType>" +
			"<friendlyName>passgate</friendlyName><manufacturer>passgate</manufacturer><modelName>passgate</modelName>" +
			"<modelNumber>" + vs + "</modelNumber><UDN>uuid:" + uuid + "</UDN>" + inner + "</device>"
	}
	svc := func(typ, id, name, scpd string) string {
		return "<serviceList><service><serviceType>" + typ + "</serviceType><serviceId>urn:upnp-org:serviceId:" + id + "</serviceId>" +
			"<SCPDURL>/" + scpd + ".xml</SCPDURL><controlURL>/ctl/" + name + "</controlURL><eventSubURL>/evt/" + name + "</eventSubURL></service></serviceList>"
	}
	conn := dev("WANConnectionDevice", d.UUID(v, 2), svc("urn:schemas-upnp-org:service:WANIPConnection:"+vs, "WANIPConn1", "WANIPConn", "WANIPConn"+vs))
	wan := dev("WANDevice", d.UUID(v, 1), svc(WANCIF1, "WANCommonIFC1", "WANCommonIFC", "WANCommonIFC")+"<deviceList>"+conn+"</deviceList>")
	root := dev("InternetGatewayDevice", d.UUID(v, 0), "<deviceList>"+wan+"</deviceList>")
	return []byte(`<?xml version="1.0"?>` + "\n" + `<root xmlns="urn:schemas-upnp-org:device-1-0" configId="1"><specVersion><major>1</major><minor>` +
		minor + `</minor></specVersion>` + root + "</root>\n")
}
