# The GitHub side, per repository: one deployment environment per environment (only its own
# branch may deploy to it; production environments wait for reviewers), one `<env>-plan`
# environment for pull-request plans (no reviewers, only the read-only role, branches only), one
# `<env>-preview` environment per environment that allows previews (#18: pull-request branches,
# only the preview role, optional reviewers), and the variables the workflow templates read
# (they point into the environment's own account).
# Role ARNs and bucket names are not secrets: they are variables.

resource "github_repository_environment" "deploy" {
  for_each            = local.envs
  repository          = each.value.repository
  environment         = each.value.name
  prevent_self_review = each.value.production
  can_admins_bypass   = !each.value.production

  dynamic "reviewers" {
    for_each = each.value.production ? [1] : []
    content {
      users = each.value.reviewer_users
      teams = each.value.reviewer_teams
    }
  }

  deployment_branch_policy {
    protected_branches     = false
    custom_branch_policies = true
  }

  # Each refusal is a local of locals.tf (Terraform evaluates them without the providers in
  # tests/it/e2e.rs); its message names what is at fault.
  lifecycle {
    precondition {
      condition     = !contains(local.envs_without_account, each.key)
      error_message = "Environment ${each.key}: its aws-account-id is not the id of an account in var.accounts (or it is missing while there are several accounts)."
    }
    precondition {
      condition     = !contains(local.envs_in_another_region, each.key)
      error_message = "Environment ${each.key}: its aws-region ${each.value.aws_region} differs from var.aws_region ${var.aws_region} (Core serves one region)."
    }
    precondition {
      condition     = !contains(local.production_envs_without_reviewers, each.key)
      error_message = "Environment ${each.key}: a production environment needs at least one reviewer (reviewers.users / reviewers.teams)."
    }
    precondition {
      condition     = length(local.shared_registries) == 0
      error_message = "Repository environments share a registry name (`registries`): each ECR repository belongs to one repository environment's image: ${join("; ", [for name, users in local.shared_registries : "${name} for [${join(", ", users)}]"])}."
    }
    precondition {
      condition     = length(local.overlapping_grants[each.key]) == 0
      error_message = "Environment ${each.key}: its state-prefixes (or stack state keys) overlap another repository's in the same state bucket: [${join(", ", local.overlapping_grants[each.key])}]."
    }
    precondition {
      condition     = length(local.unknown_stack_envs[each.value.repository]) == 0
      error_message = "Repository ${each.value.repository}: its stacks name environments its file does not have: [${join(", ", local.unknown_stack_envs[each.value.repository])}]."
    }
    precondition {
      condition     = !contains(local.envs_without_stacks, each.key)
      error_message = "Environment ${each.key}: no stack of its repository's `stacks:` deploys there, so its roles would have no state key."
    }
    precondition {
      condition     = length(local.keys_under_workspace_prefix[each.key]) == 0
      error_message = "Environment ${each.key}: stack state keys [${join(", ", local.keys_under_workspace_prefix[each.key])}] start with its workspace_key_prefix ${local.repos[each.value.repository].workspace_key_prefix}/, so they would be preview workspaces' keys."
    }
    precondition {
      condition     = length(local.keys_outside_prefixes[each.key]) == 0
      error_message = "Environment ${each.key}: stack state keys [${join(", ", local.keys_outside_prefixes[each.key])}] lie outside the repository's state-prefixes [${join(", ", local.repos[each.value.repository].state_prefixes)}]."
    }
  }
}

# Only the environment's own branch deploys to it (rollback.yml is dispatched on that branch too).
resource "github_repository_environment_deployment_policy" "deploy" {
  for_each       = local.envs
  repository     = each.value.repository
  environment    = github_repository_environment.deploy[each.key].environment
  branch_pattern = each.value.branch
}

