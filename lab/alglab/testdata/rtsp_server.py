#!/usr/bin/python3
"""A gst-rtsp-server serving a test tone (PCMU) at rtsp://ADDR:PORT/test.

Usage: rtsp_server.py ADDR PORT. Prints "ready" once it listens; runs until
killed. Media goes over UDP unless the client asks for interleaved TCP.
"""
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
gi.require_version("GstRtsp", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402


def main():
    addr, port = sys.argv[1], sys.argv[2]
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address(addr)
    server.set_service(port)
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(
        "( audiotestsrc is-live=true wave=sine ! audioconvert ! audioresample"
        " ! audio/x-raw,rate=8000,channels=1 ! mulawenc ! rtppcmupay name=pay0 pt=0 )"
    )
    factory.set_shared(True)
    factory.set_protocols(GstRtsp.RTSPLowerTrans.UDP)
    server.get_mount_points().add_factory("/test", factory)
    if server.attach(None) == 0:
        print("attach failed", flush=True)
        sys.exit(1)
    print("ready", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
