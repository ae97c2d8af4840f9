# The GitHub side: one deployment environment per environment (only its own branch may deploy
# to it; production environments wait for reviewers), one `<env>-plan` environment for
# pull-request plans (no reviewers, only the read-only role, branches only), and the variables the
# workflow templates read. Role ARNs and bucket names are not secrets: they are variables.

resource "github_repository_environment" "deploy" {
  for_each            = local.envs
  repository          = var.repository
  environment         = each.key
  prevent_self_review = each.value.production
  can_admins_bypass   = !each.value.production

  dynamic "reviewers" {
    for_each = each.value.production ? [1] : []
    content {
      users = each.value.reviewer_user_ids
      teams = each.value.reviewer_team_ids
    }
  }

  deployment_branch_policy {
    protected_branches     = false
    custom_branch_policies = true
  }
}

# Only the environment's own branch deploys to it (rollback.yml is dispatched on that branch too).
resource "github_repository_environment_deployment_policy" "deploy" {
  for_each       = local.envs
  repository     = var.repository
  environment    = github_repository_environment.deploy[each.key].environment
  branch_pattern = each.value.branch
}

# A pull-request plan runs in `<env>-plan`. For a `pull_request` run GitHub checks the pull
# request's HEAD BRANCH against this policy, so a branch pattern cannot tell a pull request from
# a push; what it does: no tag run ever enters a plan environment, and teams with a branch naming
# convention can narrow `plan_branch_patterns`. That the run IS a pull request of this repository,
# running plan.yml, is enforced where the credential is issued: the plan role's trust policy
# (iam.tf) accepts only `ref` = `refs/pull/<n>/merge` and that workflow. The environment holds
# variables only, never a secret.
resource "github_repository_environment" "plan" {
  for_each    = local.envs
  repository  = var.repository
  environment = "${each.key}-plan"

  deployment_branch_policy {
    protected_branches     = false
    custom_branch_policies = true
  }
}

resource "github_repository_environment_deployment_policy" "plan" {
  for_each = { for pair in setproduct(keys(local.envs), var.plan_branch_patterns) : "${pair[0]} ${pair[1]}" => { env = pair[0], pattern = pair[1] } }

  repository     = var.repository
  environment    = github_repository_environment.plan[each.value.env].environment
  branch_pattern = each.value.pattern
}

locals {
  deploy_variables = merge([for n, e in local.envs : {
    for k, v in {
      AWS_REGION            = var.aws_region
      AWS_DEPLOY_ROLE_ARN   = aws_iam_role.deploy[n].arn
      TF_STATE_BUCKET       = aws_s3_bucket.state[n].bucket
      TF_STATE_KEY          = local.state_key[n]
      ECR_REGISTRY          = local.registry_host
      ECR_REPOSITORY        = aws_ecr_repository.app[n].name
      SOURCE_ECR_REGISTRY   = local.source_env[n] == null ? "" : local.registry_host
      SOURCE_ECR_REPOSITORY = local.source_env[n] == null ? "" : aws_ecr_repository.app[local.source_env[n]].name
    } : "${n}/${k}" => { env = n, name = k, value = v } if v != ""
  }]...)

  plan_variables = merge([for n, e in local.envs : {
    for k, v in {
      AWS_REGION        = var.aws_region
      AWS_PLAN_ROLE_ARN = aws_iam_role.plan[n].arn
      TF_STATE_BUCKET   = aws_s3_bucket.state[n].bucket
      TF_STATE_KEY      = local.state_key[n]
      ECR_REGISTRY      = local.registry_host
      ECR_REPOSITORY    = aws_ecr_repository.app[n].name
    } : "${n}-plan/${k}" => { env = "${n}-plan", name = k, value = v }
  }]...)
}

resource "github_actions_environment_variable" "deploy" {
  for_each      = local.deploy_variables
  repository    = var.repository
  environment   = github_repository_environment.deploy[each.value.env].environment
  variable_name = each.value.name
  value         = each.value.value
}

resource "github_actions_environment_variable" "plan" {
  for_each      = local.plan_variables
  repository    = var.repository
  environment   = github_repository_environment.plan[trimsuffix(each.value.env, "-plan")].environment
  variable_name = each.value.name
  value         = each.value.value
}

resource "github_actions_variable" "tf_working_dir" {
  repository    = var.repository
  variable_name = "TF_WORKING_DIR"
  value         = var.terraform_working_dir
}