# A pull-request plan runs in `<env>-plan`. For a `pull_request` run GitHub checks the pull
# request's HEAD BRANCH against this policy, so a branch pattern cannot tell a pull request from
# a push; what it does: no tag run ever enters a plan environment, and teams with a branch naming
# convention can narrow `plan_branch_patterns`. That the run IS a pull request of this repository,
# running plan.yml, is enforced where the credential is issued: the plan role's trust policy
# (modules/environment-account/iam.tf) accepts only `ref` = `refs/pull/<n>/merge` and that
# workflow. The environment holds variables only, never a secret.
resource "github_repository_environment" "plan" {
  for_each    = local.envs
  repository  = each.value.repository
  environment = "${each.value.name}-plan"

  deployment_branch_policy {
    protected_branches     = false
    custom_branch_policies = true
  }
}

resource "github_repository_environment_deployment_policy" "plan" {
  for_each = merge([for k, e in local.envs : {
    for pattern in var.repositories[e.repository].plan_branch_patterns : "${k} ${pattern}" => { env = k, pattern = pattern }
  }]...)

  repository     = local.envs[each.value.env].repository
  environment    = github_repository_environment.plan[each.value.env].environment
  branch_pattern = each.value.pattern
}

# Previews (#18): preview.yml's jobs run in `<env>-preview`, never in `<env>`, whose policy admits
# only the environment's own branch (widening it would hand the deploy role to any pushed branch).
# For a `pull_request` run GitHub evaluates an environment's deployment branch policy against the
# pull request's HEAD branch, not `refs/pull/<n>/merge` (the run's `head_branch`; GitHub's
# changelog 2023-08-10 "Actions runs triggered from tags or forks with the same name as a
# protected branch will now be blocked" hardens exactly that evaluation for fork heads; a public
# reproduction, github.com/thejcannon/ticket-3517845, shows a PR-triggered job refused with
# `Branch "<head branch>" is not allowed to deploy to <env>`); the scheduled sweep is evaluated
# against its branch (preview_sweep_branch, the default branch). The patterns are Ruby
# File.fnmatch patterns where `*` does not match `/` (GitHub's REST description of
# deployment-branch-policy name patterns), so the default `**/*` admits every branch name. As
# for `<env>-plan`, a branch pattern cannot tell a pull request from a push: that the run IS a
# pull request (or the sweep) of preview.yml is enforced where the credential is issued, the
# preview role's trust policy (`ref`, `job_workflow_ref`), and what the credential can do is
# the preview role's policy (workspace state only). Reviewers are optional (preview_reviewers).
resource "github_repository_environment" "preview" {
  for_each            = local.preview_envs
  repository          = each.value.repository
  environment         = "${each.value.name}-preview"
  prevent_self_review = length(var.repositories[each.value.repository].preview_reviewers.users) + length(var.repositories[each.value.repository].preview_reviewers.teams) > 0
  can_admins_bypass   = true

  dynamic "reviewers" {
    for_each = length(var.repositories[each.value.repository].preview_reviewers.users) + length(var.repositories[each.value.repository].preview_reviewers.teams) > 0 ? [var.repositories[each.value.repository].preview_reviewers] : []
    content {
      users = reviewers.value.users
      teams = reviewers.value.teams
    }
  }

  deployment_branch_policy {
    protected_branches     = false
    custom_branch_policies = true
  }

  lifecycle {
    precondition {
      condition     = length(local.prefixes_under_workspace_prefix[each.value.repository]) == 0
      error_message = "Repository ${each.value.repository}: state prefixes [${join(", ", local.prefixes_under_workspace_prefix[each.value.repository])}] start with its workspace_key_prefix ${local.repos[each.value.repository].workspace_key_prefix}/, so the preview role's workspace keys would include default-workspace state."
    }
  }
}

resource "github_repository_environment_deployment_policy" "preview" {
  for_each = merge([for k, e in local.preview_envs : {
    for pattern in var.repositories[e.repository].preview_branch_patterns : "${k} ${pattern}" => { env = k, pattern = pattern }
  }]...)

  repository     = local.envs[each.value.env].repository
  environment    = github_repository_environment.preview[each.value.env].environment
  branch_pattern = each.value.pattern
}

