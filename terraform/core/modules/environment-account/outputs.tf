output "deploy_role_arns" {
  description = "Deploy role per \"<repository>/<environment>\"."
  value       = { for k, r in aws_iam_role.deploy : k => r.arn }
}

output "plan_role_arns" {
  description = "Read-only plan role per \"<repository>/<environment>\"."
  value       = { for k, r in aws_iam_role.plan : k => r.arn }
}

output "preview_role_arns" {
  description = "Preview role per \"<repository>/<environment>\" of the environments that allow previews."
  value       = { for k, r in aws_iam_role.preview : k => r.arn }
}

output "state_buckets" {
  description = "State bucket per \"<account name>/<environment>\"."
  value       = { for n, b in aws_s3_bucket.state : "${var.account_name}/${n}" => b.bucket }
}

output "key_arns" {
  description = "KMS key (state and images) per \"<account name>/<environment>\"."
  value       = { for n, k in aws_kms_key.env : "${var.account_name}/${n}" => k.arn }
}

output "registry_arns" {
  description = "ECR repository ARN per \"<repository>/<environment>/<image>\"."
  value       = { for k, r in aws_ecr_repository.app : k => r.arn }
}

output "registry_urls" {
  description = "ECR repository URL per \"<repository>/<environment>/<image>\"."
  value       = { for k, r in aws_ecr_repository.app : k => r.repository_url }
}

output "registry_host" {
  description = "This account's registry host."
  value       = local.registry_host
}
