# shellcheck shell=bash
# scripts/demo-lib/preview.sh — the preview-environment step of ./scripts/demo (#18), run with
# `./scripts/demo --previews`. Sourced by scripts/demo; uses its helpers (act_run, timeline,
# fail, tag_commit, remote_tag, BIN_DIR, MOTO, REGION, APP, GIT_URL).
#
# A pull request into dev from a branch of the repository gets a preview (preview.yml, run by
# act, its jobs in the GitHub environment `dev-preview`: its variables, the OIDC claims
# `environment: dev-preview`, and dev's PREVIEW role, read back from the run's log): its
# Terraform state appears in moto's S3 under the workspace prefix (`env:/pr-<n>/<state key>`),
# the record deploy/dev/preview/pr-<n> appears, the transient Deployment `dev/pr-<n>` and the
# one PR comment go to the GitHub API stand-in; a second push updates it; closing the pull
# request destroys it and the state is gone. A forged attempt to open a preview of prod is
# refused by the binary. Then the sweep: two more previews whose close events were "missed"
# (opened for real, then aged by rewriting their records' `Opened:` eight days back: the passage
# of time) and a third whose state is corrupt; ONE scheduled run destroys both orphans (states
# and records gone), reports the broken one as failed without stopping (job exit non-zero,
# its record kept), and the next sweep, once its state is repaired, removes it too.
# deploy/dev/current never moves.

PREVIEW_PR=41

preview_state_exists() { # workspace -> 0 when its state object is in dev's bucket (moto S3)
  curl -sf -o /dev/null --aws-sigv4 "aws:amz:$REGION:s3" --user reader:reader \
    "$MOTO/gitops-dev-tfstate/env:/$1/app/dev/terraform.tfstate"
}

# preview_event ACTION BRANCH [PR]: the pull_request event of PR (default $PREVIEW_PR) from
# BRANCH into dev; the jobs run in GitHub environment dev-preview (variables, OIDC claims).
preview_event() {
  PR_NUMBER=${3:-$PREVIEW_PR} PR_ACTION=$1 PR_TITLE="preview me" PR_BASE=dev \
    act_run "preview-$1-${3:-$PREVIEW_PR}" pull_request preview.yml "$2" dev-preview
}

# The run used dev's preview role (the session STS issued, as oidc-login reports it), never
# dev's deploy role.
preview_role_used() { # log
  grep -q "assumed-role/gitops-app-dev-preview/" "$1" || fail "the preview run did not use dev's preview role: see $1"
  if grep -q "assumed-role/gitops-app-dev-deploy/" "$1"; then fail "the preview run used dev's deploy role: see $1"; fi
}

# preview_age WORKSPACE: eight days pass for the preview's record (its `Opened:` trailer).
preview_age() {
  local ws=$1 dir=$WORK/age-$1 old
  old=$(date -u -d '8 days ago' +%Y-%m-%dT%H:%M:%SZ)
  git clone -q "$REMOTE" "$dir"
  git -C "$dir" fetch -q origin "refs/tags/deploy/dev/preview/$ws:refs/tags/deploy/dev/preview/$ws"
  git -C "$dir" cat-file -p "deploy/dev/preview/$ws" | sed '1,/^$/d' |
    sed -E "s/^Opened: .*/Opened: $old/" > "$dir/msg"
  grep -q "^Opened: $old" "$dir/msg" || fail "the record of $ws has no Opened: trailer to age"
  git -C "$dir" tag -f -a -F "$dir/msg" "deploy/dev/preview/$ws" "deploy/dev/preview/$ws^{}" >/dev/null
  git -C "$dir" push -q -f origin "refs/tags/deploy/dev/preview/$ws"
}

# preview_sweep NAME: the scheduled run of preview.yml (on main, as GitHub runs it).
preview_sweep() {
  act_run "$1" schedule preview.yml main dev-preview
}