locals {
  # Per repository environment: what its jobs need, in the environment's own account (and, for
  # the copy of the tested digest, where the environment below keeps it — another account, maybe).
  env_variables = { for k, e in local.envs : k => {
    first_image  = local.repos[e.repository].images[0]
    bucket       = local.state_buckets["${e.account}/${e.name}"]
    registry     = local.registry_hosts[e.account]
    source       = e.previous == null ? "" : local.registry_hosts[local.envs[e.previous].account]
    source_image = e.previous == null ? "" : local.envs[e.previous].registries[local.repos[e.repository].images[0]]
  } }

  deploy_variables = merge([for k, e in local.envs : {
    for name, value in {
      AWS_REGION            = var.aws_region
      AWS_DEPLOY_ROLE_ARN   = local.deploy_role_arns[k]
      TF_STATE_BUCKET       = local.env_variables[k].bucket
      TF_STATE_KEY          = e.state_key
      ECR_REGISTRY          = local.env_variables[k].registry
      ECR_REPOSITORY        = e.registries[local.env_variables[k].first_image]
      SOURCE_ECR_REGISTRY   = local.env_variables[k].source
      SOURCE_ECR_REPOSITORY = local.env_variables[k].source_image
    } : "${k}/${name}" => { env = k, name = name, value = value }
    # Filtered on what the configuration says, never on a value (a role ARN is unknown until
    # applied, and for_each keys must be known at plan time).
    if e.previous != null || !startswith(name, "SOURCE_")
  }]...)

  plan_variables = merge([for k, e in local.envs : {
    for name, value in {
      AWS_REGION        = var.aws_region
      AWS_PLAN_ROLE_ARN = local.plan_role_arns[k]
      TF_STATE_BUCKET   = local.env_variables[k].bucket
      TF_STATE_KEY      = e.state_key
      ECR_REGISTRY      = local.env_variables[k].registry
      ECR_REPOSITORY    = e.registries[local.env_variables[k].first_image]
    } : "${k}/${name}" => { env = k, name = name, value = value }
  }]...)

  # `<env>-preview` (#18): the preview role, the environment's bucket and key (the workspace
  # state lives at <TF_WORKSPACE_KEY_PREFIX>/pr-<n>/<TF_STATE_KEY>), its registry. No deploy or
  # plan role ARN: preview.yml cannot name one by mistake.
  preview_variables = merge([for k, e in local.preview_envs : {
    for name, value in {
      AWS_REGION              = var.aws_region
      AWS_PREVIEW_ROLE_ARN    = local.preview_role_arns[k]
      TF_STATE_BUCKET         = local.env_variables[k].bucket
      TF_STATE_KEY            = e.state_key
      TF_WORKSPACE_KEY_PREFIX = local.repos[e.repository].workspace_key_prefix
      ECR_REGISTRY            = local.env_variables[k].registry
      ECR_REPOSITORY          = e.registries[local.env_variables[k].first_image]
    } : "${k}/${name}" => { env = k, name = name, value = value }
  }]...)
}

resource "github_actions_environment_variable" "deploy" {
  for_each      = local.deploy_variables
  repository    = local.envs[each.value.env].repository
  environment   = github_repository_environment.deploy[each.value.env].environment
  variable_name = each.value.name
  value         = each.value.value
}

resource "github_actions_environment_variable" "plan" {
  for_each      = local.plan_variables
  repository    = local.envs[each.value.env].repository
  environment   = github_repository_environment.plan[each.value.env].environment
  variable_name = each.value.name
  value         = each.value.value
}

resource "github_actions_environment_variable" "preview" {
  for_each      = local.preview_variables
  repository    = local.envs[each.value.env].repository
  environment   = github_repository_environment.preview[each.value.env].environment
  variable_name = each.value.name
  value         = each.value.value
}

resource "github_actions_variable" "tf_working_dir" {
  for_each      = var.repositories
  repository    = each.key
  variable_name = "TF_WORKING_DIR"
  value         = each.value.terraform_working_dir
}
