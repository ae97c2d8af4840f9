# shellcheck shell=bash
# scripts/demo-lib/accounts.sh — sourced by scripts/demo: an AWS account per environment, as
# terraform/core creates them (one modules/environment-account per account): dev and staging
# live in the non-production account, prod in its own. One moto server serves both accounts
# (credentials belong to the account of the role ARN they were issued for, so each deploy's
# state lands in its environment's account), and each account has its own registry host (the
# copy into prod crosses registries, as `ecr-push copy` does between ECR accounts).
#
# Uses the demo's helpers and variables: start, free_port, fail, WORK, REGION, MOTO, REGISTRY,
# REG_PORT, ENVS, HOME.

ACCOUNT_NONPROD=111111111111
ACCOUNT_PROD=222222222222
declare -A ACCOUNT_OF=([dev]=$ACCOUNT_NONPROD [staging]=$ACCOUNT_NONPROD [prod]=$ACCOUNT_PROD)
declare -A REGISTRY_OF=() ACCOUNT_AUTH=()

# The prod account's registry: the demo's registry configuration with its own port, storage
# and the login its account's ECR token gives. The non-production account uses $REGISTRY.
accounts_start_prod_registry() {
  local port; port=$(free_port)
  mkdir -p "$WORK/registry-prod"
  htpasswd -Bbn AWS "$ACCOUNT_PROD-auth-token" > "$WORK/registry-prod/htpasswd" 2>/dev/null
  sed -e "s#$WORK/registry/#$WORK/registry-prod/#g" -e "s#127.0.0.1:$REG_PORT#127.0.0.1:$port#" \
    "$WORK/registry/config.yml" > "$WORK/registry-prod/config.yml"
  start registry-prod docker-registry serve "$WORK/registry-prod/config.yml"
  REG_PROD_PORT=$port
  REGISTRY_OF=([dev]=$REGISTRY [staging]=$REGISTRY [prod]=127.0.0.1:$port)
}

# The registry logins an ECR token gives in each account, as the runner's docker config.
accounts_docker_config() {
  local a b
  a=$(printf 'AWS:%s-auth-token' "$ACCOUNT_NONPROD" | base64 -w0)
  b=$(printf 'AWS:%s-auth-token' "$ACCOUNT_PROD" | base64 -w0)
  printf '{"auths":{"%s":{"auth":"%s"},"%s":{"auth":"%s"}}}\n' "$REGISTRY" "$a" "${REGISTRY_OF[prod]}" "$b" > "$HOME/.docker/config.json"
}

# Per account: credentials of Core's role there (STS AssumeRole; moto issues them in the
# role's account), then each environment's state bucket, created in its own account.
accounts_state_buckets() {
  local acct xml ak sk token e
  for acct in "$ACCOUNT_NONPROD" "$ACCOUNT_PROD"; do
    xml=$(curl -sf --aws-sigv4 "aws:amz:$REGION:sts" --user bootstrap:bootstrap -X POST \
      --data "Action=AssumeRole&Version=2011-06-15&RoleArn=arn:aws:iam::$acct:role/gitops-core&RoleSessionName=demo-core" "$MOTO/") ||
      fail "could not assume Core's role in account $acct (moto STS)"
    ak=$(sed -n 's#.*<AccessKeyId>\([^<]*\)</AccessKeyId>.*#\1#p' <<<"$xml")
    sk=$(sed -n 's#.*<SecretAccessKey>\([^<]*\)</SecretAccessKey>.*#\1#p' <<<"$xml")
    token=$(sed -n 's#.*<SessionToken>\([^<]*\)</SessionToken>.*#\1#p' <<<"$xml")
    [ -n "$ak" ] && [ -n "$sk" ] && [ -n "$token" ] || fail "moto's AssumeRole in $acct returned no credentials"
    ACCOUNT_AUTH[$acct]="$ak:$sk $token"
  done
  for e in "${ENVS[@]}"; do
    account_s3 "$e" -o /dev/null -X PUT -H 'Content-Type: application/xml' \
      --data "<CreateBucketConfiguration><LocationConstraint>$REGION</LocationConstraint></CreateBucketConfiguration>" \
      "$MOTO/gitops-$e-tfstate" || fail "could not create the state bucket of $e in account ${ACCOUNT_OF[$e]}"
  done
}

# account_s3 ENV CURL-ARGS...: a signed S3 request as Core in ENV's account.
account_s3() {
  local auth=${ACCOUNT_AUTH[${ACCOUNT_OF[$1]}]}; shift
  curl -sf --aws-sigv4 "aws:amz:$REGION:s3" --user "${auth% *}" -H "x-amz-security-token: ${auth#* }" "$@"
}
