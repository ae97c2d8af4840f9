#!/usr/bin/env python3
"""The demo's commit statuses, with state: what the stacks flow needs of GitHub and Prism's
stateless mock cannot give (an apply job reads back the digest its plan job recorded as the
commit status gitops/plan/<env>/<stack>). Every other request is passed on unchanged to the
upstream (Prism, which checks it against GitHub's OpenAPI description). The statuses contract
itself is checked against Prism in the test suite (tests/it/plan_review.rs).

  github-statuses.py --port 0 --port-file FILE --upstream http://127.0.0.1:PRISM --token TOKEN
"""
import argparse
import datetime
import json
import re
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

POST = re.compile(r"^/repos/([^/]+)/([^/]+)/statuses/([0-9a-f]{40})$")
GET = re.compile(r"^/repos/([^/]+)/([^/]+)/commits/([0-9a-f]{40})/statuses(\?.*)?$")
STATES = {"error", "failure", "pending", "success"}
LOCK = threading.Lock()
STATUSES = {}  # sha -> [status], oldest first
CLOCK = [datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--upstream", required=True)
    ap.add_argument("--token", required=True)
    a = ap.parse_args()

    class H(BaseHTTPRequestHandler):
        def log_message(self, fmt, *args):
            print("%s %s" % (self.command, self.path), flush=True)

        def reply(self, code, body):
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def authorised(self):
            ok = self.headers.get("Authorization", "") in ("Bearer " + a.token, "token " + a.token)
            if not ok:
                self.reply(401, {"message": "Bad credentials"})
            return ok

        def body(self):
            n = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(n) if n else b""

        def forward(self):
            req = urllib.request.Request(a.upstream + self.path, data=self.body() or None, method=self.command)
            for k, v in self.headers.items():
                if k.lower() not in ("host", "content-length", "connection"):
                    req.add_header(k, v)
            try:
                with urllib.request.urlopen(req, timeout=30) as r:
                    code, headers, data = r.status, r.headers, r.read()
            except urllib.error.HTTPError as e:
                code, headers, data = e.code, e.headers, e.read()
            self.send_response(code)
            for k, v in headers.items():
                if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self):
            m = POST.match(self.path)
            if not m:
                return self.forward()
            if not self.authorised():
                return
            try:
                s = json.loads(self.body())
            except ValueError:
                return self.reply(400, {"message": "Problems parsing JSON"})
            if s.get("state") not in STATES or not isinstance(s.get("context", ""), str):
                return self.reply(422, {"message": "Validation Failed"})
            with LOCK:
                CLOCK[0] += datetime.timedelta(seconds=1)
                st = {
                    "id": sum(len(v) for v in STATUSES.values()) + 1,
                    "state": s["state"],
                    "context": s.get("context", "default"),
                    "description": s.get("description"),
                    "target_url": s.get("target_url"),
                    "created_at": CLOCK[0].strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "updated_at": CLOCK[0].strftime("%Y-%m-%dT%H:%M:%SZ"),
                }
                STATUSES.setdefault(m.group(3), []).append(st)
            self.reply(201, st)

        def do_GET(self):
            m = GET.match(self.path)
            if not m:
                return self.forward()
            if not self.authorised():
                return
            with LOCK:
                self.reply(200, list(reversed(STATUSES.get(m.group(3), []))))

        do_PATCH = do_PUT = do_DELETE = forward

    srv = ThreadingHTTPServer(("127.0.0.1", a.port), H)
    with open(a.port_file, "w") as f:
        f.write(str(srv.server_address[1]))
    srv.serve_forever()


if __name__ == "__main__":
    main()
