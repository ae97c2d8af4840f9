variable "aws_region" {
  description = "AWS region of the state buckets, registries and roles (every environment account)."
  type        = string

  validation {
    condition     = can(regex("^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-[0-9]$", var.aws_region))
    error_message = "The region must be a region code such as eu-west-1."
  }
}

variable "github_owner" {
  description = "GitHub organisation or user that owns the app repositories."
  type        = string
}

variable "github_owner_id" {
  description = "Numeric id of the owner (for the immutable `sub` form). Required when a repository uses sub_claim_format \"immutable\"."
  type        = number
  default     = null
}

variable "sub_claim_format" {
  description = <<-EOT
    Which form of the OIDC `sub` claim the trust policies pin (a repository may override it):
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

variable "accounts" {
  description = <<-EOT
    The environment accounts, by the name of their provider alias and module in accounts.tf:
    `id` is the 12-digit account id (the provider refuses any other account), `core_role_arn`
    the role Core assumes there (null: the credentials Core runs with are already in that
    account — the one-account setup), `create_oidc_provider` false when another project
    already owns the account's GitHub OIDC provider. An environment names its account with
    `aws-account-id` in its repository's configuration file; with one account it may omit it.
    Every name here needs its two blocks in accounts.tf (checked).
  EOT
  type = map(object({
    id                   = string
    core_role_arn        = optional(string)
    create_oidc_provider = optional(bool, true)
  }))

  validation {
    condition     = length(var.accounts) > 0 && alltrue([for a in values(var.accounts) : can(regex("^[0-9]{12}$", a.id))])
    error_message = "accounts needs at least one account, each with a 12-digit id."
  }

  validation {
    condition     = length(distinct([for a in values(var.accounts) : a.id])) == length(var.accounts)
    error_message = "Each account id may appear once in accounts (one provider and module per account)."
  }

  validation {
    condition     = alltrue([for a in values(var.accounts) : a.core_role_arn == null || can(regex("^arn:aws[a-z-]*:iam::${a.id}:role/.+$", a.core_role_arn))])
    error_message = "core_role_arn must be an IAM role ARN in the same account as id."
  }
}

variable "repositories" {
  description = <<-EOT
    The app repositories Core serves, by name (without the owner). `config` is the repository's
    environments file, relative to this directory, in the schema of the app repository's
    `.github/gitops.yml` (environments in promotion order with branch, production, reviewers,
    aws-account-id; `registries`; `state-prefixes`) — `stacks check-core` fails when the two
    disagree. `repository_id` is needed for the immutable `sub` form. The rest are the
    repository's GitHub variables and policies; the `preview_*` ones and
    `workspace_key_prefix` shape the `<env>-preview` GitHub environment and role of every
    environment that allows previews (README.md, "Preview environments").
  EOT
  type = map(object({
    config                 = string
    repository_id          = optional(number)
    sub_claim_format       = optional(string)
    plan_workflow          = optional(string, ".github/workflows/plan.yml")
    deploy_workflows       = optional(list(string), [".github/workflows/deploy.yml", ".github/workflows/rollback.yml"])
    drift_workflow         = optional(string, ".github/workflows/drift.yml")
    drift_branch           = optional(string, "main")
    terraform_working_dir  = optional(string, "terraform/app/release")
    plan_branch_patterns   = optional(list(string), ["**/*"])
    app_deploy_policy_arns = optional(list(string), [])
    plan_policy_arns       = optional(list(string), [])
    # Preview environments (#18), for the repository's environments that allow previews.
    preview_workflow        = optional(string, ".github/workflows/preview.yml")
    preview_sweep_branch    = optional(string, "main")
    preview_branch_patterns = optional(list(string), ["**/*"])
    preview_reviewers = optional(object({
      users = optional(list(number), [])
      teams = optional(list(number), [])
    }), {})
    workspace_key_prefix = optional(string, "env:")
    preview_policy_arns  = optional(list(string))
  }))

  validation {
    condition     = alltrue([for r, c in var.repositories : can(regex("^[A-Za-z0-9_.-]{1,100}$", r))])
    error_message = "Repository names are GitHub names without the owner (letters, digits, '.', '_', '-')."
  }

  validation {
    condition     = alltrue([for c in values(var.repositories) : c.sub_claim_format == null || contains(["legacy", "immutable"], coalesce(c.sub_claim_format, "legacy"))])
    error_message = "A repository's sub_claim_format must be \"legacy\" or \"immutable\"."
  }

  validation {
    condition     = alltrue([for c in values(var.repositories) : coalesce(c.sub_claim_format, var.sub_claim_format) != "immutable" || (var.github_owner_id != null && c.repository_id != null)])
    error_message = "A repository whose sub_claim_format is \"immutable\" (its own or the default) needs github_owner_id and its repository_id: its roles trust repo:OWNER@OWNER_ID/REPO@REPO_ID:..."
  }

  validation {
    condition     = alltrue([for c in values(var.repositories) : can(regex("^\\.github/workflows/[A-Za-z0-9_.-]+\\.ya?ml$", c.plan_workflow))])
    error_message = "plan_workflow must be a path like .github/workflows/plan.yml."
  }

  validation {
    condition     = alltrue([for c in values(var.repositories) : alltrue([for w in c.deploy_workflows : can(regex("^\\.github/workflows/[A-Za-z0-9_.-]+\\.ya?ml$", w))])])
    error_message = "deploy_workflows must be paths like .github/workflows/deploy.yml (their plan jobs plan in <env>-plan before the apply job)."
  }

  validation {
    condition     = alltrue([for c in values(var.repositories) : can(regex("^\\.github/workflows/[A-Za-z0-9_.-]+\\.ya?ml$", c.drift_workflow)) && can(regex("^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$", c.drift_branch)) && !strcontains(c.drift_branch, "..")])
    error_message = "drift_workflow must be a path like .github/workflows/drift.yml, and drift_branch a branch name without refs/heads/."
  }

  validation {
    condition     = alltrue([for c in values(var.repositories) : length(c.plan_branch_patterns) > 0 && alltrue([for p in c.plan_branch_patterns : length(trimspace(p)) > 0 && !startswith(p, "refs/")])])
    error_message = "plan_branch_patterns needs at least one non-empty branch-name pattern (without refs/heads/)."
  }

  validation {
    condition     = alltrue([for c in values(var.repositories) : can(regex("^\\.github/workflows/[A-Za-z0-9_.-]+\\.ya?ml$", c.preview_workflow)) && can(regex("^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$", c.preview_sweep_branch)) && !strcontains(c.preview_sweep_branch, "..")])
    error_message = "preview_workflow must be a path like .github/workflows/preview.yml, and preview_sweep_branch (the branch the scheduled sweep runs on: the default branch) a branch name without refs/heads/."
  }

  validation {
    condition     = alltrue([for c in values(var.repositories) : !startswith(c.drift_branch, "refs/") && !startswith(c.preview_sweep_branch, "refs/")])
    error_message = "drift_branch and preview_sweep_branch are branch names without refs/ (e.g. main): the trust policies add refs/heads/ themselves, so refs/heads/main would never match."
  }

  validation {
    condition     = alltrue([for c in values(var.repositories) : length(c.preview_branch_patterns) > 0 && alltrue([for p in c.preview_branch_patterns : length(trimspace(p)) > 0 && !startswith(p, "refs/")])])
    error_message = "preview_branch_patterns needs at least one non-empty branch-name pattern (without refs/heads/)."
  }

  validation {
    condition     = alltrue([for c in values(var.repositories) : length(c.preview_reviewers.users) + length(c.preview_reviewers.teams) <= 6])
    error_message = "preview_reviewers: GitHub accepts at most 6 required reviewers (users and teams) per environment."
  }

  # The S3 backend keeps a workspace's state at <workspace_key_prefix>/<workspace>/<key>.
  validation {
    condition     = alltrue([for c in values(var.repositories) : can(regex("^[A-Za-z0-9_.:-]{1,64}$", c.workspace_key_prefix))])
    error_message = "workspace_key_prefix must be 1-64 letters, digits, '.', '_', ':' or '-' (no '/'): the S3 backend's prefix of workspace state keys (default env:)."
  }
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
