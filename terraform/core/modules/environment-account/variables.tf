variable "account_name" {
  description = "The account's name in the root module's var.accounts (keys of state_buckets and key_arns)."
  type        = string
}

variable "account_id" {
  description = "The AWS account this instance manages (12 digits); the provider must be authenticated in it."
  type        = string

  validation {
    condition     = can(regex("^[0-9]{12}$", var.account_id))
    error_message = "account_id must be 12 digits."
  }
}

variable "aws_region" {
  description = "Region of the state buckets, registries and roles."
  type        = string
}

variable "name_prefix" {
  description = "Prefix of every AWS name."
  type        = string
}

variable "create_oidc_provider" {
  description = "Create the account's GitHub OIDC provider (false when another project already owns it)."
  type        = bool
}

variable "image_retention_count" {
  description = "How many tagged images each registry keeps."
  type        = number
}

variable "state_noncurrent_days" {
  description = "Days noncurrent state versions are kept."
  type        = number
}

variable "environments" {
  description = <<-EOT
    The repository environments hosted in this account, keyed "<repository>/<environment>"
    (computed by the root module from the repositories' configuration files):
    the exact OIDC subjects of the deploy and plan roles, the plan workflow's job_workflow_ref (and the deploy workflows' plan jobs' ref and
    job_workflow_refs),
    the state key prefixes the roles may use (or, where `state_keys` is not null, exactly those
    keys and their `.tflock` files: the repository's explicit stacks deploying there), the registries (image name => ECR repository name),
    the managed policies to attach; where `previews` is true, the preview role's exact subject,
    refs and job_workflow_refs, the S3 backend's workspace_key_prefix and its managed policies.
  EOT
  type = map(object({
    repository                    = string
    full_name                     = string
    name                          = string
    deploy_sub                    = string
    plan_sub                      = string
    plan_ref                      = string
    plan_job_workflow_ref         = string
    drift_ref                     = string
    drift_job_workflow_ref        = string
    deploy_plan_ref               = string
    deploy_plan_job_workflow_refs = list(string)
    state_prefixes                = list(string)
    state_keys                    = optional(list(string))
    previews                      = bool
    preview_sub                   = string
    preview_refs                  = list(string)
    preview_job_workflow_refs     = list(string)
    workspace_key_prefix          = string
    preview_policy_arns           = list(string)
    registries                    = map(string)
    app_deploy_policy_arns        = list(string)
    plan_policy_arns              = list(string)
  }))
}

variable "pull_sources" {
  description = <<-EOT
    Per "<repository>/<environment>" of this account that has an environment below it: the ECR
    repository ARNs of that environment (possibly in another account) and its KMS key, which the
    deploy role pulls the tested digest from.
  EOT
  type = map(object({
    registry_arns = list(string)
    key_arn       = string
  }))
  default = {}
}

variable "pullers" {
  description = <<-EOT
    Per registry of this account, keyed "<repository>/<environment>/<image>": the deploy role ARN
    of the NEXT environment (possibly in another account), which may pull from it by digest.
  EOT
  type        = map(string)
  default     = {}
}
