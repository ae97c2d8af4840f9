output "deploy_role_arns" {
  description = "Deploy role per environment."
  value       = { for n, r in aws_iam_role.deploy : n => r.arn }
}

output "plan_role_arns" {
  description = "Read-only plan role per environment."
  value       = { for n, r in aws_iam_role.plan : n => r.arn }
}

output "state_buckets" {
  description = "State bucket per environment."
  value       = { for n, b in aws_s3_bucket.state : n => b.bucket }
}

output "registries" {
  description = "ECR repository URL per environment."
  value       = { for n, r in aws_ecr_repository.app : n => r.repository_url }
}

output "trusted_subjects" {
  description = "The exact OIDC `sub` each role trusts (compare with oidc-login's explanation on a refusal)."
  value = {
    for k, _ in data.aws_iam_policy_document.trust : k => "${local.sub_repo}:environment:${endswith(k, "/plan") ? "${split("/", k)[0]}-plan" : split("/", k)[0]}"
  }
}

output "plan_trusted_claims" {
  description = "Besides `sub` and `aud`, what every plan role's trust policy requires: a pull-request run (`ref`) of the plan workflow, or a default-branch run of the drift workflow (`job_workflow_ref`)."
  value       = local.plan_trust
}
