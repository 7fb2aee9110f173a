#!/usr/bin/env python3
"""The router side of LuCI for tests: serves the luci-app-meshpost htdocs and
the test host page, and answers ubus JSON-RPC on /ubus the way
uhttpd-mod-ubus (openwrt/uhttpd ubus.c) and rpcd (openwrt/rpcd session.c,
plugin.c, uci.c) do, so the views run against a real daemon through the real
rpcd exec plugin:

- a call is {"jsonrpc":"2.0","id":N,"method":"call","params":[sid, object,
  method, args]}; the answer is {"jsonrpc","id","result":[status, data]}
  (uhttpd's legacy format, which LuCI's rpc.js reads), and an access refusal
  is the JSON-RPC error -32002 "Access denied" (uhttpd checks `session
  access` first);
- session access follows rpcd's ACL files (acl.d/*.json): a session holds
  groups with read and/or write; ubus object and method names match as
  fnmatch patterns; the uci object itself is reachable (luci-base grants
  it), and uci.c then checks the config name against the group's uci list
  (read for get/changes, write for set/add/delete/apply);
- object "meshpost" is the exec plugin (plugin.c): `PLUGIN call METHOD`, the
  arguments plus "ubus_rpc_session" as one JSON object on stdin, stdout must
  be one JSON object (else status 2, none: 5);
- object "uci" stages changes per config until apply, which writes the file
  (in UCI's export form) and then signals the daemon as procd's reload
  trigger does (the init script sets reload_signal HUP).

It is a test fixture: no login, no batching, no rollback timer.
"""
import argparse
import fnmatch
import json
import os
import signal
import subprocess
from http.server import BaseHTTPRequestHandler, HTTPServer

UBUS_OK, UBUS_INVALID_ARGUMENT, UBUS_NOT_FOUND, UBUS_NO_DATA = 0, 2, 4, 5


def parse_uci(text):
    """Sections of a UCI file in the simple form this fixture writes and
    tests start from: config/option/list lines with quoted or bare values.
    (The test compares every saved file with the real libuci.)"""
    sections, cur = [], None
    for line in text.splitlines():
        words = split_words(line)
        if not words:
            continue
        if words[0] == "config":
            cur = {".type": words[1], ".name": words[2] if len(words) > 2 else None}
            sections.append(cur)
        elif words[0] == "option" and cur is not None:
            cur[words[1]] = words[2] if len(words) > 2 else ""
        elif words[0] == "list" and cur is not None:
            cur.setdefault(words[1], [])
            if isinstance(cur[words[1]], list):
                cur[words[1]].append(words[2] if len(words) > 2 else "")
    values, anon = {}, 0
    for i, s in enumerate(sections):
        name = s[".name"]
        s[".anonymous"] = name is None
        if name is None:
            name = "cfg%02x%04x" % (i, anon)
            anon += 1
        s[".name"], s[".index"] = name, i
        values[name] = s
    return values


def split_words(line):
    out, i, n = [], 0, len(line)
    while i < n:
        c = line[i]
        if c in " \t":
            i += 1
        elif c == "#":
            break
        elif c in "'\"":
            j = line.index(c, i + 1)
            out.append(line[i + 1:j])
            i = j + 1
        else:
            j = i
            while j < n and line[j] not in " \t":
                j += 1
            out.append(line[i:j])
            i = j
    return out


def quote(v):
    return "'" + v.replace("'", "'\\''") + "'"


def export_uci(values):
    out = []
    for s in sorted(values.values(), key=lambda s: s[".index"]):
        head = "config " + s[".type"]
        if not s[".anonymous"]:
            head += " " + quote(s[".name"])
        out.append(head)
        for k, v in s.items():
            if k.startswith("."):
                continue
            for item in (v if isinstance(v, list) else [v]):
                out.append("\t%s %s %s" % ("list" if isinstance(v, list) else "option", k, quote(item)))
        out.append("")
    return "\n".join(out)


