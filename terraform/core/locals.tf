data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  envs       = { for i, e in var.environments : e.name => merge(e, { index = i }) }

  # The environment below each one (where its image digest is copied from); none for the first.
  source_env = { for i, e in var.environments : e.name => i == 0 ? null : var.environments[i - 1].name }

  oidc_host         = "token.actions.githubusercontent.com"
  oidc_provider_arn = var.create_oidc_provider ? aws_iam_openid_connect_provider.github[0].arn : "arn:${local.partition}:iam::${local.account_id}:oidc-provider/${local.oidc_host}"

  # The `sub` prefix of this repository in the chosen form (see var.sub_claim_format).
  sub_repo = var.sub_claim_format == "immutable" ? "repo:${var.github_owner}@${var.github_owner_id}/${var.repository}@${var.repository_id}" : "repo:${var.github_owner}/${var.repository}"

  # What a plan role's trust policy requires besides `sub`: a pull-request run of the plan workflow.
  plan_ref              = "refs/pull/*/merge"
  plan_job_workflow_ref = "${var.github_owner}/${var.repository}/${var.plan_workflow}@refs/pull/*/merge"
  # ... or a run of the drift workflow from the default branch (drift.yml: a refresh-only plan of
  # the deployed commit). `ref` and `job_workflow_ref` are ANDed, the values of each ORed, and
  # each `job_workflow_ref` names its own ref: neither workflow is trusted from the other's ref.
  drift_ref              = "refs/heads/${var.drift_branch}"
  drift_job_workflow_ref = "${var.github_owner}/${var.repository}/${var.drift_workflow}@refs/heads/${var.drift_branch}"
  plan_trust = {
    ref              = [local.plan_ref, local.drift_ref]
    job_workflow_ref = [local.plan_job_workflow_ref, local.drift_job_workflow_ref]
  }

  state_key      = { for n, e in local.envs : n => "app/${n}/terraform.tfstate" }
  registry_host  = "${local.account_id}.dkr.ecr.${var.aws_region}.amazonaws.com"
  repository_ids = var.sub_claim_format == "immutable" ? [var.github_owner_id, var.repository_id] : []
}

check "immutable_ids_given" {
  assert {
    condition     = var.sub_claim_format == "legacy" || (var.github_owner_id != null && var.repository_id != null)
    error_message = "sub_claim_format = \"immutable\" needs github_owner_id and repository_id."
  }
}
