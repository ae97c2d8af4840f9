# shellcheck shell=bash
# scripts/demo-lib/preview.sh — the preview-environment step of ./scripts/demo (#18), run with
# `./scripts/demo --previews`. Sourced by scripts/demo; uses its helpers (act_run, timeline,
# fail, tag_commit, remote_tag, BIN_DIR, MOTO, REGION, APP, GIT_URL).
#
# A pull request into dev from a branch of the repository gets a preview (preview.yml, run by
# act): its Terraform state appears in moto's S3 under the workspace prefix
# (`env:/pr-<n>/<state key>`), the record deploy/dev/preview/pr-<n> appears, the transient
# Deployment `dev/pr-<n>` and the one PR comment go to the GitHub API stand-in; a second push
# updates it; closing the pull request destroys it and the state is gone. A forged attempt to
# open a preview of prod is refused by the binary. deploy/dev/current never moves.

PREVIEW_PR=41

preview_state_exists() { # workspace -> 0 when its state object is in dev's bucket (moto S3)
  curl -sf -o /dev/null --aws-sigv4 "aws:amz:$REGION:s3" --user reader:reader \
    "$MOTO/gitops-dev-tfstate/env:/$1/app/dev/terraform.tfstate"
}

# preview_event ACTION BRANCH: the pull_request event of PR $PREVIEW_PR from BRANCH into dev.
preview_event() {
  PR_NUMBER=$PREVIEW_PR PR_ACTION=$1 PR_TITLE="preview me" PR_BASE=dev \
    act_run "preview-$1" pull_request preview.yml "$2" dev
}

preview_demo() {
  local ws=pr-$PREVIEW_PR branch=change/preview dev_before log
  dev_before=$(remote_tag deploy/dev/current)
  git -C "$APP" pull -q --ff-only origin dev
  git -C "$APP" checkout -q -b "$branch"
  echo "preview v1" > "$APP/app/index.html"
  git -C "$APP" commit -qam "app: a change to preview"
  git -C "$APP" push -q origin "HEAD:refs/heads/$branch"

  preview_event opened "$branch"
  [ "$LAST_RC" = 0 ] || fail "the preview of pull request #$PREVIEW_PR failed (exit $LAST_RC): see $LAST_LOG"
  log=$LAST_LOG
  preview_state_exists "$ws" || fail "no state under env:/$ws/ in dev's bucket after the preview"
  [ "$(tag_commit "deploy/dev/preview/$ws")" = "$LAST_SHA" ] || fail "deploy/dev/preview/$ws is not the pull request's head"
  grep -q "in \`dev/$ws\` (transient): success" "$log" || fail "no transient Deployment dev/$ws (GitHub API stand-in): see $log"
  grep -q 'preview comment: ' "$log" || fail "no preview comment (GitHub API stand-in): see $log"
  grep -q '\*\*preview\*\* `pr-' "$log" || fail "the preview's plan-gate report does not say it is a preview: see $log"
  timeline "pull request -> preview" "dev/$ws" "$LAST_SHA" "-" "deploy/dev/preview/$ws" "state env:/$ws/ in S3; Deployment + comment"

  echo "preview v2" > "$APP/app/index.html"
  git -C "$APP" commit -qam "app: the preview, second push"
  git -C "$APP" push -q origin "HEAD:refs/heads/$branch"
  preview_event synchronize "$branch"
  [ "$LAST_RC" = 0 ] || fail "the preview update failed (exit $LAST_RC): see $LAST_LOG"
  [ "$(tag_commit "deploy/dev/preview/$ws")" = "$LAST_SHA" ] || fail "the second push did not update deploy/dev/preview/$ws"
  grep -q 'preview updated' "$LAST_LOG" || fail "the second push did not update the preview: see $LAST_LOG"
  timeline "second push -> preview" "dev/$ws" "$LAST_SHA" "-" "deploy/dev/preview/$ws moved" "same comment, updated"

  # A forged attempt: the binary itself refuses a preview of prod (exit 1, the rule named).
  local rc=0 out
  out=$("$BIN_DIR/tag-deploy" preview-open --environment prod --workspace "$ws" --sha "$LAST_SHA" \
    --repo-path "$APP" --remote "$GIT_URL/demo/app.git" --skip-github-deployment 2>&1) || rc=$?
  [ "$rc" = 1 ] || fail "a preview of prod was not refused with exit 1 (exit $rc): $out"
  grep -q 'previews: true' <<<"$out" || fail "the refusal does not name the rule: $out"
  [ -z "$(remote_tag "deploy/prod/preview/$ws")" ] || fail "the refused preview of prod left a record"
  timeline "forged preview of prod" prod "$LAST_SHA" "-" "refused (exit 1)" "previews only where allowed"

  git -C "$APP" checkout -q dev
  preview_event closed "$branch"
  [ "$LAST_RC" = 0 ] || fail "closing the preview failed (exit $LAST_RC): see $LAST_LOG"
  preview_state_exists "$ws" && fail "the state of $ws is still in dev's bucket after closing"
  [ -z "$(remote_tag "deploy/dev/preview/$ws")" ] || fail "deploy/dev/preview/$ws survived the close"
  grep -q "marked .* deployment(s) of \`dev/$ws\` inactive" "$LAST_LOG" || fail "the preview's Deployment was not marked inactive: see $LAST_LOG"
  timeline "pull request closed" "dev/$ws" "-" "-" "record deleted" "destroyed; state gone"

  [ "$(remote_tag deploy/dev/current)" = "$dev_before" ] || fail "the preview moved deploy/dev/current"
  # shellcheck disable=SC2034 # read by scripts/demo for --summary
  PREVIEW_SUMMARY="previews=ok"
}
