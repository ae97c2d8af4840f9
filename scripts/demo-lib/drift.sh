# shellcheck shell=bash
# The demo's part of #17 "Drift detection" (sourced by scripts/demo; uses its helpers act_run,
# timeline, fail, account helpers and its variables WORK, ROOT, APP, GIT_URL, GIT_TOKEN, MOTO,
# REGION, ACCOUNT_PROD, ACCOUNT_AUTH): a third app repository, demo/ops, with one stack
# (`params`: an `aws_ssm_parameter` with tags, the REAL AWS provider 5.100.0 from the offline
# filesystem mirror, against moto in prod's account), and workflows-templates/drift.yml:
#   1. deploy.yml deploys prod (the stack's first apply: the parameter exists in prod's account);
#   2. the parameter's value and tags are changed behind Terraform's back (moto's SSM API,
#      signed with credentials of prod's account);
#   3. drift.yml (act) opens ONE issue `gitops-drift` for prod/params, naming the address and
#      the attributes (checked in the GitHub fake's state, not in the log); a second run updates
#      that issue in place (its run link), no second issue;
#   4. a new commit of the stack (a description) is pushed to prod and deployed: the apply
#      reverts the value and the tags;
#   5. drift.yml again: the same issue is closed, with a comment (the fake's state).
# Without the provider mirror (GITOPS_TF_PLUGINS, default /opt/tf-plugins) it says so loudly and
# reports `drift=skipped`: never a silent pass.

DRIFT_PLUGINS=${GITOPS_TF_PLUGINS:-/opt/tf-plugins}
# shellcheck disable=SC2034 # read by scripts/demo
DRIFT_SKIPPED=0
OPS_REMOTE="" OPS=""
DRIFT_PARAM=/ops/prod/greeting
# shellcheck disable=SC2034 # scripts/demo writes it into --summary
DRIFT_SUMMARY=(drift=skipped)

drift_tag_commit() { git ls-remote "$OPS_REMOTE" "refs/tags/$1^{}" "refs/tags/$1" | awk 'NR==1{c=$1} /\^\{\}$/{c=$1} END{print c}'; }

# drift_ssm TARGET JSON: one call of moto's SSM API in prod's account, signed with Core's
# credentials there (what someone with console access in that account would do).
drift_ssm() {
  local auth=${ACCOUNT_AUTH[$ACCOUNT_PROD]}
  curl -sf --aws-sigv4 "aws:amz:$REGION:ssm" --user "${auth% *}" -H "x-amz-security-token: ${auth#* }" \
    -H 'Content-Type: application/x-amz-json-1.1' -H "X-Amz-Target: AmazonSSM.$1" --data "$2" "$MOTO/"
}
drift_param() { # -> "value|tag owner" of the parameter in prod's account, or "-"
  local v t
  v=$(drift_ssm GetParameter "{\"Name\":\"$DRIFT_PARAM\"}" | jq -r '.Parameter.Value' 2>/dev/null) || { echo "-"; return; }
  t=$(drift_ssm ListTagsForResource "{\"ResourceType\":\"Parameter\",\"ResourceId\":\"$DRIFT_PARAM\"}" |
    jq -r '[.TagList[] | select(.Key == "owner") | .Value] | first // "-"' 2>/dev/null) || t="-"
  echo "$v|$t"
}
# drift_issues: the fake's drift issues (label gitops-drift), as JSON lines {number,state,title,body}.
drift_issues() {
  github_api_state | jq -c '.issues[] | select([.labels[].name] | index("gitops-drift")) | {number, state, title, body}'
}

