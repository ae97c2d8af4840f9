# shellcheck shell=bash
# scripts/demo-lib/github-api.sh — the demo's GitHub REST API (sourced by scripts/demo).
#
# A STATEFUL GitHub for the run, without a second fake: the test suite's scenario fake
# (tests/it/support/github_fake.rs, compiled into `gitops-dev github-fake` from that one file;
# every answer starts from the example GitHub's own OpenAPI description gives) behind
# `prism proxy`, which validates every request AND every response against the committed subset
# of GitHub's description. The binaries talk to Prism only; a call the fake has no route for is
# answered 404 "fake: no route" (and fails the step that made it). What the run left in GitHub
# (issues, comments, deployments) is read back from the fake's own `/__fake/state` route, called
# directly, never through Prism.
#
#   github_api_start       (stand-ins) choose the fake's port, start Prism in front of it
#   github_api_start_fake  (once the binaries are built) start the fake
#   github_api_state       print the fake's state (JSON)

github_api_start() {
  GH_FAKE_PORT=$(free_port)
  GH_API_PORT=$(free_port)
  start github-api prism proxy "$ROOT/tests/fixtures/github-openapi/api.github.com.subset.json" \
    "http://127.0.0.1:$GH_FAKE_PORT" -h 127.0.0.1 -p "$GH_API_PORT" --errors --cors false
  # shellcheck disable=SC2034 # read by scripts/demo's act_run
  GITHUB_API_URL_DEMO=http://127.0.0.1:$GH_API_PORT
}

github_api_start_fake() {
  local dev=$BIN_DIR/gitops-dev
  [ -x "$dev" ] || fail "$dev does not exist: the GitHub API fake is built with the binaries (cargo build --bins)"
  start github-fake "$dev" github-fake --spec "$ROOT/tests/fixtures/github-openapi/api.github.com.subset.json" \
    --port "$GH_FAKE_PORT" --port-file "$WORK/github-fake.port"
  local _
  for _ in $(seq 200); do [ -s "$WORK/github-fake.port" ] && break; sleep 0.05; done
  [ -s "$WORK/github-fake.port" ] || fail "the GitHub API fake did not start (see $WORK/logs/github-fake.log)"
}

github_api_state() { curl -sf --max-time 5 "http://127.0.0.1:$GH_FAKE_PORT/__fake/state"; }
