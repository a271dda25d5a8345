//go:build lab

package portmaplab

import (
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"time"
)

// The test binary doubles as the small programs the tests run inside the
// lab's namespaces (PGPM_HELPER names which):
//
//	serve NAME TCPPORT UDPPORT  TCP: write "NAME tcp\n"; UDP: answer "NAME udp"
//	tcpget ADDR:PORT            print what the server writes (2 s), or fail
//	udpx ADDR:PORT HEX MS       send HEX, print the answer's hex, or fail
//	listen PORT MS [GROUP]      print the hex of each datagram to PORT for MS
//	                            ms (joining GROUP on eth0 if given)
const helperEnv = "PGPM_HELPER"

func helper(args []string) int {
	fail := func(err error) int { fmt.Fprintln(os.Stderr, err); return 1 }
	switch os.Getenv(helperEnv) {
	case "serve":
		name := args[0]
		ln, err := net.Listen("tcp4", ":"+args[1])
		if err != nil {
			return fail(err)
		}
		uc, err := net.ListenPacket("udp4", ":"+args[2])
		if err != nil {
			return fail(err)
		}
		go func() {
			buf := make([]byte, 1500)
			for {
				_, from, err := uc.ReadFrom(buf)
				if err != nil {
					return
				}
				uc.WriteTo([]byte(name+" udp"), from)
			}
		}()
		fmt.Println("serving")
		for {
			c, err := ln.Accept()
			if err != nil {
				return fail(err)
			}
			fmt.Fprintf(c, "%s tcp\n", name)
			c.Close()
		}
	case "tcpget":
		c, err := net.DialTimeout("tcp4", args[0], 2*time.Second)
		if err != nil {
			return fail(err)
		}
		c.SetDeadline(time.Now().Add(2 * time.Second))
		b, err := io.ReadAll(c)
		if err != nil {
			return fail(err)
		}
		fmt.Print(string(b))
		return 0
	case "udpx":
		ms, _ := strconv.Atoi(args[2])
		msg, err := hex.DecodeString(args[1])
		if err != nil {
			return fail(err)
		}
		c, err := net.Dial("udp4", args[0])
		if err != nil {
			return fail(err)
		}
		c.Write(msg)
		c.SetReadDeadline(time.Now().Add(time.Duration(ms) * time.Millisecond))
		buf := make([]byte, 2048)
		n, err := c.Read(buf)
		if err != nil {
			return fail(fmt.Errorf("no answer: %w", err))
		}
		fmt.Println(hex.EncodeToString(buf[:n]))
		return 0
	case "listen":
		ms, _ := strconv.Atoi(args[1])
		var c net.PacketConn
		var err error
		if len(args) > 2 {
			port, _ := strconv.Atoi(args[0])
			ifi, ierr := net.InterfaceByName("eth0")
			if ierr != nil {
				return fail(ierr)
			}
			c, err = net.ListenMulticastUDP("udp4", ifi, &net.UDPAddr{IP: net.ParseIP(args[2]), Port: port})
		} else {
			c, err = net.ListenPacket("udp4", ":"+args[0])
		}
		if err != nil {
			return fail(err)
		}
		fmt.Println("listening")
		end := time.Now().Add(time.Duration(ms) * time.Millisecond)
		buf := make([]byte, 2048)
		for {
			c.SetReadDeadline(end)
			n, from, err := c.ReadFrom(buf)
			if err != nil {
				return 0
			}
			fmt.Println(from, hex.EncodeToString(buf[:n]))
		}
	}
	return fail(fmt.Errorf("unknown helper %q", os.Getenv(helperEnv)))
}