drift_setup() {
  if [ ! -d "$DRIFT_PLUGINS/registry.terraform.io/hashicorp/aws" ]; then
    # shellcheck disable=SC2034 # read by scripts/demo
    DRIFT_SKIPPED=1
    printf '\n[demo] drift scenario SKIPPED: no AWS provider mirror at %s (GITOPS_TF_PLUGINS); the drift part of the demo did not run\n\n' "$DRIFT_PLUGINS" >&2
    return 0
  fi
  OPS=$WORK/ops
  demo_repo ops "$OPS"
  OPS_REMOTE=$REPO_REMOTE
  mkdir -p "$OPS/stacks/params"
  # drift.yml, substituted like the others (docs/demo.md), except its checkout of the deployed
  # commit: act's built-in checkout copies the run's clone into the job and cannot check out a
  # `ref:` (the line is removed, as elsewhere), so a local step right after it checks out that
  # ref in the copy, detached (drift.yml then checks that HEAD is the deployed commit).
  mkdir -p "$OPS/.gitops-demo/checkout"
  cat > "$OPS/.gitops-demo/checkout/action.yml" <<'EOF'
# Local stand-in for the `ref:` of actions/checkout in the local run (scripts/demo): act's own
# checkout copied the run's clone (.git included) into the job; this checks out `ref` there.
name: "checkout ref (local run stand-in)"
description: "Check out a ref of the local clone, detached"
inputs:
  ref: { required: true }
runs:
  using: composite
  steps:
    - shell: bash
      env:
        REF: ${{ inputs.ref }}
      run: git checkout -q --detach "$REF" && echo "(demo) checked out $REF"
EOF
  local wf=$OPS/.github/workflows/drift.yml
  # shellcheck disable=SC2016 # the ${{ }} are workflow text
  sed -E \
    -e 's#uses: gitops-actions/gitops-actions/actions/([a-z-]+)@[0-9a-f]{40}( \# v[0-9.]+)?$#uses: ./.gitops-actions/actions/\1#' \
    -e 's#uses: gitops-actions/gitops-actions@[0-9a-f]{40}( \# v[0-9.]+)?$#uses: ./.gitops-actions#' \
    -e 's#uses: hashicorp/setup-terraform@[0-9a-f]{40}( \# .*)?$#uses: ./.gitops-demo/setup-terraform#' \
    -e 's#uses: opentofu/setup-opentofu@[0-9a-f]{40}( \# .*)?$#uses: ./.gitops-demo/setup-terraform#' \
    -e 's#uses: actions/upload-artifact@[0-9a-f]{40}( \# .*)?$#uses: ./.gitops-demo/upload-artifact#' \
    -e 's#uses: actions/download-artifact@[0-9a-f]{40}( \# .*)?$#uses: ./.gitops-demo/download-artifact#' \
    -e '/^ +ref: \$\{\{ matrix\.sha \}\}$/d' \
    -e 's#^(      - name: collect the rows)$#      - name: (demo) copy the clone into the job (the local download stand-in lives there)\n        uses: actions/checkout@v5\n\n\1#' \
    -e 's#^(      - name: the deployed commit)$#      - name: (demo) check out the deployed commit in the copy of the clone\n        uses: ./.gitops-demo/checkout\n        with:\n          ref: ${{ matrix.sha }}\n\n\1#' \
    "$ROOT/workflows-templates/drift.yml" > "$wf"
  grep -q 'uses: ./.gitops-demo/checkout$' "$wf" || fail "drift: the checkout of the deployed commit was not substituted into drift.yml"
  grep -q '(demo) copy the clone into the job' "$wf" || fail "drift: the summary job's copy of the clone was not inserted into drift.yml"
  if grep -qE '^ +ref: ' "$wf" && ! grep -qE '^ +ref: \$\{\{ matrix\.sha \}\}$' "$wf"; then
    fail "drift: a checkout ref: survived the substitution of drift.yml"
  fi
  if grep -E 'uses: [a-z-]+/[a-z-]+' "$wf" | grep -qv 'uses: actions/checkout@'; then
    fail "drift: a remote action survived the substitution of drift.yml: $(grep -E 'uses: [a-z-]+/[a-z-]+' "$wf" | grep -v 'actions/checkout@' | head -1)"
  fi
  printf '%s\n' 'stacks:' '  - name: params' '    path: stacks/params' > "$OPS/.github/gitops.yml"
  cat > "$OPS/stacks/params/main.tf" <<'TF'
terraform {
  backend "s3" {}
  required_providers {
    aws = { source = "hashicorp/aws", version = "5.100.0" }
  }
}
variable "environment" { type = string }
# Credentials, region and endpoints come from the job (oidc-login; AWS_ENDPOINT_URL_* for moto).
provider "aws" {
  skip_metadata_api_check = true
}
resource "aws_ssm_parameter" "greeting" {
  name  = "/ops/${var.environment}/greeting"
  type  = "String"
  value = "hello from ops v1"
  tags  = { owner = "team-ops" }
}
TF
  # Terraform finds the AWS provider in the offline mirror: a CLI configuration for this
  # repository's runs only (demo/app and demo/platform use built-in resources alone).
  printf 'provider_installation {\n  filesystem_mirror {\n    path    = "%s"\n    include = ["registry.terraform.io/hashicorp/aws"]\n  }\n}\n' \
    "$DRIFT_PLUGINS" > "$WORK/drift.tfrc"
  git -C "$OPS" init -q -b dev
  git -C "$OPS" remote add origin "$OPS_REMOTE"
  git -C "$OPS" add -A && git -C "$OPS" commit -qm "initial commit: the params stack (aws_ssm_parameter)"
  git -C "$OPS" push -q origin HEAD:refs/heads/dev HEAD:refs/heads/main HEAD:refs/heads/prod
}

