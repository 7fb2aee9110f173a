#!/usr/bin/env python3
"""Looks at meshpost's mDNS service with python-zeroconf, an independent
mDNS/DNS-SD implementation, and prints what it sees as JSON lines.

  zeroconf_probe.py resolve SECONDS   browse _meshpost._udp and resolve each
                                      instance (addresses, port, TXT)
  zeroconf_probe.py types SECONDS     service-type enumeration
  zeroconf_probe.py watch SECONDS     print "added"/"removed" events

Used by tests/mdns_resolve.rs; it only reports, the test decides.
"""
import json
import sys
import threading
import time

from zeroconf import IPVersion, ServiceBrowser, ServiceStateChange, Zeroconf, ZeroconfServiceTypes

SERVICE = "_meshpost._udp.local."


def say(obj):
    print(json.dumps(obj), flush=True)


def resolve(zc, seconds):
    done = threading.Event()
    seen = set()

    def changed(zeroconf, service_type, name, state_change):
        if state_change is ServiceStateChange.Added and name not in seen:
            seen.add(name)
            threading.Thread(target=lookup, args=(name,), daemon=True).start()

    def lookup(name):
        info = zc.get_service_info(SERVICE, name, timeout=int(seconds * 1000))
        if info is None:
            say({"unresolved": name})
            return
        say({
            "name": name,
            "server": info.server,
            "port": info.port,
            "addresses": info.parsed_addresses(),
            "txt": {k.decode(): (v or b"").decode() for k, v in info.properties.items()},
        })
        done.set()

    ServiceBrowser(zc, SERVICE, handlers=[changed])
    done.wait(seconds)


def watch(zc, seconds):
    def changed(zeroconf, service_type, name, state_change):
        say({"event": state_change.name.lower(), "name": name, "t": time.monotonic()})

    ServiceBrowser(zc, SERVICE, handlers=[changed])
    time.sleep(seconds)


def main():
    mode, seconds = sys.argv[1], float(sys.argv[2])
    zc = Zeroconf(ip_version=IPVersion.All)
    try:
        if mode == "resolve":
            resolve(zc, seconds)
        elif mode == "types":
            say({"types": list(ZeroconfServiceTypes.find(zc=zc, timeout=seconds))})
        elif mode == "watch":
            say({"event": "ready"})
            watch(zc, seconds)
        else:
            sys.exit("unknown mode " + mode)
    finally:
        zc.close()


if __name__ == "__main__":
    main()
