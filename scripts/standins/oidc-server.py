#!/usr/bin/env python3
"""GitHub Actions OIDC token endpoint stand-in (loopback only).

Speaks the runner's protocol: `GET /token?audience=<aud>` with `Authorization: bearer <request
token>` answers `{"count": 1, "value": "<RS256 JWT>"}` carrying GitHub's claim set. Also serves
`/.well-known/openid-configuration` and `/.well-known/jwks` so the JWTs can be verified. The RSA
signing key is generated at start-up and never written anywhere.

Run it with the stand-ins venv (pyjwt + cryptography):
    .venv-standins/bin/python scripts/standins/oidc-server.py --port 0 --port-file /tmp/p

Then, in the job under test:
    ACTIONS_ID_TOKEN_REQUEST_URL=http://127.0.0.1:PORT/token?api-version=2.0
    ACTIONS_ID_TOKEN_REQUEST_TOKEN=<the --request-token value>

Flags (each also read from the environment variable in brackets):
  --port N                 port on 127.0.0.1; 0 picks a free one [OIDC_PORT] (default 0)
  --port-file PATH         write the bound port there once listening [OIDC_PORT_FILE]
  --request-token T        bearer token the runner must present [OIDC_REQUEST_TOKEN]
                           (default `oidc-request-token`); a wrong or missing one gets 401
  --issuer URL             `iss` (default https://token.actions.githubusercontent.com) [OIDC_ISSUER]
  --repository O/R         `repository` (default octo-org/octo-repo) [OIDC_REPOSITORY]
  --repository-id N        `repository_id` (default 123456789) [OIDC_REPOSITORY_ID]
  --repository-owner-id N  `repository_owner_id` (default 987654) [OIDC_REPOSITORY_OWNER_ID]
  --environment NAME       `environment`; empty = no environment claim [OIDC_ENVIRONMENT]
  --ref REF                `ref` (default refs/heads/main) [OIDC_REF]
  --sha SHA                `sha` (default 40 x `a`) [OIDC_SHA]
  --event-name NAME        `event_name` (default push) [OIDC_EVENT_NAME]
  --run-id N               `run_id` (default 4242) [OIDC_RUN_ID]
  --workflow-file F        workflow file for `workflow_ref`/`job_workflow_ref` (default deploy.yml)
  --sub SUB                override `sub`; default derived like GitHub: environment, else
                           pull_request, else ref [OIDC_SUB]
  --immutable-sub          use the immutable `repo:O@owner_id/R@repo_id:...` form of `sub`
  --ttl SECONDS            exp - iat (default 300; negative gives already-expired tokens) [OIDC_TTL]
  --fail-first N           answer the first N token requests with HTTP 500 [OIDC_FAIL_FIRST]
  --claims-dir DIR         also serve `GET /token/<job>`: the claims of DIR/<job>.json (keys
                           repository, environment, ref, sha, event_name, run_id, workflow_file) over the
                           flags' values, so ONE server stands in for many jobs (the demo) [OIDC_CLAIMS_DIR]
  --log PATH               append one JSON line per request: {"n", "path", "audience", "status"}
                           [OIDC_LOG]; tests count these lines to assert "zero requests"

Every issued token has a fresh `jti`, so a client that refetches gets a different JWT.
Stop it with SIGTERM (the test harness kills its process group).
"""

import argparse
import base64
import json
import os
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa


def env(name, default):
    v = os.environ.get(name)
    return default if v is None or v == "" else v


def parse_args():
    p = argparse.ArgumentParser(description="GitHub OIDC token endpoint stand-in")
    p.add_argument("--port", type=int, default=int(env("OIDC_PORT", "0")))
    p.add_argument("--port-file", default=env("OIDC_PORT_FILE", None))
    p.add_argument("--request-token", default=env("OIDC_REQUEST_TOKEN", "oidc-request-token"))
    p.add_argument("--issuer", default=env("OIDC_ISSUER", "https://token.actions.githubusercontent.com"))
    p.add_argument("--repository", default=env("OIDC_REPOSITORY", "octo-org/octo-repo"))
    p.add_argument("--repository-id", default=env("OIDC_REPOSITORY_ID", "123456789"))
    p.add_argument("--repository-owner-id", default=env("OIDC_REPOSITORY_OWNER_ID", "987654"))
    p.add_argument("--environment", default=env("OIDC_ENVIRONMENT", ""))
    p.add_argument("--ref", default=env("OIDC_REF", "refs/heads/main"))
    p.add_argument("--sha", default=env("OIDC_SHA", "a" * 40))
    p.add_argument("--event-name", default=env("OIDC_EVENT_NAME", "push"))
    p.add_argument("--run-id", default=env("OIDC_RUN_ID", "4242"))
    p.add_argument("--workflow-file", default=env("OIDC_WORKFLOW_FILE", "deploy.yml"))
    p.add_argument("--sub", default=env("OIDC_SUB", ""))
    p.add_argument("--immutable-sub", action="store_true")
    p.add_argument("--ttl", type=int, default=int(env("OIDC_TTL", "300")))
    p.add_argument("--fail-first", type=int, default=int(env("OIDC_FAIL_FIRST", "0")))
    p.add_argument("--log", default=env("OIDC_LOG", None))
    p.add_argument("--claims-dir", default=env("OIDC_CLAIMS_DIR", None))
    return p.parse_args()


ARGS = parse_args()
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
KID = uuid.uuid4().hex[:16]
LOCK = threading.Lock()
COUNTER = {"n": 0, "tokens": 0}


