# shellcheck shell=bash
# The demo's part of #14 (sourced by scripts/demo; uses its helpers act_run, timeline, fail,
# start, free_port, account_s3 and its variables WORK, ROOT, APP, GIT_URL, GIT_TOKEN, MOTO):
# a second app repository, demo/platform, with three Terraform stacks built from terraform_data
# (network -> service through depends-on, and dns, independent) and a local module both network
# and service call. The same deploy.yml as demo/app (which, without `stacks:`, is one stack):
#   1. the first deploy of dev applies every stack, network before service;
#   2. a change to dns alone deploys only dns;
#   3. a change to the shared module re-plans network and service; service's apply fails:
#      network is recorded, deploy/dev/current stays;
#   4. the fixing commit deploys service again (network shows no changes) and the new change;
#   5. promotion of dev to staging (deploy.yml's promote job: only a fully deployed commit) and
#      staging's deploy;
#   6. a rollback of dev to `previous` rolls back only the stacks that differ, in order.
# Every step is asserted on the tags (the stack records, current and its Stack-Applied trailers)
# and on each stack's Terraform state object in moto's S3.

STACKS=(dns network service) # alphabetical, as every list below
PLATFORM_REMOTE=""
# shellcheck disable=SC2034 # scripts/demo writes it into --summary
STACKS_SUMMARY=()

stacks_tag_commit() { git ls-remote "$PLATFORM_REMOTE" "refs/tags/$1^{}" "refs/tags/$1" | awk 'NR==1{c=$1} /\^\{\}$/{c=$1} END{print c}'; }
stacks_state() { # env stack -> the stack's state object (moto S3, its own key)
  account_s3 "$1" "$MOTO/gitops-$1-tfstate/$2/$1.tfstate" 2>/dev/null || true
}
stacks_state_input() { # env stack resource -> the resource's input as JSON (or -)
  stacks_state "$1" "$2" | python3 -c '
import json, sys
try:
    s = json.load(sys.stdin)
except ValueError:
    print("-"); sys.exit()
for r in s.get("resources", []):
    if r["type"] == "terraform_data" and r["name"] == sys.argv[1]:
        print(json.dumps(r["instances"][0]["attributes"]["input"], sort_keys=True, separators=(",", ":"))); sys.exit()
print("-")' "$3"
}
# stacks_at ENV SHA: the stacks whose record (deploy/ENV/stacks/<stack>/current) is at SHA.
stacks_at() {
  local e=$1 sha=$2 s out=()
  for s in "${STACKS[@]}"; do
    [ "$(stacks_tag_commit "deploy/$e/stacks/$s/current")" = "$sha" ] && out+=("$s")
  done
  echo "${out[*]:-none}"
}
stacks_trailers() { # env -> the Stack-Applied trailers of deploy/<env>/current, one line
  local bare=$WORK/repos/demo/platform.git
  git -C "$bare" cat-file -p "refs/tags/deploy/$1/current" 2>/dev/null | sed -n 's/^Stack-Applied: \([^ ]*\) applied .*/\1/p' | sort | tr '\n' ' ' | sed 's/ $//'
}

stacks_commit() { # message: commit and push to dev
  git -C "$PLATFORM" add -A && git -C "$PLATFORM" commit -qm "$1" && git -C "$PLATFORM" push -q origin HEAD:refs/heads/dev
  git -C "$PLATFORM" rev-parse HEAD
}