# drift_run NAME EVENT WORKFLOW REF ENV [args]: act_run against demo/ops, with the provider
# mirror and moto's SSM endpoint.
drift_run() {
  REMOTE=$OPS_REMOTE ACT_REPO=demo/ops act_run "$@" \
    --env TF_CLI_CONFIG_FILE="$WORK/drift.tfrc" --env AWS_ENDPOINT_URL_SSM="$MOTO" --env GOGC=400
}

drift_deploy_prod() { # label
  drift_run "ops-deploy-prod" push deploy.yml prod prod
  [ "$LAST_RC" = 0 ] || fail "drift: $1 of prod failed (exit $LAST_RC): see $LAST_LOG"
  local cur; cur=$(drift_tag_commit deploy/prod/current)
  [ "$cur" = "$LAST_SHA" ] || fail "drift: after '$1' deploy/prod/current is ${cur:-absent}, expected $LAST_SHA: see $LAST_LOG"
  timeline "drift: $1" prod "$LAST_SHA" "-" "current: ${cur:0:7}" "param $(drift_param)"
}

# drift_check WANT: drift.yml (workflow_dispatch on main) for every environment; WANT is the
# state the one drift issue must be in afterwards (open or closed).
drift_check() {
  local want=$1
  DISPATCH_INPUTS='{}' OIDC_ENV=prod-plan drift_run "ops-drift-$want" workflow_dispatch drift.yml main prod
  [ "$LAST_RC" = 0 ] || fail "drift: the drift run failed (exit $LAST_RC): see $LAST_LOG"
  grep -q 'dev was never deployed' "$LAST_LOG" || fail "drift: the run did not report dev as never deployed: see $LAST_LOG"
  local issues n
  issues=$(drift_issues)
  n=$(grep -c . <<<"$issues" || true)
  [ "$n" = 1 ] || fail "drift: the GitHub fake has $n drift issues after the run, expected exactly 1: $issues"
  DRIFT_ISSUE=$(jq -r .number <<<"$issues")
  [ "$(jq -r .state <<<"$issues")" = "$want" ] || fail "drift: issue #$DRIFT_ISSUE is $(jq -r .state <<<"$issues"), expected $want: see $LAST_LOG"
  jq -r .body <<<"$issues" | grep -q 'gitops-actions:drift key=prod/params' || fail "drift: issue #$DRIFT_ISSUE is not keyed prod/params"
}

