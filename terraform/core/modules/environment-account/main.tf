data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  partition = data.aws_partition.current.partition

  # One KMS key and one state bucket per environment NAME in this account: the repositories'
  # environments of that name share them, each under its own state key prefixes.
  env_names = toset([for k, e in var.environments : e.name])

  oidc_host         = "token.actions.githubusercontent.com"
  oidc_provider_arn = var.create_oidc_provider ? aws_iam_openid_connect_provider.github[0].arn : "arn:${local.partition}:iam::${var.account_id}:oidc-provider/${local.oidc_host}"

  registry_host = "${var.account_id}.dkr.ecr.${var.aws_region}.amazonaws.com"

  # Every registry of this account: "<repository>/<environment>/<image>" => what it needs.
  registries = merge([for k, e in var.environments : {
    for image, repo_name in e.registries : "${k}/${image}" => { env = k, name = e.name, repository_name = repo_name }
  }]...)

  # Per environment name: the next environments' deploy roles that pull images encrypted with its
  # key (whether there are any is known from the keys alone, so plans never wait for the ARNs).
  key_pullers     = { for n in local.env_names : n => distinct([for r, p in var.pullers : p if local.registries[r].name == n]) }
  key_has_pullers = { for n in local.env_names : n => anytrue([for r, _ in var.pullers : local.registries[r].name == n]) }
}

# The provider must be authenticated in the account this instance manages.
check "provider_in_the_named_account" {
  assert {
    condition     = data.aws_caller_identity.current.account_id == var.account_id
    error_message = "The aws provider of this environment account is authenticated in another account than account_id."
  }
}

# The account's GitHub OIDC identity provider. The audience is the one STS expects; no static keys
# exist anywhere in this design.
resource "aws_iam_openid_connect_provider" "github" {
  count          = var.create_oidc_provider ? 1 : 0
  url            = "https://${local.oidc_host}"
  client_id_list = ["sts.amazonaws.com"]
}

# ECR mounts a blob that one repository of this registry already holds into another (instead of
# an upload) only with this account setting; `ecr-push push` asks for the mount.
resource "aws_ecr_account_setting" "blob_mounting" {
  name  = "BLOB_MOUNTING"
  value = "ENABLED"
}