stacks_setup() {
  PLATFORM=$WORK/platform
  demo_repo platform "$PLATFORM"
  PLATFORM_REMOTE=$REPO_REMOTE
  mkdir -p "$PLATFORM/modules/tagging"
  printf '%s\n' 'stacks:' '  - name: network' '    path: stacks/network' '  - name: service' '    path: stacks/service' \
    '    depends-on: [network]' '  - name: dns' '    path: stacks/dns' > "$PLATFORM/.github/gitops.yml"
  cat > "$PLATFORM/modules/tagging/main.tf" <<'TF'
variable "name" { type = string }
locals { scheme = "v1" }
output "tags" { value = { name = var.name, scheme = local.scheme } }
TF
  local s
  for s in network service dns; do
    mkdir -p "$PLATFORM/stacks/$s"
    printf '%s\n' 'terraform {' '  backend "s3" {}' '}' 'variable "environment" { type = string }' > "$PLATFORM/stacks/$s/main.tf"
  done
  cat >> "$PLATFORM/stacks/network/main.tf" <<'TF'
module "tags" {
  source = "../../modules/tagging"
  name   = "network"
}
resource "terraform_data" "network" {
  input = { env = var.environment, cidr = "10.0.0.0/16", tags = module.tags.tags }
}
TF
  cat >> "$PLATFORM/stacks/service/main.tf" <<'TF'
module "tags" {
  source = "../../modules/tagging"
  name   = "service"
}
resource "terraform_data" "service" {
  input = { env = var.environment, replicas = 2, tags = module.tags.tags }
}
# The demo's failing apply: with a file FAIL next to this one, the health check fails.
resource "terraform_data" "health" {
  triggers_replace = [fileexists("${path.module}/FAIL") ? "failing" : "ok"]
  input            = fileexists("${path.module}/FAIL") ? "failing" : "ok"
  provisioner "local-exec" {
    command = fileexists("${path.module}/FAIL") ? "echo 'service: health check failed' >&2; exit 1" : "true"
  }
}
TF
  cat >> "$PLATFORM/stacks/dns/main.tf" <<'TF'
resource "terraform_data" "dns" {
  input = { env = var.environment, record = "app.example.internal", ttl = 300 }
}
TF
  git -C "$PLATFORM" init -q -b dev
  git -C "$PLATFORM" remote add origin "$PLATFORM_REMOTE"
  git -C "$PLATFORM" add -A && git -C "$PLATFORM" commit -qm "initial commit: three stacks and a shared module"
  git -C "$PLATFORM" push -q origin HEAD:refs/heads/dev HEAD:refs/heads/main HEAD:refs/heads/prod
  # The demo's GitHub API keeps commit statuses (the digest a stack's plan job records and its
  # apply job reads): the stateful fake behind Prism (scripts/demo-lib/github-api.sh).
  STACKS_API=$GITHUB_API_URL_DEMO
}

# stacks_run NAME EVENT WORKFLOW REF ENV [args]: act_run against demo/platform.
stacks_run() {
  REMOTE=$PLATFORM_REMOTE ACT_REPO=demo/platform GITHUB_API_URL_DEMO=$STACKS_API act_run "$@"
}

# stacks_deploy LABEL WANT_RC WANT_CURRENT WANT_APPLIED: deploy dev, then check the records.
stacks_deploy() {
  local label=$1 want_rc=$2 want_current=$3 want_applied=$4 e=${5:-dev}
  stacks_run "stacks-deploy-$e" push deploy.yml "${BRANCH[$e]}" "$e"
  if [ "$want_rc" = 0 ]; then
    [ "$LAST_RC" = 0 ] || fail "stacks: $label failed (exit $LAST_RC): see $LAST_LOG"
  else
    [ "$LAST_RC" != 0 ] || fail "stacks: $label did not fail: see $LAST_LOG"
  fi
  local cur applied
  cur=$(stacks_tag_commit "deploy/$e/current")
  [ "$cur" = "$want_current" ] || fail "stacks: after '$label' deploy/$e/current is ${cur:-absent}, expected $want_current: see $LAST_LOG"
  applied=$(stacks_at "$e" "$LAST_SHA")
  [ "$applied" = "$want_applied" ] || fail "stacks: after '$label' the stacks recorded at ${LAST_SHA:0:7} are '$applied', expected '$want_applied': see $LAST_LOG"
  timeline "stacks: $label" "$e" "$LAST_SHA" "-" "current: ${cur:0:7}" "applied: $applied"
}

