#!/usr/bin/env bash
# Installs gitops-actions binaries for a composite action step, verified or not at all.
#
# Release refs carry two files committed at the release tag (written by release.yml):
#   dist/version        the release tag, e.g. v1.4.0 (NOT github.action_ref: unreliable in composites)
#   dist/checksums.txt  "<sha256>  <file>" for every asset (<bin>-<target>.gz) AND for the binary
#                       inside it (<bin>-<target>), so cached binaries are re-verified on every use
#   dist/repository     optional "owner/name" whose releases hold the assets (default below)
# The asset is downloaded from $GITHUB_SERVER_URL/<repo>/releases/download/<version>/<asset>
# with retries, verified against the committed checksum, decompressed, verified again, smoke-tested
# (`<bin> --version` must print the stamped version) and only then moved into
# $RUNNER_TOOL_CACHE/gitops-actions/<version>/<target>. Any mismatch fails closed: nothing is
# written to GITHUB_PATH or GITHUB_OUTPUT and no unverified file is left in the cache.
#
# The tool cache is never put on PATH and never executed from. Every run copies the wanted
# binaries into a FRESH directory under $RUNNER_TEMP (mktemp), verifies each copy's sha256 there,
# checks that the directory holds exactly those binaries and nothing else, makes them read-only,
# and publishes that directory (bin-dir output; GITHUB_PATH for the root action). A cache directory
# holding anything but our binaries, or a cached binary whose sha256 does not match, is refused:
# someone else wrote there (a planted `git` would otherwise shadow the real one for every later
# step of the job).
#
# Without dist/version (an unreleased ref: a branch or a SHA of main) it builds from source with
# cargo, and says so. GITOPS_ACTIONS_LOCAL_BIN_DIR uses already-built binaries (self-tests). Both
# are copied into a fresh directory the same way (unverified against a release, and said so).
#
# Inputs (environment only):
#   GITOPS_ACTIONS_BINARIES      space-separated binaries to install (default: all)
#   GITOPS_ACTIONS_ADD_TO_PATH   "true": append the bin dir to $GITHUB_PATH
#   GITOPS_ACTIONS_LOCAL_BIN_DIR use the binaries in this directory (unverified; logged)
#   GITOPS_ACTIONS_DOWNLOAD_ATTEMPTS  download attempts per asset (default 4, 1..10)
#   GITHUB_SERVER_URL, RUNNER_TOOL_CACHE, RUNNER_TEMP, RUNNER_OS, RUNNER_ARCH, GITHUB_OUTPUT, GITHUB_PATH
# Outputs (step outputs): bin-dir, version.
set -euo pipefail
umask 022

ALL_BINARIES="oidc-login plan-gate ecr-push promote tag-deploy stacks"
DEFAULT_REPOSITORY="gitops-actions/gitops-actions"
TITLE="gitops-actions install"

log() { printf '%s: %s\n' "$TITLE" "$*"; }
fail() {
  # $1 is built by this script from validated values only.
  printf '::error title=%s::%s\n' "$TITLE" "$1"
  exit 1
}

TREE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"

# ---- inputs -------------------------------------------------------------------------------
binaries="${GITOPS_ACTIONS_BINARIES:-$ALL_BINARIES}"
for b in $binaries; do
  case " $ALL_BINARIES " in
    *" $b "*) ;;
    *) fail "GITOPS_ACTIONS_BINARIES names an unknown binary (allowed: $ALL_BINARIES)" ;;
  esac
done
[ -n "${binaries// /}" ] || fail "GITOPS_ACTIONS_BINARIES is empty"

add_to_path="${GITOPS_ACTIONS_ADD_TO_PATH:-false}"
case "$add_to_path" in true | false) ;; *) fail "GITOPS_ACTIONS_ADD_TO_PATH must be true or false" ;; esac

attempts="${GITOPS_ACTIONS_DOWNLOAD_ATTEMPTS:-4}"
[[ "$attempts" =~ ^([1-9]|10)$ ]] || fail "GITOPS_ACTIONS_DOWNLOAD_ATTEMPTS must be 1..10"