class Router:
    def __init__(self, args):
        self.args = args
        self.acl = {}
        for f in sorted(os.listdir(args.acl_dir)):
            if f.endswith(".json"):
                with open(os.path.join(args.acl_dir, f)) as fh:
                    self.acl.update(json.load(fh))
        self.sessions = {}
        for spec in args.session:
            sid, grants = spec.split("=", 1)
            group, levels = grants.split(":", 1)
            self.sessions[sid] = (group, levels.split(","))
        self.staged = None

    def allowed(self, sid, scope, obj, func):
        if sid not in self.sessions:
            return False
        group, levels = self.sessions[sid]
        for level in levels:
            grant = self.acl.get(group, {}).get(level, {})
            if scope == "ubus":
                for pat, methods in grant.get("ubus", {}).items():
                    if fnmatch.fnmatchcase(obj, pat) and any(fnmatch.fnmatchcase(func, m) for m in methods):
                        return True
            elif scope == "uci" and func == level and obj in grant.get("uci", []):
                return True
        return False

    def call(self, sid, obj, method, args):
        """Returns (jsonrpc_error or None, status, data)."""
        if obj == "uci":
            return self.uci(sid, method, args)
        if not self.allowed(sid, "ubus", obj, method):
            return (-32002, "Access denied"), None, None
        if obj != "meshpost":
            return (-32000, "Object not found"), None, None
        args = dict(args)
        args["ubus_rpc_session"] = sid
        env = dict(os.environ, MESHPOST_SOCKET=self.args.socket, MESHPOST_BIN=self.args.bin)
        try:
            p = subprocess.run(["sh", self.args.plugin, "call", method], input=json.dumps(args).encode(),
                               capture_output=True, timeout=20, env=env)
        except subprocess.TimeoutExpired:
            return (-32003, "ubus request timed out"), None, None
        if not p.stdout.strip():
            return None, UBUS_NO_DATA, None
        try:
            data = json.loads(p.stdout)
        except ValueError:
            return None, UBUS_INVALID_ARGUMENT, None
        if not isinstance(data, dict):
            return None, UBUS_INVALID_ARGUMENT, None
        return None, UBUS_OK, data

    def load(self):
        with open(self.args.config) as fh:
            return parse_uci(fh.read())

    def uci(self, sid, method, args):
        conf = args.get("config")
        need = "read" if method in ("get", "changes") else "write"
        if method == "apply":
            conf = "meshpost"
        if conf != "meshpost" or not self.allowed(sid, "uci", conf, need):
            return (-32002, "Access denied"), None, None
        if self.staged is None:
            self.staged = self.load()
        v = self.staged
        if method == "get":
            return None, UBUS_OK, {"values": v}
        if method == "set":
            s = v.get(args.get("section"))
            if s is None:
                return None, UBUS_NOT_FOUND, None
            for k, val in args.get("values", {}).items():
                s[k] = val
            return None, UBUS_OK, None
        if method == "add":
            idx = max([s[".index"] for s in v.values()] + [-1]) + 1
            name = args.get("name") or "cfg%02x%04x" % (idx, len(v))
            s = {".type": args["type"], ".name": name, ".anonymous": not args.get("name"), ".index": idx}
            s.update(args.get("values", {}))
            v[name] = s
            return None, UBUS_OK, {"section": name}
        if method == "delete":
            sec = args.get("section")
            if sec not in v:
                return None, UBUS_NOT_FOUND, None
            opts = args.get("options") or ([args["option"]] if args.get("option") else None)
            if opts is None:
                del v[sec]
            else:
                for o in opts:
                    v[sec].pop(o, None)
            return None, UBUS_OK, None
        if method == "apply":
            tmp = self.args.config + ".tmp"
            with open(tmp, "w") as fh:
                fh.write(export_uci(v))
            os.replace(tmp, self.args.config)
            self.staged = None
            if self.args.reload_pid:
                os.kill(self.args.reload_pid, signal.SIGHUP)
            return None, UBUS_OK, None
        return (-32601, "Method not found"), None, None


def handler(router, roots):
    class H(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            path = self.path.split("?")[0]
            for prefix, root in roots:
                if path.startswith(prefix):
                    f = os.path.realpath(os.path.join(root, path[len(prefix):].lstrip("/")))
                    if f.startswith(os.path.realpath(root)) and os.path.isfile(f):
                        body = open(f, "rb").read()
                        self.send_response(200)
                        ctype = "text/html" if f.endswith(".html") else "application/javascript"
                        self.send_header("Content-Type", ctype)
                        self.send_header("Content-Length", str(len(body)))
                        self.end_headers()
                        self.wfile.write(body)
                        return
            self.send_error(404)

        def do_POST(self):
            if not self.path.startswith("/ubus"):
                return self.send_error(404)
            body = self.rfile.read(min(int(self.headers.get("Content-Length", 0)), 65536))
            try:
                req = json.loads(body)
                sid, obj, method, args = req["params"]
                err, status, data = router.call(sid, obj, method, args or {})
            except (ValueError, KeyError, TypeError):
                req, err, status, data = {}, (-32600, "Invalid request"), None, None
            ans = {"jsonrpc": "2.0", "id": req.get("id")}
            if err:
                ans["error"] = {"code": err[0], "message": err[1]}
            else:
                ans["result"] = [status] + ([data] if data else [])
            out = json.dumps(ans).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)
    return H


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--htdocs", required=True)
    ap.add_argument("--host-dir", required=True)
    ap.add_argument("--acl-dir", required=True)
    ap.add_argument("--plugin", required=True)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--socket", required=True)
    ap.add_argument("--config", required=True)
    ap.add_argument("--reload-pid", type=int, default=0)
    ap.add_argument("--session", action="append", default=[])
    args = ap.parse_args()
    router = Router(args)
    roots = [("/luci-static/", os.path.join(args.htdocs, "luci-static")), ("/", args.host_dir)]
    # One request at a time, as uhttpd serves one ubus call per client in
    # turn; the staged uci changes need no locking then.
    srv = HTTPServer(("127.0.0.1", args.port), handler(router, roots))
    print("ready %d" % srv.server_port, flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