# stacks_demo: the scenario (after stacks_setup; scripts/demo runs it beside the main flow).
stacks_demo() {
  local c0 c1 c2 c3 s
  c0=$(git -C "$PLATFORM" rev-parse HEAD)
  # 1. First deploy: every stack (network before service), current moves.
  stacks_deploy "first deploy" 0 "$c0" "dns network service"
  [ "$(stacks_trailers dev)" = "dns network service" ] || fail "stacks: current's Stack-Applied trailers are '$(stacks_trailers dev)'"
  grep -n 'apply dev network (layer 0)' "$LAST_LOG" >/dev/null || fail "stacks: no layer-0 apply of network in $LAST_LOG"
  local net_done svc_start
  net_done=$(grep -m1 -n 'apply dev network (layer 0).*Job succeeded' "$LAST_LOG" | cut -d: -f1)
  svc_start=$(grep -m1 -n 'plan dev service (layer 1)' "$LAST_LOG" | cut -d: -f1)
  if [ -z "$net_done" ] || [ -z "$svc_start" ] || [ "$net_done" -gt "$svc_start" ]; then
    fail "stacks: service (layer 1) was planned before network (layer 0) applied: see $LAST_LOG"
  fi
  for s in "${STACKS[@]}"; do
    [ "$(stacks_state_input dev "$s" "$s")" != "-" ] || fail "stacks: no state for $s at its own key ($s/dev.tfstate)"
  done

  # 2. A change to dns alone: only dns is planned and applied.
  sed -i 's/ttl = 300/ttl = 60/' "$PLATFORM/stacks/dns/main.tf"
  c1=$(stacks_commit "dns: ttl 60")
  local net_before; net_before=$(stacks_state dev network | md5sum)
  stacks_deploy "dns only" 0 "$c1" "dns"
  [ "$(stacks_trailers dev)" = "dns" ] || fail "stacks: the dns deploy's trailers are '$(stacks_trailers dev)'"
  [ "$(stacks_state dev network | md5sum)" = "$net_before" ] || fail "stacks: network's state changed though only dns did"
  stacks_state_input dev dns dns | grep -q '"ttl":60' || fail "stacks: dns's state does not have the new ttl"

  # 3. The shared module changes (network and service call it) and service's apply fails.
  sed -i 's/scheme = "v1"/scheme = "v2"/' "$PLATFORM/modules/tagging/main.tf"
  touch "$PLATFORM/stacks/service/FAIL"
  c2=$(stacks_commit "tagging v2 (and a broken service health check)")
  stacks_deploy "module; svc fails" 1 "$c1" "network"
  [ "$(git ls-remote "$PLATFORM_REMOTE" refs/heads/main | awk '{print $1}')" = "$c1" ] || fail "stacks: the partly deployed commit was promoted"
  [ "$LAST_SHA" = "$c2" ] || fail "stacks: the failed deploy ran ${LAST_SHA:0:7}, not ${c2:0:7}"
  [ "$(stacks_tag_commit deploy/dev/stacks/service/current)" = "$c0" ] || fail "stacks: service's record moved although its apply failed"
  local failed_current failed_applied
  failed_current=$(stacks_tag_commit deploy/dev/current) failed_applied=$(stacks_at dev "$c2")
  grep -q 'not every changed stack of' "$LAST_LOG" || fail "stacks: the refused record did not say which stacks applied: see $LAST_LOG"
  stacks_state_input dev network network | grep -q '"scheme":"v2"' || fail "stacks: network did not apply the new module"

  # 4. The fix (and a new dns change): base is still current (c1), so network, service and dns.
  rm "$PLATFORM/stacks/service/FAIL"
  sed -i 's/ttl = 60/ttl = 30/' "$PLATFORM/stacks/dns/main.tf"
  c3=$(stacks_commit "service: fix the health check; dns: ttl 30")
  stacks_deploy "fix + new change" 0 "$c3" "dns network service"
  [ "$(stacks_trailers dev)" = "dns network service" ] || fail "stacks: the fixing deploy's trailers are '$(stacks_trailers dev)'"
  stacks_state_input dev service service | grep -q '"scheme":"v2"' || fail "stacks: service does not run the new module"
  grep -q 'No changes' "$LAST_LOG" || fail "stacks: network (applied before) did not plan without changes: see $LAST_LOG"

  # 5. Promotion (deploy.yml's promote job, after a recorded deploy only): main got c1, never
  #    the partly deployed c2, then c3; staging deploys every stack.
  [ "$(git ls-remote "$PLATFORM_REMOTE" refs/heads/main | awk '{print $1}')" = "$c3" ] || fail "stacks: main is not at $c3 after dev's deploy promoted it"
  timeline "stacks: promote -> staging" staging "$c3" "-" "main fast-forwarded" "c2 (partly deployed) was never promoted"
  stacks_deploy "deploy staging" 0 "$c3" "dns network service" staging

  # 6. Rollback of dev to previous (c1): network and service (module v1) and dns (ttl 60) differ.
  DISPATCH_INPUTS='{"environment":"dev","to":"previous"}' stacks_run stacks-rollback-dev workflow_dispatch rollback.yml dev dev
  [ "$LAST_RC" = 0 ] || fail "stacks: the rollback of dev failed: see $LAST_LOG"
  [ "$(stacks_tag_commit deploy/dev/current)" = "$c1" ] || fail "stacks: the rollback did not move deploy/dev/current to $c1"
  [ "$(stacks_at dev "$c1")" = "dns network service" ] || fail "stacks: after the rollback the stacks at $c1 are '$(stacks_at dev "$c1")'"
  stacks_state_input dev network network | grep -q '"scheme":"v1"' || fail "stacks: network was not rolled back"
  timeline "stacks: rollback dev" dev "$c1" "-" "current: ${c1:0:7} (held)" "rolled back: $(stacks_at dev "$c1")"
  # shellcheck disable=SC2034 # scripts/demo writes it into --summary
  STACKS_SUMMARY=(
    "stacks.c1=$c1" "stacks.c3=$c3"
    "stacks.failed.current=$failed_current" "stacks.failed.applied=$failed_applied"
    "stacks.current.dev=$(stacks_tag_commit deploy/dev/current)"
    "stacks.current.staging=$(stacks_tag_commit deploy/staging/current)"
    "stacks.rolled_back=$(stacks_at dev "$c1")"
  )
}