drift_demo() {
  local c0 c1 before body attrs comments
  c0=$(git -C "$OPS" rev-parse HEAD)
  # 1. prod's first deploy (deploy.yml, stacks mode): the parameter exists in prod's account.
  drift_deploy_prod "deploy prod"
  [ "$(drift_param)" = "hello from ops v1|team-ops" ] || fail "drift: after the deploy the parameter in prod's account is '$(drift_param)'"

  # 2. Behind Terraform's back: the value and a tag change (moto's SSM API, prod's account).
  drift_ssm PutParameter "{\"Name\":\"$DRIFT_PARAM\",\"Value\":\"changed by hand\",\"Type\":\"String\",\"Overwrite\":true}" >/dev/null ||
    fail "drift: could not change the parameter in moto"
  drift_ssm AddTagsToResource "{\"ResourceType\":\"Parameter\",\"ResourceId\":\"$DRIFT_PARAM\",\"Tags\":[{\"Key\":\"owner\",\"Value\":\"someone-else\"}]}" >/dev/null ||
    fail "drift: could not change the parameter's tags in moto"
  before=$(drift_param)
  timeline "drift: changed by hand" prod "$c0" "-" "moto SSM PutParameter, AddTags" "param $before"

  # 3. The drift run opens the one issue, naming the address and the attributes.
  drift_check open
  body=$(drift_issues | jq -r .body)
  grep -q 'aws_ssm_parameter.greeting' <<<"$body" || fail "drift: issue #$DRIFT_ISSUE does not name aws_ssm_parameter.greeting"
  # shellcheck disable=SC2016 # backquotes of the Markdown, not a command
  attrs=$(grep -oE '`(value|tags)`' <<<"$body" | sort -u | tr -d '`' | tr '\n' ',' | sed 's/,$//')
  [ "$attrs" = "tags,value" ] || fail "drift: issue #$DRIFT_ISSUE names the attributes '$attrs', expected tags and value: $body"
  # The parameter's value is sensitive in the provider's schema: named, never shown.
  if grep -qE 'changed by hand|hello from ops' <<<"$body"; then fail "drift: issue #$DRIFT_ISSUE shows the parameter's (sensitive) value"; fi
  grep -q 'someone-else' <<<"$body" || fail "drift: issue #$DRIFT_ISSUE does not show the tags as found"
  timeline "drift: drift run" prod "$c0" "-" "issue #$DRIFT_ISSUE opened" "prod/params: $attrs changed"
  local opened=$DRIFT_ISSUE

  # 3b. The next run finds the same drift: the same issue, updated in place (its run link is
  #     this run's), no second issue.
  drift_check open
  [ "$DRIFT_ISSUE" = "$opened" ] || fail "drift: the second run left issue #$DRIFT_ISSUE, not #$opened"
  drift_issues | jq -r .body | grep -q "/actions/runs/$LAST_RUN_ID)" ||
    fail "drift: issue #$opened was not updated by run $LAST_RUN_ID: $(drift_issues | jq -r .body)"
  timeline "drift: drift run again" prod "$c0" "-" "issue #$DRIFT_ISSUE updated" "in place, run $LAST_RUN_ID"
  local updated=in-place

  # 4. The re-apply: a new commit of the stack, deployed to prod; the apply reverts the drift.
  git -C "$OPS" pull -q --ff-only origin prod
  sed -i 's/^  tags  = { owner = "team-ops" }$/  tags  = { owner = "team-ops" }\n  description = "the demo greeting"/' "$OPS/stacks/params/main.tf"
  git -C "$OPS" commit -qam "params: a description (re-applies the parameter)"
  git -C "$OPS" push -q origin HEAD:refs/heads/prod
  c1=$(git -C "$OPS" rev-parse HEAD)
  drift_deploy_prod "re-apply prod"
  [ "$(drift_param)" = "hello from ops v1|team-ops" ] || fail "drift: the re-apply did not revert the parameter: '$(drift_param)'"

  # 5. The drift run closes the same issue, with a comment.
  drift_check closed
  [ "$DRIFT_ISSUE" = "$opened" ] || fail "drift: the closed issue is #$DRIFT_ISSUE, the opened one #$opened"
  comments=$(github_api_state | jq -r --arg n "$DRIFT_ISSUE" '.issue_comments[$n][]?.body')
  grep -q 'No drift any more' <<<"$comments" || fail "drift: issue #$DRIFT_ISSUE was closed without the comment: $comments"
  timeline "drift: drift run" prod "$c1" "-" "issue #$DRIFT_ISSUE closed" "comment: no drift any more"
  # shellcheck disable=SC2034 # scripts/demo writes it into --summary
  DRIFT_SUMMARY=(
    "drift=ran" "drift.issue=$DRIFT_ISSUE" "drift.issue.opened=open" "drift.issue.updated=$updated" "drift.issue.closed=closed"
    "drift.issues=$(drift_issues | grep -c .)" "drift.attributes=$attrs" "drift.found=$before"
    "drift.current.prod=$(drift_tag_commit deploy/prod/current)" "drift.c1=$c1"
  )
}
