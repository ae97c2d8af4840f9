output "deploy_role_arns" {
  description = "Deploy role per \"<repository>/<environment>\"."
  value       = local.deploy_role_arns
}

output "plan_role_arns" {
  description = "Read-only plan role per \"<repository>/<environment>\"."
  value       = local.plan_role_arns
}

output "preview_role_arns" {
  description = "Preview role per \"<repository>/<environment>\" of the environments that allow previews (#18; used by preview.yml in `<env>-preview`)."
  value       = local.preview_role_arns
}

output "state_buckets" {
  description = "State bucket per \"<account>/<environment>\"."
  value       = local.state_buckets
}

output "registries" {
  description = "ECR repository URL per \"<repository>/<environment>/<image>\"."
  value       = local.registry_urls
}

output "environment_accounts" {
  description = "The account (name in var.accounts) of every \"<repository>/<environment>\"."
  value       = { for k, e in local.envs : k => e.account }
}

output "trusted_subjects" {
  description = "The exact OIDC `sub` each role trusts, per \"<repository>/<environment>/<deploy|plan|preview>\" (compare with oidc-login's explanation on a refusal)."
  value = merge([for k, e in local.envs : merge({
    "${k}/deploy" = "${local.repos[e.repository].sub_repo}:environment:${e.name}"
    "${k}/plan"   = "${local.repos[e.repository].sub_repo}:environment:${e.name}-plan"
    }, { for r, v in { "${k}/preview" = "${local.repos[e.repository].sub_repo}:environment:${e.name}-preview" } : r => v if contains(keys(local.preview_envs), k) }
  )]...)
}

output "preview_trusted_claims" {
  description = "Besides `sub` and `aud`, what every preview role's trust policy requires, per repository: a pull-request run of the preview workflow, or its sweep on the sweep branch (`ref`, `job_workflow_ref`; ORed values, ANDed conditions)."
  value = { for r, c in local.repos : r => {
    ref              = c.preview_refs
    job_workflow_ref = c.preview_job_workflow_refs
  } }
}

output "plan_trusted_claims" {
  description = "Besides `sub` and `aud`, what every plan role's trust policy requires, per repository: a pull-request run (`ref`) of the plan workflow, or a run of the drift workflow from its branch (`job_workflow_ref`; the values of each are ORed, the two conditions ANDed)."
  value = { for r, c in local.repos : r => {
    ref              = [c.plan_ref, c.drift_ref]
    job_workflow_ref = [c.plan_job_workflow_ref, c.drift_job_workflow_ref]
  } }
}
