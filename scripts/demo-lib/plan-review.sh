# shellcheck shell=bash
# The demo's part of #16 (sourced by scripts/demo; uses its helpers act_run, timeline, fail,
# tag_commit, state_image, deploy and its variables APP, WORK, MOTO, REGION, ROOT):
#   - prod's plan and apply are two jobs; between them prod's state changes behind Terraform's
#     back (a write to the state object in moto's S3), and the apply job refuses, printing what
#     differs; a re-run plans again and goes through;
#   - a rollback whose plan would destroy a `terraform_data` typed as stateful in the demo's
#     policy is refused until `allow-data-loss` is given with a reason (kept in the deploy tag).

# plan_review_setup: before the app repository's first commit. One mechanical change to the demo
# copy of deploy.yml (a hook between the plan job and the apply job's re-plan, which does nothing
# unless a run sets GITOPS_DEMO_BETWEEN), and the demo's plan-gate policy.
plan_review_setup() {
  local wf=$APP/.github/workflows/deploy.yml
  sed -i -E 's#^      - name: terraform plan \(again, in this job, against the state as it is now\)$#      - name: (demo) while the reviewers read the plan\n        run: ./.gitops-demo/between-plan-and-apply\n\n&#' "$wf"
  grep -q 'between-plan-and-apply' "$wf" || fail "plan-review: the hook between plan and apply was not inserted into deploy.yml"
  cat > "$APP/.gitops-demo/between-plan-and-apply" <<'EOF'
#!/usr/bin/env bash
# The demo's moment between the plan job and the apply job (reviewers reading the plan).
if [ -n "${GITOPS_DEMO_BETWEEN:-}" ]; then exec "$GITOPS_DEMO_BETWEEN"; fi
EOF
  chmod +x "$APP/.gitops-demo/between-plan-and-apply"
  # The demo's policy: `terraform_data` counts as stateful (it stands in for a database here);
  # any destroy in production is left to protect-stateful alone.
  printf '%s\n' 'rules:' '  protect-production: false' '  protect-stateful:' '    extra-types: [terraform_data]' \
    > "$APP/.github/plan-policy.yml"
  # Someone else's apply to prod from another checkout (the same stack, another commit id), run by
  # the hook of one deploy with that job's credentials and backend settings.
  cat > "$WORK/change-prod-state" <<EOF
#!/usr/bin/env bash
set -euo pipefail
other="$WORK/other-checkout"
rm -rf "\$other" && cp -r terraform/app/release "\$other" && cd "\$other"
terraform init -input=false -no-color \\
  -backend-config=bucket=gitops-prod-tfstate -backend-config=key=app/prod/terraform.tfstate \\
  -backend-config=region=$REGION >/dev/null
terraform apply -input=false -no-color -auto-approve -lock-timeout=60s -var=environment=prod \\
  -var=image_repository=elsewhere -var=commit_sha=0000000000000000000000000000000000000000 >/dev/null
echo "(demo) prod's state was changed behind this run's back: another checkout applied to prod"
EOF
  chmod +x "$WORK/change-prod-state"
}

# plan_review_changed_state_refused: prod's deploy with the state changed between its plan job
# and its apply job (refused, the difference printed, nothing applied). The re-run is the
# caller's.
plan_review_changed_state_refused() {
  local before_cur before_image
  before_cur=$(tag_commit deploy/prod/current)
  DISPATCH_INPUTS="{\"override-window-reason\":\"$OVERRIDE\"}" act_run deploy-prod-changed workflow_dispatch deploy.yml prod prod \
    --env GITOPS_DEMO_BETWEEN="$WORK/change-prod-state"
  [ "$LAST_RC" != 0 ] || fail "prod's apply went through although its state changed after the plan was reviewed"
  grep -q 'the plan is not the one that was reviewed' "$LAST_LOG" || fail "the refused apply did not say why: see $LAST_LOG"
  local diff
  diff=$(sed 's/\x1b\[[0-9;]*m//g' "$LAST_LOG" | sed -n '/What differs between the reviewed plan/,$p' |
    grep -oE '[~+-] terraform_data\.[a-z]+: .*' | head -1) || true
  [ -n "$diff" ] || fail "the refused apply did not print what differs: see $LAST_LOG"
  [ "$(tag_commit deploy/prod/current)" = "$before_cur" ] || fail "the refused apply moved deploy/prod/current"
  before_image=$(state_image prod)
  timeline "deploy prod, state changed" prod "$LAST_SHA" "-" "refused by verify (exit 1)" "$diff"
  [ "$(state_image prod)" = "$before_image" ] || fail "the refused apply changed prod's state"
}

# plan_review_rollback OVERRIDE LABEL: prod back to `previous` (the dispatch's inputs, with that
# window override), whose plan destroys the stateful terraform_data.cache that the bad release
# added: refused, then dispatched again with allow-data-loss and a reason.
plan_review_rollback() {
  local override=$1 label=$2
  local inputs="\"environment\":\"prod\",\"to\":\"previous\",\"override-window-reason\":\"$override\""
  local policy=(--var PLAN_POLICY_FILE=.github/plan-policy.yml) before_cur
  before_cur=$(tag_commit deploy/prod/current)
  DISPATCH_INPUTS="{$inputs}" act_run rollback-prod-refused workflow_dispatch rollback.yml prod prod "${policy[@]}"
  [ "$LAST_RC" != 0 ] || fail "a rollback destroying a stateful resource was NOT refused"
  grep -q 'protect-stateful' "$LAST_LOG" || fail "the rollback was refused, but not by protect-stateful: see $LAST_LOG"
  [ "$(tag_commit deploy/prod/current)" = "$before_cur" ] || fail "the refused rollback moved deploy/prod/current"
  timeline "$label" prod "$before_cur" "-" "refused: protect-stateful" "destroys terraform_data.cache"
  PLAN_REVIEW_REASON="demo: the cache is rebuilt from the database"
  DISPATCH_INPUTS="{$inputs,\"allow-data-loss\":\"true\",\"data-loss-reason\":\"$PLAN_REVIEW_REASON\"}" \
    act_run rollback-prod workflow_dispatch rollback.yml prod prod "${policy[@]}"
  [ "$LAST_RC" = 0 ] || fail "rollback of prod with allow-data-loss failed (exit $LAST_RC): see $LAST_LOG"
  git -C "$APP" fetch -q -f origin tag deploy/prod/current
  git -C "$APP" cat-file -p deploy/prod/current | grep -q "^Data-Loss-Allowed: $PLAN_REVIEW_REASON$" ||
    fail "deploy/prod/current does not record the allowed data loss"
}

# plan_review_add_cache: the bad release also adds a stateful resource (staged; the next commit
# of the demo takes it along).
plan_review_add_cache() {
  printf '%s\n' 'resource "terraform_data" "cache" {' '  input = "orders cache"' '}' > "$APP/terraform/app/release/cache.tf"
  git -C "$APP" add terraform/app/release/cache.tf
}
