variable "aws_region" {
  description = "AWS region of the state buckets, registries and roles."
  type        = string

  validation {
    condition     = can(regex("^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-[0-9]$", var.aws_region))
    error_message = "The region must be a region code such as eu-west-1."
  }
}

variable "github_owner" {
  description = "GitHub organisation or user that owns the app repository."
  type        = string
}

variable "github_owner_id" {
  description = "Numeric id of the owner (for the immutable `sub` form). Required when sub_claim_format is \"immutable\"."
  type        = number
  default     = null
}

variable "repository" {
  description = "Name of the app repository (without the owner)."
  type        = string
}

variable "repository_id" {
  description = "Numeric id of the app repository (for the immutable `sub` form). Required when sub_claim_format is \"immutable\"."
  type        = number
  default     = null
}

variable "sub_claim_format" {
  description = <<-EOT
    Which form of the OIDC `sub` claim the trust policies pin:
    "legacy"    -> repo:OWNER/REPO:environment:ENV
    "immutable" -> repo:OWNER@OWNER_ID/REPO@REPO_ID:environment:ENV (survives renames and
                   cannot be claimed by a re-created repository of the same name).
  EOT
  type        = string
  default     = "legacy"

  validation {
    condition     = contains(["legacy", "immutable"], var.sub_claim_format)
    error_message = "sub_claim_format must be \"legacy\" or \"immutable\"."
  }
}

variable "name_prefix" {
  description = "Prefix of every AWS name (buckets, roles, registries)."
  type        = string
  default     = "gitops"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,20}$", var.name_prefix))
    error_message = "name_prefix must be 2-21 lowercase letters, digits or '-'."
  }
}

variable "environments" {
  description = <<-EOT
    The environments, in promotion order (the same model as .github/gitops.yml). `branch` is the
    branch that IS the environment; `production` adds required reviewers; `reviewer_user_ids` /
    `reviewer_team_ids` are GitHub numeric ids.
  EOT
  type = list(object({
    name              = string
    branch            = string
    production        = optional(bool, false)
    reviewer_user_ids = optional(list(number), [])
    reviewer_team_ids = optional(list(number), [])
  }))

  validation {
    condition     = alltrue([for e in var.environments : can(regex("^[a-z][a-z0-9-]{0,31}$", e.name))])
    error_message = "Environment names are lowercase letters, digits and '-', starting with a letter."
  }

  validation {
    condition     = length(distinct([for e in var.environments : e.name])) == length(var.environments)
    error_message = "Environment names must be unique."
  }

  validation {
    condition     = alltrue([for e in var.environments : !e.production || length(e.reviewer_user_ids) + length(e.reviewer_team_ids) > 0])
    error_message = "A production environment needs at least one reviewer."
  }
}

variable "create_oidc_provider" {
  description = "Create the account's GitHub OIDC provider (false when another project already owns it)."
  type        = bool
  default     = true
}

variable "app_deploy_policy_arns" {
  description = "Managed policies the app stack needs (ECS, RDS, networking), attached to every deploy role. Keep them scoped."
  type        = list(string)
  default     = []
}

variable "plan_policy_arns" {
  description = "Read-only managed policies the plan role needs to refresh the app stack (e.g. a scoped view-only policy)."
  type        = list(string)
  default     = []
}

variable "image_retention_count" {
  description = "How many tagged images each registry keeps (older ones expire; deploy history needs the recent ones)."
  type        = number
  default     = 50
}

variable "state_noncurrent_days" {
  description = "Days noncurrent state versions are kept (the state's undo history)."
  type        = number
  default     = 90
}

variable "terraform_working_dir" {
  description = "Repository variable TF_WORKING_DIR: the app's Terraform root read by the templates."
  type        = string
  default     = "terraform/app/release"
}

variable "plan_branch_patterns" {
  description = <<-EOT
    Head-branch name patterns (GitHub's fnmatch syntax; `*` stops at `/`, `**/*` is any branch)
    allowed to run a pull-request plan in the `<env>-plan` environments. Tags never are. The
    default admits every branch: the trust policy of the plan role is what limits the role to
    pull-request runs of plan.yml.
  EOT
  type        = list(string)
  default     = ["**/*"]

  validation {
    condition     = length(var.plan_branch_patterns) > 0 && alltrue([for p in var.plan_branch_patterns : length(trimspace(p)) > 0 && !startswith(p, "refs/")])
    error_message = "plan_branch_patterns needs at least one non-empty branch-name pattern (without refs/heads/)."
  }
}

variable "drift_workflow" {
  description = "Path of the drift workflow in the app repository; the plan roles also trust its jobs, from `drift_branch` only (`job_workflow_ref`)."
  type        = string
  default     = ".github/workflows/drift.yml"

  validation {
    condition     = can(regex("^\\.github/workflows/[A-Za-z0-9_.-]+\\.ya?ml$", var.drift_workflow))
    error_message = "drift_workflow must be a path like .github/workflows/drift.yml."
  }
}

variable "drift_branch" {
  description = "The branch the drift workflow's schedule runs on (the repository's default branch)."
  type        = string
  default     = "main"

  validation {
    condition     = can(regex("^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$", var.drift_branch)) && !strcontains(var.drift_branch, "..")
    error_message = "drift_branch must be a branch name without refs/heads/."
  }
}

variable "plan_workflow" {
  description = "Path of the pull-request plan workflow in the app repository; the plan roles trust only jobs of this workflow (`job_workflow_ref`)."
  type        = string
  default     = ".github/workflows/plan.yml"

  validation {
    condition     = can(regex("^\\.github/workflows/[A-Za-z0-9_.-]+\\.ya?ml$", var.plan_workflow))
    error_message = "plan_workflow must be a path like .github/workflows/plan.yml."
  }
}