if command -v sha256sum >/dev/null; then
  sha256() { sha256sum "$1" | cut -d' ' -f1; }
elif command -v shasum >/dev/null; then
  sha256() { shasum -a 256 "$1" | cut -d' ' -f1; }
else
  fail "neither sha256sum nor shasum is available"
fi

no_line_break() {
  case "$2" in *$'\n'* | *$'\r'*) fail "$1 contains a line break" ;; esac
}

# ---- the published directory: fresh, exactly our binaries, each verified ------------------
temp_base="${RUNNER_TEMP:-${TMPDIR:-/tmp}}"
no_line_break "RUNNER_TEMP" "$temp_base"
bin_dir=""
cleanup() {
  if [ -n "$bin_dir" ] && [ -d "$bin_dir" ]; then rm -rf "$bin_dir"; fi
  if [ -n "${work:-}" ]; then rm -rf "$work"; fi
}
trap cleanup EXIT

# Entries of a directory (hidden ones included), one per line.
entries_of() {
  local d="$1" e
  (
    shopt -s nullglob dotglob
    for e in "$d"/*; do printf '%s\n' "${e##*/}"; done
  )
}

# stage_binaries SRC_DIR SUM_FN: copy each wanted binary from SRC_DIR into a fresh directory,
# require the copy's sha256 to equal `SUM_FN <bin>` (SUM_FN `unverified`: local binaries, no hash), then require the directory to hold exactly
# the wanted binaries (regular files, no links, nothing else); the copies are read-only.
stage_binaries() {
  local src="$1" sum_fn="$2" b want got n=0 e
  bin_dir="$(mktemp -d "$temp_base/gitops-actions-bin.XXXXXX")" ||
    fail "could not create a fresh bin dir under RUNNER_TEMP"
  bin_dir="$(cd "$bin_dir" && pwd -P)"
  for b in $binaries; do
    if [ "$sum_fn" = unverified ]; then
      # Local binaries are unverified by definition (said in a warning): hashing a file against
      # itself moments earlier proves nothing and costs ~0.4 s per debug binary and step.
      cp "$src/$b" "$bin_dir/$b" || fail "could not copy $b into the bin dir"
    else
      want="$("$sum_fn" "$b")" || fail "no checksum to verify $b against: refusing to install"
      cp "$src/$b" "$bin_dir/$b" || fail "could not copy $b into the bin dir"
      got="$(sha256 "$bin_dir/$b")"
      [ "$got" = "$want" ] || fail "checksum mismatch for $b in the bin dir (expected $want, got $got): refusing to install"
    fi
    chmod 555 "$bin_dir/$b"
  done
  while IFS= read -r e; do
    case " $binaries " in
      *" $e "*)
        if [ ! -f "$bin_dir/$e" ] || [ -L "$bin_dir/$e" ]; then
          fail "the bin dir holds a non-file named like a binary: refusing"
        fi
        ;;
      *) fail "the bin dir holds a file that is not one of our binaries: refusing" ;;
    esac
    n=$((n + 1))
  done < <(entries_of "$bin_dir")
  # shellcheck disable=SC2086 # word splitting counts the binaries
  set -- $binaries
  [ "$n" -eq "$#" ] || fail "the bin dir does not hold exactly the requested binaries: refusing"
  # The directory stays owner-only (mktemp's 0700) and writable by its owner, so the runner can
  # clean RUNNER_TEMP; the binaries in it are read-only.
}

# The sha256 of a file as it is now (source builds and local binaries: nothing to compare
# against but the file we copy).
source_sum() { [ -f "$src_dir/$1" ] && sha256 "$src_dir/$1"; }

# Everything this step publishes is written at the very end, after every check has passed.
publish() {
  local dir="$1" version="$2"
  no_line_break "bin dir" "$dir"
  if [ -n "${GITHUB_OUTPUT:-}" ]; then
    printf 'bin-dir=%s\nversion=%s\n' "$dir" "$version" >>"$GITHUB_OUTPUT"
  fi
  if [ "$add_to_path" = true ]; then
    if [ -n "${GITHUB_PATH:-}" ]; then
      printf '%s\n' "$dir" >>"$GITHUB_PATH"
    else
      log "GITHUB_PATH is not set; not adding $dir to PATH"
    fi
  fi
  log "ready: $binaries ($version) in $dir (holds nothing else)"
  bin_dir="" # published: keep it
}