def b64u_uint(n):
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def jwks():
    pub = KEY.public_key().public_numbers()
    return {"keys": [{"kty": "RSA", "alg": "RS256", "use": "sig", "kid": KID,
                      "n": b64u_uint(pub.n), "e": b64u_uint(pub.e)}]}


JOB_KEYS = ("repository", "environment", "ref", "sha", "event_name", "run_id", "workflow_file")


def job_settings(job):
    """ARGS with the overrides of the claims file of `job` (None: the flags alone)."""
    if job is None:
        return ARGS
    if not ARGS.claims_dir or not job.replace("-", "").replace("_", "").isalnum():
        return None
    try:
        with open(os.path.join(ARGS.claims_dir, job + ".json"), encoding="utf-8") as f:
            over = json.load(f)
    except (OSError, ValueError):
        return None
    merged = argparse.Namespace(**vars(ARGS))
    for k in JOB_KEYS:
        if k in over:
            setattr(merged, k, str(over[k]))
    return merged


def subject(ARGS):
    if ARGS.sub:
        return ARGS.sub
    owner, name = ARGS.repository.split("/", 1)
    if ARGS.immutable_sub:
        repo = f"{owner}@{ARGS.repository_owner_id}/{name}@{ARGS.repository_id}"
    else:
        repo = ARGS.repository
    if ARGS.environment:
        ctx = f"environment:{ARGS.environment}"
    elif ARGS.event_name == "pull_request":
        ctx = "pull_request"
    else:
        ctx = f"ref:{ARGS.ref}"
    return f"repo:{repo}:{ctx}"


def claims(audience, ARGS):
    now = int(time.time())
    owner = ARGS.repository.split("/", 1)[0]
    wf = f"{ARGS.repository}/.github/workflows/{ARGS.workflow_file}@{ARGS.ref}"
    c = {
        "jti": str(uuid.uuid4()),
        "sub": subject(ARGS),
        "aud": audience,
        "ref": ARGS.ref,
        "sha": ARGS.sha,
        "repository": ARGS.repository,
        "repository_owner": owner,
        "repository_owner_id": ARGS.repository_owner_id,
        "repository_id": ARGS.repository_id,
        "repository_visibility": "private",
        "run_id": ARGS.run_id,
        "run_number": "7",
        "run_attempt": "1",
        "runner_environment": "github-hosted",
        "actor": "octocat",
        "actor_id": "583231",
        "workflow": "deploy",
        "workflow_ref": wf,
        "workflow_sha": ARGS.sha,
        "job_workflow_ref": wf,
        "job_workflow_sha": ARGS.sha,
        "head_ref": "",
        "base_ref": "",
        "event_name": ARGS.event_name,
        "ref_type": "branch",
        "ref_protected": "true",
        "iss": ARGS.issuer,
        "nbf": now - 5,
        "iat": now,
        "exp": now + ARGS.ttl,
    }
    if ARGS.environment:
        c["environment"] = ARGS.environment
    return c


def log_request(entry):
    if not ARGS.log:
        return
    with LOCK:
        with open(ARGS.log, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\n")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "oidc-standin/1"

    def log_message(self, fmt, *args):  # keep stderr quiet; the --log file is the record
        pass

    def send_json(self, status, obj):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        url = urlparse(self.path)
        with LOCK:
            COUNTER["n"] += 1
            n = COUNTER["n"]
        if url.path == "/.well-known/openid-configuration":
            base = ARGS.issuer
            return self.send_json(200, {
                "issuer": base,
                "jwks_uri": f"{base}/.well-known/jwks",
                "subject_types_supported": ["public", "pairwise"],
                "response_types_supported": ["id_token"],
                "claims_supported": ["sub", "aud", "exp", "iat", "iss", "jti", "nbf", "ref",
                                     "sha", "repository", "repository_id", "repository_owner",
                                     "repository_owner_id", "environment", "run_id",
                                     "job_workflow_ref", "event_name"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "scopes_supported": ["openid"],
            })
        if url.path == "/.well-known/jwks":
            return self.send_json(200, jwks())
        job = None
        if url.path.startswith("/token/") and ARGS.claims_dir:
            job = url.path[len("/token/"):]
        elif url.path != "/token":
            return self.send_json(404, {"message": "Not Found"})
        settings = job_settings(job)
        if settings is None:
            return self.send_json(404, {"message": "no claims for this job"})
        q = parse_qs(url.query)
        audience = q.get("audience", [""])[0]
        entry = {"n": n, "path": url.path, "audience": audience}
        auth = self.headers.get("Authorization", "")
        scheme, _, value = auth.partition(" ")
        if scheme.lower() != "bearer" or value != ARGS.request_token:
            entry["status"] = 401
            log_request(entry)
            return self.send_json(401, {"message": "Bad credentials"})
        with LOCK:
            COUNTER["tokens"] += 1
            t = COUNTER["tokens"]
        if t <= ARGS.fail_first:
            entry["status"] = 500
            log_request(entry)
            return self.send_json(500, {"message": "injected failure"})
        if not audience:
            audience = "https://github.com/" + ARGS.repository.split("/", 1)[0]
        token = jwt.encode(claims(audience, settings), KEY, algorithm="RS256", headers={"kid": KID})
        entry["status"] = 200
        log_request(entry)
        return self.send_json(200, {"count": 1, "value": token})


def main():
    server = ThreadingHTTPServer(("127.0.0.1", ARGS.port), Handler)
    server.daemon_threads = True
    port = server.server_address[1]
    if ARGS.port_file:
        tmp = ARGS.port_file + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(str(port))
        os.replace(tmp, ARGS.port_file)
    print(f"oidc-standin listening on http://127.0.0.1:{port}", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
