# shellcheck shell=bash
# The demo's part of #16 "bound to the promotion" (sourced by scripts/demo; uses its helpers
# act_run, timeline, fail and its variables APP, WORK, ROOT, LAST_*):
#   - plan.yml's plan job (the pull request's code) leaves its value-free plan record as an
#     artifact; plan-record.yml (workflow_run) records it as the commit status gitops/plan/<env>
#     on the pull request's head, through Prism (GitHub's OpenAPI description).
# act cannot reach GitHub's artifact store: the two artifact actions are replaced by local
# stand-ins that hand the files over through $WORK/artifacts (docs/demo.md, substitutions).

# plan_record_setup: before the app repository's first commit. The demo copy of plan.yml uploads
# through the stand-in; plan-record.yml is copied (substituted like the other templates) with the
# download stand-in.
plan_record_setup() {
  local d=$APP/.gitops-demo
  mkdir -p "$d/upload-artifact" "$d/download-artifact" "$WORK/artifacts"
  cat > "$d/upload-artifact/action.yml" <<EOF2
# Local stand-in for actions/upload-artifact (scripts/demo): keeps the files in $WORK/artifacts.
name: "upload-artifact (local run stand-in)"
description: "Keep an artifact on this machine"
inputs:
  name: { required: true }
  path: { required: true }
  if-no-files-found: { required: false }
  retention-days: { required: false }
runs:
  using: composite
  steps:
    - shell: bash
      env:
        NAME: \${{ inputs.name }}
        FROM: \${{ inputs.path }}
      run: |
        rm -rf "$WORK/artifacts/\$NAME" && mkdir -p "$WORK/artifacts/\$NAME"
        cp -r "\$FROM"/. "$WORK/artifacts/\$NAME/"
        echo "(demo) artifact \$NAME kept: \$(find "$WORK/artifacts/\$NAME" -type f | wc -l) file(s)"
EOF2
  cat > "$d/download-artifact/action.yml" <<EOF2
# Local stand-in for actions/download-artifact (scripts/demo): reads $WORK/artifacts.
name: "download-artifact (local run stand-in)"
description: "Hand over the artifacts kept on this machine"
inputs:
  pattern: { required: false }
  path: { required: true }
  run-id: { required: false }
  github-token: { required: false }
  merge-multiple: { required: false }
runs:
  using: composite
  steps:
    - shell: bash
      env:
        PATTERN: \${{ inputs.pattern }}
        DEST: \${{ inputs.path }}
        RUN: \${{ inputs.run-id }}
        MERGE: \${{ inputs.merge-multiple }}
      run: |
        mkdir -p "\$DEST"
        for a in "$WORK/artifacts"/\$PATTERN; do
          [ -d "\$a" ] || continue
          if [ "\$MERGE" = true ]; then cp -r "\$a"/. "\$DEST/"; else cp -r "\$a" "\$DEST/"; fi
        done
        echo "(demo) artifacts of run \$RUN handed over: \$(find "\$DEST" -type f | wc -l) file(s)"
EOF2
  local up='s#uses: actions/upload-artifact@[0-9a-f]{40}( \# .*)?$#uses: ./.gitops-demo/upload-artifact#'
  local down='s#uses: actions/download-artifact@[0-9a-f]{40}( \# .*)?$#uses: ./.gitops-demo/download-artifact#'
  local ours='s#uses: gitops-actions/gitops-actions/actions/([a-z-]+)@[0-9a-f]{40}( \# v[0-9.]+)?$#uses: ./.gitops-actions/actions/\1#'
  sed -i -E "$up" "$APP/.github/workflows/plan.yml"
  sed -E -e "$ours" -e "$down" "$ROOT/workflows-templates/plan-record.yml" > "$APP/.github/workflows/plan-record.yml"
  grep -q 'upload-artifact$' "$APP/.github/workflows/plan.yml" || fail "plan-record: the upload stand-in was not substituted into plan.yml"
  if grep -qE 'uses: (gitops-actions/|actions/(upload|download)-artifact@)' "$APP/.github/workflows/plan.yml" "$APP/.github/workflows/plan-record.yml"; then
    fail "plan-record: a remote action survived the substitution"
  fi
}

# plan_record_pr ENV BASE PR: after a pull request's plan (LAST_SHA its head, LAST_RUN_ID its
# run): plan-record.yml on the completed plan run records gitops/plan/ENV on the head.
plan_record_pr() {
  local env=$1 base=$2 pr=$3 head=$LAST_SHA run=$LAST_RUN_ID
  [ -s "$WORK/artifacts/gitops-plan-record-$env/$env.json" ] || fail "the pull request's plan left no plan record: see $LAST_LOG"
  local digest
  digest=$(jq -r .digest "$WORK/artifacts/gitops-plan-record-$env/$env.json")
  WORKFLOW_RUN_EVENT=$(printf '{"action":"completed","repository":{"full_name":"demo/app","name":"app","owner":{"login":"demo"}},"workflow":{"name":"plan"},"workflow_run":{"id":%s,"name":"plan","event":"pull_request","status":"completed","conclusion":"success","head_sha":"%s","head_repository":{"full_name":"demo/app"},"repository":{"full_name":"demo/app"},"pull_requests":[{"number":%s,"head":{"sha":"%s"},"base":{"ref":"%s"}}]}}' \
    "$run" "$head" "$pr" "$head" "$base") act_run "plan-record-pr-$pr" workflow_run plan-record.yml main "$env"
  [ "$LAST_RC" = 0 ] || fail "the recorder failed (exit $LAST_RC): see $LAST_LOG"
  grep -q "recorded on $head (pull request #$pr): commit status gitops/plan/$env = plan $digest base " "$LAST_LOG" ||
    fail "the recorder did not record the plan's digest on the pull request's head: see $LAST_LOG"
  timeline "pull request -> $env: plan recorded" "$env" "$head" "-" "plan-record: gitops/plan/$env" "digest ${digest:7:12}"
}
