#!/usr/bin/python3
"""Crafted IPsec traffic for the passgate lab: raw ESP, IKE on UDP 500, AH.

Run with Debian's /usr/bin/python3, which has scapy (python3-scapy).

  server --addr A            in the server namespace: answers raw ESP (protocol
                             50) with ESP carrying a different SPI (one per
                             client SPI and source) and the payload echoed;
                             answers IKEv2 requests on UDP 500 (IKE_SA_INIT
                             with the initiator's SPI and a new responder SPI,
                             later requests with both SPIs); records AH
                             (protocol 51). Prints "ready" once every socket
                             is bound, then one JSON object per packet
                             received, until SIGTERM.
  esp --server S --spi HEX --count N --token T --timeout SECS
                             sends N raw ESP packets with that SPI and payload
                             "T:seq", prints what came back as JSON.
  ike --server S --sport P --ispi HEX --rounds R --timeout SECS
                             sends an IKE_SA_INIT request from UDP port P
                             (retransmitted every second until answered), and
                             for rounds 2 and up an IKE_AUTH-like request with
                             both SPIs; prints the responses as JSON.
  ah --server S --spi HEX --count N --token T
                             sends N AH packets; prints {"sent": N}.

Every packet is built and parsed with scapy; the sockets are plain raw and UDP
sockets, so the kernel adds the IP header with the host's own address.
"""

import argparse
import json
import os
import select
import signal
import socket
import struct
import sys
import time

from scapy.contrib.ikev2 import IKEv2, IKEv2_payload_Nonce
from scapy.layers.inet import IP
from scapy.layers.ipsec import AH, ESP

PROTO_ESP = 50
PROTO_AH = 51
IKE_FLAG_INITIATOR = 0x08
IKE_FLAG_RESPONSE = 0x20
IKE_SA_INIT = 34
IKE_AUTH = 35


def emit(obj):
    sys.stdout.write(json.dumps(obj, sort_keys=True) + "\n")
    sys.stdout.flush()


def ip_payload(data):
    """Splits what a raw IPv4 socket returns into (source, payload)."""
    ip = IP(data)
    return ip.src, bytes(ip.payload)


def esp_fields(payload):
    esp = ESP(payload)
    data = esp.data if isinstance(esp.data, bytes) else bytes(esp.data)
    return esp.spi, esp.seq, data


def build_esp(spi, seq, data):
    return bytes(ESP(spi=spi, seq=seq, data=data))


def build_ah(spi, seq, data):
    # Next header 59 (none); payload length in 32-bit words minus 2:
    # 12 fixed bytes + 12 bytes of ICV = 24 bytes = 6 words -> 4.
    return bytes(AH(nh=59, payloadlen=4, spi=spi, seq=seq, icv=b"\x00" * 12) / data)


def build_ike(ispi, rspi, exch, flags, msgid, nonce):
    pkt = IKEv2(init_SPI=ispi, resp_SPI=rspi, exch_type=exch, flags=flags, id=msgid) / IKEv2_payload_Nonce(load=nonce)
    return bytes(pkt)


def parse_ike(data):
    if len(data) < 28:
        return None
    ike = IKEv2(data)
    ispi = bytes(ike.init_SPI).ljust(8, b"\x00")
    rspi = bytes(ike.resp_SPI).ljust(8, b"\x00")
    return {
        "ispi": ispi.hex(),
        "rspi": rspi.hex(),
        "exch": int(ike.exch_type),
        "flags": int(ike.flags),
        "id": int(ike.id),
    }


# ---------------------------------------------------------------- server


def server(args):
    ike = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    ike.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ike.bind((args.addr, args.ike_port))
    esp = socket.socket(socket.AF_INET, socket.SOCK_RAW, PROTO_ESP)
    ah = socket.socket(socket.AF_INET, socket.SOCK_RAW, PROTO_AH)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print("ready", flush=True)

    esp_spis = {}  # (src, client spi) -> reply spi
    ike_spis = {}  # (src, sport, ispi) -> responder spi
    while True:
        readable, _, _ = select.select([ike, esp, ah], [], [])
        for s in readable:
            if s is ike:
                data, (src, sport) = ike.recvfrom(65535)
                try:
                    h = parse_ike(data)
                except Exception as e:  # noqa: BLE001 - report, keep serving
                    emit({"event": "ike-bad", "src": src, "sport": sport, "error": str(e)})
                    continue
                if h is None or not (h["flags"] & IKE_FLAG_INITIATOR) or (h["flags"] & IKE_FLAG_RESPONSE):
                    emit({"event": "ike-ignored", "src": src, "sport": sport, "len": len(data)})
                    continue
                key = (src, sport, h["ispi"])
                if key not in ike_spis:
                    ike_spis[key] = os.urandom(8).hex()
                rspi = ike_spis[key]
                exch = h["exch"]
                reply = build_ike(bytes.fromhex(h["ispi"]), bytes.fromhex(rspi), exch, IKE_FLAG_RESPONSE, h["id"], os.urandom(16))
                ike.sendto(reply, (src, sport))
                emit({"event": "ike", "src": src, "sport": sport, "ispi": h["ispi"], "rspi_in": h["rspi"],
                      "exch": exch, "id": h["id"], "rspi": rspi})
            elif s is esp:
                data, _ = esp.recvfrom(65535)
                src, payload = ip_payload(data)
                if src == args.addr:
                    continue
                spi, seq, body = esp_fields(payload)
                key = (src, spi)
                if key not in esp_spis:
                    r = spi
                    while r == spi or r < 256:
                        r = struct.unpack("!I", os.urandom(4))[0]
                    esp_spis[key] = r
                reply_spi = esp_spis[key]
                esp.sendto(build_esp(reply_spi, seq, b"echo:" + body), (src, 0))
                emit({"event": "esp", "src": src, "spi": "%08x" % spi, "seq": seq,
                      "payload": body.decode("latin-1"), "reply_spi": "%08x" % reply_spi})
            elif s is ah:
                data, _ = ah.recvfrom(65535)
                src, payload = ip_payload(data)
                if src == args.addr:
                    continue
                a = AH(payload)
                emit({"event": "ah", "src": src, "spi": "%08x" % a.spi, "seq": a.seq})