# ---- local binaries (self-tests) ----------------------------------------------------------
if [ -n "${GITOPS_ACTIONS_LOCAL_BIN_DIR:-}" ]; then
  dir="$(cd "$GITOPS_ACTIONS_LOCAL_BIN_DIR" 2>/dev/null && pwd -P)" ||
    fail "GITOPS_ACTIONS_LOCAL_BIN_DIR is not a directory"
  for b in $binaries; do
    [ -x "$dir/$b" ] || fail "GITOPS_ACTIONS_LOCAL_BIN_DIR has no executable $b"
  done
  printf '::warning title=%s::using local, UNVERIFIED binaries from GITOPS_ACTIONS_LOCAL_BIN_DIR\n' "$TITLE"
  src_dir="$dir"
  stage_binaries "$src_dir" unverified
  publish "$bin_dir" local
  exit 0
fi

# ---- unreleased ref: build from source ----------------------------------------------------
if [ ! -f "$TREE/dist/version" ]; then
  printf '::warning title=%s::this ref has no released version (dist/version is missing): building from source with cargo; pin a release tag or its commit SHA for verified binaries\n' "$TITLE"
  command -v cargo >/dev/null || fail "cargo is required to build an unreleased ref from source"
  target_dir="${RUNNER_TEMP:-${TMPDIR:-/tmp}}/gitops-actions-build"
  bin_args=()
  for b in $binaries; do bin_args+=(--bin "$b"); done
  log "cargo build --release --locked ${bin_args[*]} (target dir $target_dir)"
  CARGO_TARGET_DIR="$target_dir" cargo build --release --locked --manifest-path "$TREE/Cargo.toml" "${bin_args[@]}" >&2 ||
    fail "building from source failed"
  src_dir="$target_dir/release"
  stage_binaries "$src_dir" source_sum
  publish "$bin_dir" source
  exit 0
fi

# ---- released ref: verified download ------------------------------------------------------
version="$(tr -d ' \t\r\n' <"$TREE/dist/version")"
[[ "$version" =~ ^v[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$ ]] || fail "dist/version is not a release tag like v1.2.3"
repository="$DEFAULT_REPOSITORY"
if [ -f "$TREE/dist/repository" ]; then
  repository="$(tr -d ' \t\r\n' <"$TREE/dist/repository")"
fi
[[ "$repository" =~ ^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$ ]] || fail "dist/repository is not owner/name"
checksums="$TREE/dist/checksums.txt"
[ -f "$checksums" ] || fail "dist/checksums.txt is missing at this ref: refusing to install unverified binaries"

server="${GITHUB_SERVER_URL:-https://github.com}"
server="${server%/}"
if [[ "$server" =~ ^https://[A-Za-z0-9.-]+(:[0-9]+)?$ ]]; then
  protos="=https"
elif [[ "$server" =~ ^http://(127\.0\.0\.1|localhost)(:[0-9]+)?$ ]]; then
  protos="=http" # loopback only (tests); anything else must be https
else
  fail "GITHUB_SERVER_URL must be https://host[:port]"
fi

os="${RUNNER_OS:-$(uname -s)}"
arch="${RUNNER_ARCH:-$(uname -m)}"
case "$os" in
  Linux) os_part=unknown-linux-musl ;;
  macOS | Darwin) os_part=apple-darwin ;;
  *) fail "unsupported runner OS (supported: Linux, macOS)" ;;
esac
case "$arch" in
  X64 | x86_64 | amd64) arch_part=x86_64 ;;
  ARM64 | aarch64 | arm64) arch_part=aarch64 ;;
  *) fail "unsupported runner architecture (supported: X64, ARM64)" ;;
esac
target="$arch_part-$os_part"

