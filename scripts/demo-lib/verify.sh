# shellcheck shell=bash
# scripts/demo-lib/verify.sh — #19 verification and automatic rollback in the demo (sourced by
# scripts/demo; uses its helpers: start, free_port, act_run, timeline, fail, tag_commit, ...).
#
# prod declares one HTTP probe (`verify:` in .github/gitops.yml) of a tiny server on 127.0.0.1
# that serves what prod's image serves: it reads the image recorded in prod's Terraform state
# (moto S3), pulls its layer from the registry and answers with the app's index.html (status 500
# for the broken page). The bad change fails prod's verification; deploy.yml's auto-rollback
# job holds prod and dispatches rollback.yml to `previous`; the demo runs that dispatch (as
# GitHub would deliver it) and the rollback passes its verification.

VERIFY_WINDOW=2s
VERIFY_SUMMARY=() # key=value lines for the demo's --summary

# Start the app server; sets VERIFY_URL.
verify_start_app_server() {
  local port; port=$(free_port)
  cat > "$WORK/app-server.py" <<'PY'
import base64, gzip, http.server, io, json, subprocess, sys, tarfile, urllib.request
port, moto, region, registry, account, s3_user, s3_token = sys.argv[1:8]
auth = "Basic " + base64.b64encode(f"AWS:{account}-auth-token".encode()).decode()
def served(env):
    # prod's state, read in prod's account (as Core there), and its image from prod's registry.
    state = subprocess.run(["curl", "-sf", "--aws-sigv4", f"aws:amz:{region}:s3", "--user", s3_user,
                            "-H", f"x-amz-security-token: {s3_token}",
                            f"{moto}/gitops-{env}-tfstate/app/{env}/terraform.tfstate"], capture_output=True, check=True).stdout
    repo, digest = json.loads(state)["outputs"]["image"]["value"].split("/", 1)[1].split("@")
    def get(path, accept=None):
        req = urllib.request.Request(f"http://{registry}/v2/{repo}/{path}", headers={"Authorization": auth})
        if accept:
            req.add_header("Accept", accept)
        return urllib.request.urlopen(req, timeout=10).read()
    manifest = json.loads(get(f"manifests/{digest}", "application/vnd.oci.image.manifest.v1+json"))
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(get(f"blobs/{manifest['layers'][0]['digest']}")))) as t:
        return t.extractfile("srv/app/index.html").read()
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        try:
            body = served(self.path.strip("/") or "prod")
            status = 500 if body.startswith(b"500") else 200
        except Exception as e:  # no state yet, no image: not healthy
            body, status = str(e).encode(), 503
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(port)), H).serve_forever()
PY
  local auth=${ACCOUNT_AUTH[${ACCOUNT_OF[prod]}]}
  start app-server "$VENV/bin/python" "$WORK/app-server.py" "$port" "$MOTO" "$REGION" "${REGISTRY_OF[prod]}" \
    "${ACCOUNT_OF[prod]}" "${auth% *}" "${auth#* }"
  VERIFY_URL="http://127.0.0.1:$port/prod"
}

# Append prod's verify block to the environments file (prod is its last entry).
verify_append_config() { # file
  printf '%s\n' '    verify:' "      window: $VERIFY_WINDOW" '      interval: 1s' '      auto-rollback: true' \
    '      http:' "        - { name: app, url: \"$VERIFY_URL\", body: hello, successes: 1, timeout: 2s }" >> "$1"
}

# The bad change reaches prod (with the freeze override), fails its verification, and is rolled
# back automatically; prod is on hold.
verify_bad_deploy_rolls_back() { # override good good_digest
  local override=$1 good=$2 good_digest=$3
  DISPATCH_INPUTS="{\"override-window-reason\":\"$override\"}" act_run deploy-prod workflow_dispatch deploy.yml prod prod
  [ "$LAST_RC" != 0 ] || fail "the bad deploy of prod passed its verification: see $LAST_LOG"
  local bad=$LAST_SHA
  [ "$(tag_commit deploy/prod/current)" = "$bad" ] || fail "the applied bad deploy was not recorded as deploy/prod/current"
  git -C "$APP" fetch -q -f origin tag deploy/prod/current
  local msg; msg=$(git -C "$APP" cat-file -p deploy/prod/current)
  grep -q "^Window-Override: $override$" <<<"$msg" || fail "deploy/prod/current does not record the override"
  grep -q '^Verification: failed$' <<<"$msg" || fail "deploy/prod/current does not record the failed verification"
  grep -q '`prod` FAILED verification' "$LAST_LOG" || fail "the deploy failed, but not its verification: see $LAST_LOG"
  VERIFY_SUMMARY+=("verified.bad=failed")
  timeline "deploy (override)" prod "$bad" "$(state_image prod | sed 's/.*@//')" "$(latest_history prod)" "verify FAILED: $(grep -o 'http app: [^;(]*' <<<"$msg" | head -1); account ${ACCOUNT_OF[prod]}"
  grep -q 'rollback.yml dispatched on `prod`' "$LAST_LOG" || fail "the auto-rollback job did not dispatch rollback.yml: see $LAST_LOG"
  [ -n "$(remote_tag deploy/prod/hold)" ] || fail "the failed verification did not put prod on hold"
  timeline "auto-rollback" prod "$bad" "-" "deploy/prod/hold" "held; rollback.yml dispatched -> previous"
  # GitHub delivers the dispatch (the inputs tag-deploy auto-rollback sent): its plan would
  # destroy a stateful resource, so it is refused until the operator allows the data loss.
  plan_review_rollback "automatic rollback: verification of ${bad:0:7} failed" "auto-rollback (data loss)"
  [ "$(tag_commit deploy/prod/current)" = "$good" ] || fail "after the rollback deploy/prod/current is not the previous deploy ($good)"
  [ "$(state_image prod | sed 's/.*@//')" = "$good_digest" ] || fail "after the rollback prod's state does not record the previous image $good_digest"
  git -C "$APP" fetch -q -f origin tag deploy/prod/current
  git -C "$APP" cat-file -p deploy/prod/current | grep -q '^Verification: passed$' || fail "the rollback's verification did not pass"
  VERIFY_SUMMARY+=("verified.rollback=passed")
  local served; served=$(curl -sf --max-time 10 "$VERIFY_URL") || fail "prod does not serve after the rollback"
  [ "$served" = "hello from v2" ] || fail "after the rollback prod serves '$served'"
  [ -n "$(remote_tag deploy/prod/hold)" ] || fail "prod is not on hold after the rollback"
  timeline "rollback prod -> previous" prod "$good" "$good_digest" "$(latest_history prod)" "verified: serves '$served'; on hold"
}
