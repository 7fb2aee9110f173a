#!/usr/bin/env python3
"""The peer's side of docs/performance.md: Reticulum (rns) and LXMF from
PyPI, two processes on loopback joined by a TCP interface, the receiver's
LXMF router taking N messages of SIZE bytes that the sender's router sends
DIRECT (over an RNS link). Prints one line in the format meshpost-bench
prints, so the two can be compared in the same run.

It does not tune Reticulum beyond what a user would (default config, one
TCP interface) and does not measure the backlog case.

usage: lxmf_bench.py [--messages N] [--size BYTES] [--threads T] [--dir DIR]
(T sending threads, 32 by default, as issue 12 measured it)
"""
import argparse
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import threading
import time


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def rns_config(path, iface):
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "config"), "w") as f:
        f.write("[reticulum]\n  enable_transport = False\n  share_instance = No\n\n"
                "[logging]\n  loglevel = 2\n\n[interfaces]\n" + iface)


def emit(obj):
    """One result line; Reticulum logs to stdout too, so ours are marked."""
    print("BENCH " + json.dumps(obj), flush=True)


def read_bench(pipe):
    for line in pipe:
        if line.startswith("BENCH "):
            return json.loads(line[6:])
    return {}


def cpu_s():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def receiver(args):
    import RNS
    import LXMF
    rns_config(args.dir + "/r", "  [[tcp]]\n    type = TCPServerInterface\n    enabled = yes\n    listen_ip = 127.0.0.1\n"
               f"    listen_port = {args.port}\n")
    RNS.Reticulum(args.dir + "/r")
    router = LXMF.LXMRouter(storagepath=args.dir + "/r/lxmf")
    ident = RNS.Identity()
    arrived = {}
    start_cpu = [None]

    def delivered(m):
        try:
            i = int(m.content_as_string().split(" ")[1])
        except (ValueError, IndexError):
            return
        if start_cpu[0] is None:
            start_cpu[0] = cpu_s()
        arrived.setdefault(i, time.time())

    dest = router.register_delivery_identity(ident, display_name="bench-r")
    router.register_delivery_callback(delivered)
    emit({"dest": dest.hash.hex()})
    deadline = time.time() + args.timeout
    last_announce = 0
    while len(arrived) < args.messages and time.time() < deadline:
        if time.time() - last_announce > 2:
            router.announce(dest.hash)
            last_announce = time.time()
        time.sleep(0.01)
    emit({"arrived": arrived, "cpu_s": cpu_s() - (start_cpu[0] or cpu_s()),
          "rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss})
    os._exit(0)


def sender(args):
    import RNS
    import LXMF
    rns_config(args.dir + "/s", "  [[tcp]]\n    type = TCPClientInterface\n    enabled = yes\n    target_host = 127.0.0.1\n"
               f"    target_port = {args.port}\n")
    RNS.Reticulum(args.dir + "/s")
    router = LXMF.LXMRouter(storagepath=args.dir + "/s/lxmf")
    me = router.register_delivery_identity(RNS.Identity(), display_name="bench-s")
    dest_hash = bytes.fromhex(args.dest)
    deadline = time.time() + 60
    while not RNS.Transport.has_path(dest_hash) and time.time() < deadline:
        RNS.Transport.request_path(dest_hash)
        time.sleep(0.2)
    ident = RNS.Identity.recall(dest_hash)
    if ident is None:
        emit({"error": "no path to the receiver"})
        os._exit(1)
    dest = RNS.Destination(ident, RNS.Destination.OUT, RNS.Destination.SINGLE, "lxmf", "delivery")
    c0 = cpu_s()
    sent = {}

    def send(ids):
        for i in ids:
            body = f"bench {i} "
            body += "x" * max(0, args.size - len(body))
            m = LXMF.LXMessage(dest, me, body, "", desired_method=LXMF.LXMessage.DIRECT)
            sent[i] = time.time()
            router.handle_outbound(m)
    # handle_outbound takes its time per message: several threads call it.
    threads = [threading.Thread(target=send, args=(range(t, args.messages, args.threads),))
               for t in range(args.threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Until the orchestrator stops us: the router sends from its own thread.
    emit({"sent": sent})
    # Our CPU so far, rewritten every 100 ms for the orchestrator to read.
    while True:
        time.sleep(0.1)
        with open(args.dir + "/s/cpu.tmp", "w") as f:
            json.dump({"cpu_s": cpu_s() - c0, "rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}, f)
        os.replace(args.dir + "/s/cpu.tmp", args.dir + "/s/cpu.json")


def orchestrate(args):
    shutil.rmtree(args.dir, ignore_errors=True)
    os.makedirs(args.dir)
    port = free_port()
    me = [sys.executable, os.path.abspath(__file__), "--messages", str(args.messages), "--size", str(args.size),
          "--dir", args.dir, "--port", str(port), "--timeout", str(args.timeout), "--threads", str(args.threads)]
    r = subprocess.Popen(me + ["--role", "receiver"], stdout=subprocess.PIPE, text=True)
    dest = read_bench(r.stdout)["dest"]
    s = subprocess.Popen(me + ["--role", "sender", "--dest", dest], stdout=subprocess.PIPE, text=True)
    sent = read_bench(s.stdout).get("sent", {})
    result = read_bench(r.stdout)
    time.sleep(0.3)
    try:
        with open(args.dir + "/s/cpu.json") as f:
            s_cpu = json.load(f)
    except (OSError, ValueError):
        s_cpu = {}
    s.kill()
    r.wait()
    arrived = {int(k): v for k, v in result["arrived"].items()}
    sent = {int(k): v for k, v in sent.items()}
    n = len(arrived)
    lat = sorted((arrived[i] - sent[i]) * 1e3 for i in arrived if i in sent)
    start = min(sent.values()) if sent else 0
    secs = (max(arrived.values()) - start) if arrived else float("nan")

    def pct(p):
        return lat[round((len(lat) - 1) * p)] if lat else float("nan")
    print(f"peer=lxmf messages={args.messages} size={args.size} threads={args.threads} delivered={n} seconds={secs:.3f} "
          f"msg_per_s={n / secs if secs else 0:.0f} p50_ms={pct(0.5):.1f} p99_ms={pct(0.99):.1f} max_ms={pct(1.0):.1f}")
    per = max(n, 1)
    print(f"  sender: cpu_ms={s_cpu.get('cpu_s', float('nan')) * 1e3:.0f} "
          f"cpu_us_per_msg={s_cpu.get('cpu_s', float('nan')) * 1e6 / per:.0f} rss_kib={s_cpu.get('rss_kib')}")
    print(f"  receiver: cpu_ms={result['cpu_s'] * 1e3:.0f} cpu_us_per_msg={result['cpu_s'] * 1e6 / per:.0f} "
          f"rss_kib={result['rss_kib']}")
    return 0 if n == args.messages else 1


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--messages", type=int, default=2000)
    p.add_argument("--size", type=int, default=200)
    p.add_argument("--dir", default="/tmp/lxmf-bench")
    p.add_argument("--timeout", type=int, default=600)
    p.add_argument("--role", default="orchestrate")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--dest", default="")
    p.add_argument("--threads", type=int, default=32)
    args = p.parse_args()
    if args.role == "receiver":
        receiver(args)
    elif args.role == "sender":
        sender(args)
    else:
        sys.exit(orchestrate(args))


if __name__ == "__main__":
    main()