# ---------------------------------------------------------------- clients


def esp_client(args):
    spi = int(args.spi, 16)
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, PROTO_ESP)
    replies = []
    sent = 0
    deadline = time.monotonic() + args.timeout
    next_send = time.monotonic()
    while time.monotonic() < deadline and len(replies) < args.count:
        now = time.monotonic()
        if sent < args.count and now >= next_send:
            sent += 1
            s.sendto(build_esp(spi, sent, ("%s:%d" % (args.token, sent)).encode()), (args.server, 0))
            next_send = now + args.interval
        wait = max(0.0, min(deadline, next_send if sent < args.count else deadline) - time.monotonic())
        r, _, _ = select.select([s], [], [], wait)
        if not r:
            continue
        data, _ = s.recvfrom(65535)
        src, payload = ip_payload(data)
        if src != args.server:
            continue
        rspi, seq, body = esp_fields(payload)
        replies.append({"src": src, "spi": "%08x" % rspi, "seq": seq, "payload": body.decode("latin-1")})
    emit({"sent": sent, "spi": "%08x" % spi, "replies": replies})


def ike_client(args):
    ispi = bytes.fromhex(args.ispi)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", args.sport))
    deadline = time.monotonic() + args.timeout
    replies = []
    others = []
    rspi = b"\x00" * 8
    sent = 0
    for rnd in range(args.rounds):
        exch = IKE_SA_INIT if rnd == 0 else IKE_AUTH
        req = build_ike(ispi, rspi, exch, IKE_FLAG_INITIATOR, rnd, os.urandom(16))
        got = None
        next_send = 0.0
        while got is None and time.monotonic() < deadline:
            now = time.monotonic()
            if now >= next_send:
                s.sendto(req, (args.server, 500))
                sent += 1
                next_send = now + 1.0
            r, _, _ = select.select([s], [], [], max(0.0, min(next_send, deadline) - time.monotonic()))
            if not r:
                continue
            data, (src, sport) = s.recvfrom(65535)
            h = parse_ike(data)
            if h is None:
                continue
            h["src"] = src
            h["sport"] = sport
            if h["ispi"] != ispi.hex() or h["id"] != rnd or not (h["flags"] & IKE_FLAG_RESPONSE):
                others.append(h)  # not the answer to this request: report it
                continue
            got = h
        if got is None:
            break
        replies.append(got)
        rspi = bytes.fromhex(got["rspi"])
    emit({"sport": args.sport, "ispi": ispi.hex(), "sent": sent, "replies": replies, "others": others})


def ah_client(args):
    spi = int(args.spi, 16)
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, PROTO_AH)
    for i in range(1, args.count + 1):
        s.sendto(build_ah(spi, i, ("%s:%d" % (args.token, i)).encode()), (args.server, 0))
        time.sleep(args.interval)
    emit({"sent": args.count, "spi": "%08x" % spi})


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="mode", required=True)
    sv = sub.add_parser("server")
    sv.add_argument("--addr", required=True)
    sv.add_argument("--ike-port", type=int, default=500)
    e = sub.add_parser("esp")
    e.add_argument("--server", required=True)
    e.add_argument("--spi", required=True)
    e.add_argument("--count", type=int, default=3)
    e.add_argument("--token", default="x")
    e.add_argument("--timeout", type=float, default=5)
    e.add_argument("--interval", type=float, default=0.2)
    k = sub.add_parser("ike")
    k.add_argument("--server", required=True)
    k.add_argument("--sport", type=int, default=500)
    k.add_argument("--ispi", required=True)
    k.add_argument("--rounds", type=int, default=2)
    k.add_argument("--timeout", type=float, default=8)
    a = sub.add_parser("ah")
    a.add_argument("--server", required=True)
    a.add_argument("--spi", required=True)
    a.add_argument("--count", type=int, default=3)
    a.add_argument("--token", default="x")
    a.add_argument("--interval", type=float, default=0.1)
    args = p.parse_args()
    {"server": server, "esp": esp_client, "ike": ike_client, "ah": ah_client}[args.mode](args)


if __name__ == "__main__":
    main()