preview_demo() {
  local ws=pr-$PREVIEW_PR branch=change/preview dev_before log moto_from
  dev_before=$(remote_tag deploy/dev/current)
  # moto's request log from here on: no preview run may touch dev's default-workspace state.
  moto_from=$(wc -l < "$WORK/logs/moto.log")
  git -C "$APP" pull -q --ff-only origin dev
  git -C "$APP" checkout -q -b "$branch"
  echo "preview v1" > "$APP/app/index.html"
  git -C "$APP" commit -qam "app: a change to preview"
  git -C "$APP" push -q origin "HEAD:refs/heads/$branch"

  preview_event opened "$branch"
  [ "$LAST_RC" = 0 ] || fail "the preview of pull request #$PREVIEW_PR failed (exit $LAST_RC): see $LAST_LOG"
  log=$LAST_LOG
  preview_role_used "$log"
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
  preview_role_used "$LAST_LOG"
  timeline "pull request closed" "dev/$ws" "-" "-" "record deleted" "destroyed; state gone"

  # The sweep: two previews whose close events were missed, and one that cannot be destroyed.
  local n b
  for n in 42 43; do
    b=change/preview-$n
    git -C "$APP" checkout -q -b "$b" dev
    echo "preview $n" > "$APP/app/index.html"
    git -C "$APP" commit -qam "app: preview $n"
    git -C "$APP" push -q origin "HEAD:refs/heads/$b"
    preview_event opened "$b" "$n"
    [ "$LAST_RC" = 0 ] || fail "the preview of pull request #$n failed (exit $LAST_RC): see $LAST_LOG"
    preview_state_exists "pr-$n" || fail "no state under env:/pr-$n/ after its preview"
    preview_age "pr-$n"
    git -C "$APP" checkout -q dev
  done
  # pr-40: a record (as preview-open writes it, eight days old) and a state object that is not
  # a Terraform state: its destroy fails at the first terraform command.
  local dir=$WORK/age-pr-40 old
  old=$(date -u -d '8 days ago' +%Y-%m-%dT%H:%M:%SZ)
  git clone -q "$REMOTE" "$dir"
  printf 'preview dev/pr-40: broken\n\nPreview.\n\nEnvironment: dev\nWorkspace: pr-40\nPull-Request: 40\nOpened: %s\n' "$old" > "$dir/msg"
  git -C "$dir" tag -a -F "$dir/msg" deploy/dev/preview/pr-40 origin/dev
  git -C "$dir" push -q origin refs/tags/deploy/dev/preview/pr-40
  # (octet-stream: with curl's default form type moto stores an empty object, which Terraform
  # reads as an empty state.)
  account_s3 dev -X PUT -H 'Content-Type: application/octet-stream' --data-binary 'not a terraform state' -o /dev/null \
    "$MOTO/gitops-dev-tfstate/env:/pr-40/app/dev/terraform.tfstate" || fail "could not write pr-40's state"
  [ "$(account_s3 dev "$MOTO/gitops-dev-tfstate/env:/pr-40/app/dev/terraform.tfstate")" = 'not a terraform state' ] ||
    fail "pr-40's broken state did not reach moto as written"
  timeline "2 orphans + 1 broken" "dev" "-" "-" "deploy/dev/preview/pr-{40,42,43}" "records aged 8 days (max-age 7d)"

  preview_sweep preview-sweep
  [ "$LAST_RC" != 0 ] || fail "the sweep with a broken preview succeeded: it must fail and say which (see $LAST_LOG)"
  grep -q 'previews: 2 destroyed, 1 failed' "$LAST_LOG" || fail "the sweep did not destroy both orphans and report the broken one: see $LAST_LOG"
  grep -q 'preview pr-40::terraform' "$LAST_LOG" || fail "the sweep did not name pr-40's failed step: see $LAST_LOG"
  preview_role_used "$LAST_LOG"
  for n in 42 43; do
    preview_state_exists "pr-$n" && fail "the sweep left the state of pr-$n (see $LAST_LOG)"
    [ -z "$(remote_tag "deploy/dev/preview/pr-$n")" ] || fail "the sweep left deploy/dev/preview/pr-$n (see $LAST_LOG)"
  done
  preview_state_exists pr-40 || fail "the sweep removed the broken pr-40's state although its destroy failed"
  [ -n "$(remote_tag deploy/dev/preview/pr-40)" ] || fail "the failed pr-40 lost its record: the next sweep could not retry it"
  timeline "sweep (schedule)" "dev" "-" "-" "pr-42, pr-43 deleted; pr-40 kept" "2 destroyed, 1 failed: exit $LAST_RC"

  # Repaired (its state object removed), the next sweep removes pr-40 too.
  account_s3 dev -X DELETE -o /dev/null "$MOTO/gitops-dev-tfstate/env:/pr-40/app/dev/terraform.tfstate" ||
    fail "could not remove pr-40's broken state"
  preview_sweep preview-sweep-again
  [ "$LAST_RC" = 0 ] || fail "the second sweep failed (exit $LAST_RC): see $LAST_LOG"
  grep -q 'previews: 1 destroyed, 0 failed' "$LAST_LOG" || fail "the second sweep did not destroy pr-40: see $LAST_LOG"
  [ -z "$(remote_tag deploy/dev/preview/pr-40)" ] || fail "the second sweep left deploy/dev/preview/pr-40"
  preview_state_exists pr-40 && fail "the second sweep left a workspace pr-40"
  timeline "next sweep" "dev" "-" "-" "pr-40 deleted" "1 destroyed"

  [ "$(remote_tag deploy/dev/current)" = "$dev_before" ] || fail "the preview moved deploy/dev/current"
  # What the preview role may not do, shown by the stand-in: every state request of the preview
  # runs went to the workspaces (env:/pr-<n>/...), none to dev's default-workspace key.
  local touched
  touched=$(tail -n "+$((moto_from + 1))" "$WORK/logs/moto.log" | grep -c '/gitops-dev-tfstate/env:/pr-' || true)
  [ "$touched" -gt 0 ] || fail "moto's log shows no workspace state request of the previews (see $WORK/logs/moto.log)"
  if tail -n "+$((moto_from + 1))" "$WORK/logs/moto.log" | grep -q '/gitops-dev-tfstate/app/'; then
    fail "a preview run read or wrote dev's default-workspace state: $(tail -n "+$((moto_from + 1))" "$WORK/logs/moto.log" | grep -m1 '/gitops-dev-tfstate/app/')"
  fi
  timeline "previews vs dev's state" "dev" "-" "-" "$touched workspace requests" "0 to dev's default-workspace state (moto log)"
  # shellcheck disable=SC2034 # read by scripts/demo for --summary
  PREVIEW_SUMMARY="previews=ok"
}