# The committed checksum of one file name; exactly one well-formed entry or nothing.
expected_sum() {
  local name="$1" sums
  sums="$(awk -v n="$name" '$2 == n || $2 == "*" n { print $1 }' "$checksums")"
  [[ "$sums" =~ ^[0-9a-f]{64}$ ]] || return 1
  printf '%s' "$sums"
}

cache_root="${RUNNER_TOOL_CACHE:-${RUNNER_TEMP:-${HOME:?}/.cache}}"
no_line_break "RUNNER_TOOL_CACHE" "$cache_root"
cache="$cache_root/gitops-actions/$version/$target"
mkdir -p "$cache"
cache="$(cd "$cache" && pwd -P)"

# The cache directory is ours alone: it may hold our binaries (regular files matching their
# committed checksums) and nothing else. Anything else means someone else wrote there.
while IFS= read -r e; do
  case " $ALL_BINARIES " in
    *" $e "*) ;;
    *) fail "the tool cache $cache holds a file that is not one of our binaries: refusing (it may have been tampered with; inspect and remove that directory)" ;;
  esac
  want="$(expected_sum "$e-$target")" ||
    fail "dist/checksums.txt has no valid entry for $e-$target: refusing to install"
  if [ ! -f "$cache/$e" ] || [ -L "$cache/$e" ] || [ "$(sha256 "$cache/$e")" != "$want" ]; then
    fail "the cached $e in $cache does not match its committed checksum: refusing (it may have been tampered with; inspect and remove that directory)"
  fi
done < <(entries_of "$cache")

missing=()
for b in $binaries; do
  if [ -f "$cache/$b" ]; then
    log "$b $version ($target): verified from the tool cache"
  else
    # Fail before any download when the checksum file cannot vouch for this binary.
    expected_sum "$b-$target.gz" >/dev/null ||
      fail "dist/checksums.txt has no valid entry for $b-$target.gz: refusing to install"
    expected_sum "$b-$target" >/dev/null ||
      fail "dist/checksums.txt has no valid entry for $b-$target: refusing to install"
    missing+=("$b")
  fi
done

if ((${#missing[@]})); then
  command -v curl >/dev/null || fail "curl is required to download release assets"
  work="$(mktemp -d "$cache_root/gitops-actions/.partial.XXXXXX")"
  for b in "${missing[@]}"; do
    asset="$b-$target.gz"
    url="$server/$repository/releases/download/$version/$asset"
    ok=false
    for ((i = 1; i <= attempts; i++)); do
      if curl --fail --silent --show-error --location --proto "$protos" --proto-redir "$protos" \
        --connect-timeout 10 --max-time 300 --output "$work/$asset" "$url"; then
        ok=true
        break
      fi
      if ((i < attempts)); then
        log "download of $asset failed (attempt $i of $attempts); retrying in ${i}s"
        sleep "$i"
      fi
    done
    $ok || fail "could not download $asset after $attempts attempts"
    got="$(sha256 "$work/$asset")"
    want="$(expected_sum "$asset")"
    [ "$got" = "$want" ] || fail "checksum mismatch for $asset (expected $want, got $got): refusing to install"
    gzip -dc "$work/$asset" >"$work/$b" 2>/dev/null || fail "$asset is not a valid gzip file"
    got="$(sha256 "$work/$b")"
    want="$(expected_sum "$b-$target")"
    [ "$got" = "$want" ] || fail "checksum mismatch for the binary inside $asset: refusing to install"
    chmod 755 "$work/$b"
    out="$("$work/$b" --version 2>/dev/null)" || fail "$b ($target) does not run on this runner"
    [ "$out" = "$b ${version#v}" ] || fail "$b --version does not report ${version#v}"
    log "$b $version ($target): downloaded, sha256 verified"
  done
  # Every binary verified: move them into the cache (rename within one file system).
  for b in "${missing[@]}"; do
    mv -f "$work/$b" "$cache/$b"
  done
fi

# Every use: copies of the cached binaries, re-verified against the committed checksums.
binary_sum() { expected_sum "$1-$target"; }
stage_binaries "$cache" binary_sum
publish "$bin_dir" "$version"
