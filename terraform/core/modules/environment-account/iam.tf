# Per repository + environment two roles, both assumable ONLY through GitHub OIDC, only with the
# STS audience, and only by a job of that repository running in the named GitHub environment
# (exact `sub`, no wildcard):
#   - deploy: `environment:<env>`      — read/write the repository's state key prefixes and lock
#                                        files (with explicit `stacks:`, exactly the keys of the
#                                        stacks deploying in <env> and their lock files), push to its registries, pull from the ones below
#                                        (in another account, possibly);
#   - plan:   `environment:<env>-plan` — read the repository's state objects and lock files
#                                        (decrypting them only through S3), describe its images;
#                                        and only from a pull-request run (`ref` =
#                                        `refs/pull/<n>/merge`) of the plan workflow
#                                        (`job_workflow_ref`), or from the plan job of
#                                        deploy.yml / rollback.yml (`deploy_workflows`) running
#                                        on the environment's own branch (reviewed code); so
#                                        pushing any other branch with a workflow that names
#                                        `<env>-plan` gets nothing.
#   - preview: `environment:<env>-preview` (#18), only where previews are allowed (never
#                                        production) — read/write/delete ONLY the S3 backend's
#                                        workspace state of `pr-<n>` (`<workspace_key_prefix>/
#                                        pr-*/<state prefix>*`, lock files included), push to the
#                                        environment's registries, the app stack's policies
#                                        (`preview_policy_arns`); never the default workspace's
#                                        state. Only from a pull-request run of the preview
#                                        workflow, or its sweep on the sweep branch
#                                        (`job_workflow_ref`): a pull request's code runs with it,
#                                        so this policy, not the workflow, is the boundary.
# GitHub puts `environment:<name>` into `sub` for every job that names an environment, so a
# pull-request job (plan.yml runs in `<env>-plan`, preview.yml in `<env>-preview`) can never get
# the deploy role.
# What a plan role can read, and why that is acceptable: docs/actions.md ("What a plan role can read").

locals {
  roles = merge([for k, e in var.environments : merge({
    "${k}/deploy" = { env = k, kind = "deploy", sub = e.deploy_sub }
    "${k}/plan"   = { env = k, kind = "plan", sub = e.plan_sub }
    }, { for r, v in { "${k}/preview" = { env = k, kind = "preview", sub = e.preview_sub } } : r => v if e.previews }
  )]...)

  # The environments with previews (the root never marks a production one).
  preview_envs = { for k, e in var.environments : k => e if e.previews }

  # The state objects a repository's roles may use in its environment's bucket: with explicit
  # stacks (`state_keys`), exactly each stack's key and its `.tflock`; else everything under the
  # repository's prefixes.
  state_objects = { for k, e in var.environments : k => e.state_keys == null ? [for p in e.state_prefixes : "${aws_s3_bucket.state[e.name].arn}/${p}*"] : flatten([for key in e.state_keys : ["${aws_s3_bucket.state[e.name].arn}/${key}", "${aws_s3_bucket.state[e.name].arn}/${key}.tflock"]]) }
  state_locks   = { for k, e in var.environments : k => e.state_keys == null ? [for p in e.state_prefixes : "${aws_s3_bucket.state[e.name].arn}/${p}*.tflock"] : [for key in e.state_keys : "${aws_s3_bucket.state[e.name].arn}/${key}.tflock"] }
  state_listing = { for k, e in var.environments : k => e.state_keys == null ? [for p in e.state_prefixes : "${p}*"] : e.state_keys }

  # The S3 backend's workspace state of the previews, `<workspace_key_prefix>/pr-<n>/<key>` (and
  # `<key>.tflock`), under the repository's prefixes or, with explicit stacks, of exactly their
  # keys: the only state a preview role touches.
  preview_objects = { for k, e in local.preview_envs : k => e.state_keys == null ? [for p in e.state_prefixes : "${aws_s3_bucket.state[e.name].arn}/${e.workspace_key_prefix}/pr-*/${p}*"] : flatten([for key in e.state_keys : ["${aws_s3_bucket.state[e.name].arn}/${e.workspace_key_prefix}/pr-*/${key}", "${aws_s3_bucket.state[e.name].arn}/${e.workspace_key_prefix}/pr-*/${key}.tflock"]]) }
  preview_listing = { for k, e in local.preview_envs : k => concat(["${e.workspace_key_prefix}/"], e.state_keys == null ? [for p in e.state_prefixes : "${e.workspace_key_prefix}/pr-*/${p}*"] : [for key in e.state_keys : "${e.workspace_key_prefix}/pr-*/${key}"]) }
}

data "aws_iam_policy_document" "trust" {
  #checkov:skip=CKV_AWS_358:The `sub` condition is one exact subject per role (repo:OWNER/REPO:environment:ENV or its immutable form, no wildcard), built in the root module's locals (deploy_sub, plan_sub, preview_sub) and passed in through var.environments, which checkov does not follow; tests/it/e2e.rs checks its form.
  for_each = local.roles

  statement {
    sid     = "GitHubOidc${title(each.value.kind)}"
    effect  = "Allow"
    actions = ["sts:AssumeRoleWithWebIdentity", "sts:TagSession"]
    principals {
      type        = "Federated"
      identifiers = [local.oidc_provider_arn]
    }
    condition {
      test     = "StringEquals"
      variable = "${local.oidc_host}:aud"
      values   = ["sts.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "${local.oidc_host}:sub"
      values   = [each.value.sub]
    }

    # Plan roles: pull-request runs of the plan workflow, or runs of the drift workflow from its
    # branch (STS validates these GitHub claims). The values of each condition are ORed and the
    # two conditions ANDed; each job_workflow_ref names its own ref, so neither workflow is
    # trusted from the other's ref.
    dynamic "condition" {
      for_each = each.value.kind == "plan" ? {
        ref              = [var.environments[each.value.env].plan_ref, var.environments[each.value.env].drift_ref]
        job_workflow_ref = [var.environments[each.value.env].plan_job_workflow_ref, var.environments[each.value.env].drift_job_workflow_ref]
      } : {}
      content {
        test     = "StringLike"
        variable = "${local.oidc_host}:${condition.key}"
        values   = condition.value
      }
    }

    # Preview roles (#18): pull-request runs of the preview workflow (opened, synchronize, closed
    # ...: `ref` = refs/pull/<n>/merge), or its scheduled sweep / Run workflow on the sweep branch.
    # As above, the values of each condition are ORed and the two conditions ANDed, and each
    # job_workflow_ref names its own ref; a workflow_dispatch from any other branch gets nothing.
    dynamic "condition" {
      for_each = each.value.kind == "preview" ? {
        ref              = var.environments[each.value.env].preview_refs
        job_workflow_ref = var.environments[each.value.env].preview_job_workflow_refs
      } : {}
      content {
        test     = "StringLike"
        variable = "${local.oidc_host}:${condition.key}"
        values   = condition.value
      }
    }
  }

  # Plan roles, also: the plan jobs of deploy.yml and rollback.yml (#16), which plan in
  # `<env>-plan` before the approved apply job runs in `<env>`. Only runs of those workflows on
  # the environment's own branch: reviewed code, never a pull request's.
  dynamic "statement" {
    for_each = each.value.kind == "plan" ? { (each.value.env) = each.value.env } : {}
    content {
      sid     = "GitHubOidcPlanBeforeApply"
      effect  = "Allow"
      actions = ["sts:AssumeRoleWithWebIdentity", "sts:TagSession"]
      principals {
        type        = "Federated"
        identifiers = [local.oidc_provider_arn]
      }
      condition {
        test     = "StringEquals"
        variable = "${local.oidc_host}:aud"
        values   = ["sts.amazonaws.com"]
      }
      condition {
        test     = "StringEquals"
        variable = "${local.oidc_host}:sub"
        values   = [each.value.sub]
      }
      condition {
        test     = "StringEquals"
        variable = "${local.oidc_host}:ref"
        values   = [var.environments[each.value.env].deploy_plan_ref]
      }
      condition {
        test     = "StringEquals"
        variable = "${local.oidc_host}:job_workflow_ref"
        values   = var.environments[each.value.env].deploy_plan_job_workflow_refs
      }
    }
  }
}

resource "aws_iam_role" "deploy" {
  for_each             = var.environments
  name                 = "${var.name_prefix}-${each.value.repository}-${each.value.name}-deploy"
  description          = "GitHub Actions deploys of ${each.value.full_name} to ${each.value.name}"
  assume_role_policy   = data.aws_iam_policy_document.trust["${each.key}/deploy"].json
  max_session_duration = 3600
}

resource "aws_iam_role" "plan" {
  for_each             = var.environments
  name                 = "${var.name_prefix}-${each.value.repository}-${each.value.name}-plan"
  description          = "GitHub Actions pull-request plans of ${each.value.full_name} for ${each.value.name} (read-only)"
  assume_role_policy   = data.aws_iam_policy_document.trust["${each.key}/plan"].json
  max_session_duration = 3600
}

data "aws_iam_policy_document" "deploy" {
  for_each = var.environments

  statement {
    sid       = "StateList"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.state[each.value.name].arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = local.state_listing[each.key]
    }
  }

  statement {
    sid       = "StateReadWrite"
    actions   = ["s3:GetObject", "s3:PutObject"]
    resources = local.state_objects[each.key]
  }

  statement {
    sid       = "StateLockRelease"
    actions   = ["s3:DeleteObject"]
    resources = local.state_locks[each.key]
  }

  # No workspace state (#18): previews run with the environment's preview role (below), never
  # with this one.

  statement {
    sid       = "StateEncryption"
    actions   = ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"]
    resources = [aws_kms_key.env[each.value.name].arn]
  }

  statement {
    sid = "RegistryLogin"
    # GetAuthorizationToken has no resource-level permission: "*" is the only valid resource.
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"]
  }

  statement {
    sid = "RegistryPush"
    actions = [
      "ecr:BatchCheckLayerAvailability",
      "ecr:BatchGetImage",
      "ecr:CompleteLayerUpload",
      "ecr:DescribeImages",
      "ecr:GetDownloadUrlForLayer",
      "ecr:InitiateLayerUpload",
      "ecr:PutImage",
      "ecr:UploadLayerPart",
    ]
    resources = [for image, _ in each.value.registries : aws_ecr_repository.app["${each.key}/${image}"].arn]
  }

  # The environment below (its registry policy admits this role; cross-account needs both sides).
  dynamic "statement" {
    for_each = contains(keys(var.pull_sources), each.key) ? [var.pull_sources[each.key]] : []
    content {
      sid = "RegistryPullFromBelow"
      actions = [
        "ecr:BatchCheckLayerAvailability",
        "ecr:BatchGetImage",
        "ecr:DescribeImages",
        "ecr:GetDownloadUrlForLayer",
      ]
      resources = statement.value.registry_arns
    }
  }

  dynamic "statement" {
    for_each = contains(keys(var.pull_sources), each.key) ? [var.pull_sources[each.key]] : []
    content {
      sid       = "RegistryDecryptFromBelow"
      actions   = ["kms:Decrypt"]
      resources = [statement.value.key_arn]
      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["ecr.${var.aws_region}.amazonaws.com"]
      }
    }
  }
}

resource "aws_iam_role_policy" "deploy" {
  for_each = var.environments
  name     = "state-and-registry"
  role     = aws_iam_role.deploy[each.key].id
  policy   = data.aws_iam_policy_document.deploy[each.key].json
}

resource "aws_iam_role_policy_attachment" "deploy_app" {
  for_each   = merge([for k, e in var.environments : { for arn in e.app_deploy_policy_arns : "${k} ${arn}" => { env = k, arn = arn } }]...)
  role       = aws_iam_role.deploy[each.value.env].name
  policy_arn = each.value.arn
}

data "aws_iam_policy_document" "plan" {
  for_each = var.environments

  # Exactly what `terraform init` + `terraform plan -lock=false` need from the S3 backend: list
  # the repository's state objects (and the workspace prefix `env:/`, which init lists: key names
  # only), read the state objects and the lock files (they name who holds the lock, no state
  # data). Never PutObject or DeleteObject: a plan cannot take, break or write anything.
  statement {
    sid       = "StateList"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.state[each.value.name].arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = concat(local.state_listing[each.key], ["env:/"])
    }
  }

  statement {
    sid       = "StateRead"
    actions   = ["s3:GetObject"]
    resources = local.state_objects[each.key]
  }

  # The environment's key also encrypts its images: the plan role may decrypt only what S3 asks
  # it to for this state bucket (bucket keys: the context is the bucket ARN), never call KMS
  # directly, never encrypt.
  statement {
    sid       = "StateDecrypt"
    actions   = ["kms:Decrypt"]
    resources = [aws_kms_key.env[each.value.name].arn]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${var.aws_region}.amazonaws.com"]
    }
    condition {
      test     = "StringLike"
      variable = "kms:EncryptionContext:aws:s3:arn"
      values   = concat([aws_s3_bucket.state[each.value.name].arn], local.state_objects[each.key])
    }
  }

  statement {
    sid       = "RegistryDescribe"
    actions   = ["ecr:DescribeImages", "ecr:DescribeRepositories"]
    resources = [for image, _ in each.value.registries : aws_ecr_repository.app["${each.key}/${image}"].arn]
  }
}

resource "aws_iam_role_policy" "plan" {
  for_each = var.environments
  name     = "state-read"
  role     = aws_iam_role.plan[each.key].id
  policy   = data.aws_iam_policy_document.plan[each.key].json
}

resource "aws_iam_role_policy_attachment" "plan_app" {
  for_each   = merge([for k, e in var.environments : { for arn in e.plan_policy_arns : "${k} ${arn}" => { env = k, arn = arn } }]...)
  role       = aws_iam_role.plan[each.value.env].name
  policy_arn = each.value.arn
}

# Preview environments (#18): one role per environment that allows previews, for the jobs of the
# preview workflow in the GitHub environment `<env>-preview`. A pull request's code runs with it
# (its Terraform, its workflow file), so what it may do is this policy and nothing else: the
# previews' workspace state and lock files (never the default workspace's state, never another
# prefix), the environment's registries (ECR's tags are immutable here, so a push cannot move a
# tag that exists; IAM has no condition key on the tag name, the workflow tags `pr-<n>-<sha>`),
# and the app stack's own policies (`preview_policy_arns`, by default the deploy role's
# `app_deploy_policy_arns`; narrow them, e.g. with a permissions boundary on `*-pr-*` names).
resource "aws_iam_role" "preview" {
  for_each             = local.preview_envs
  name                 = "${var.name_prefix}-${each.value.repository}-${each.value.name}-preview"
  description          = "GitHub Actions preview environments (pull requests) of ${each.value.full_name} in ${each.value.name}: workspace state only"
  assume_role_policy   = data.aws_iam_policy_document.trust["${each.key}/preview"].json
  max_session_duration = 3600
}

data "aws_iam_policy_document" "preview" {
  for_each = local.preview_envs

  # The S3 backend lists `<workspace_key_prefix>/` to find the workspaces (key names only) and
  # the previews' own keys; never the default workspace's prefixes.
  statement {
    sid       = "PreviewStateList"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.state[each.value.name].arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = local.preview_listing[each.key]
    }
  }

  # Read/write the previews' state, take and release their lock files (`<key>.tflock`, Terraform's
  # native S3 locking: there is no lock table), delete a workspace's state with its preview.
  statement {
    sid       = "PreviewStateReadWrite"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]
    resources = local.preview_objects[each.key]
  }

  # The environment's key, only through S3 for this bucket (bucket keys: the context is the
  # bucket ARN) and through ECR for the pushes.
  statement {
    sid       = "PreviewStateEncryption"
    actions   = ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"]
    resources = [aws_kms_key.env[each.value.name].arn]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${var.aws_region}.amazonaws.com"]
    }
    condition {
      test     = "StringLike"
      variable = "kms:EncryptionContext:aws:s3:arn"
      values   = concat([aws_s3_bucket.state[each.value.name].arn], local.preview_objects[each.key])
    }
  }

  statement {
    sid       = "PreviewRegistryEncryption"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [aws_kms_key.env[each.value.name].arn]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["ecr.${var.aws_region}.amazonaws.com"]
    }
  }

  statement {
    sid = "RegistryLogin"
    # GetAuthorizationToken has no resource-level permission: "*" is the only valid resource.
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"]
  }

  statement {
    sid = "PreviewRegistryPush"
    actions = [
      "ecr:BatchCheckLayerAvailability",
      "ecr:BatchGetImage",
      "ecr:CompleteLayerUpload",
      "ecr:DescribeImages",
      "ecr:GetDownloadUrlForLayer",
      "ecr:InitiateLayerUpload",
      "ecr:PutImage",
      "ecr:UploadLayerPart",
    ]
    resources = [for image, _ in each.value.registries : aws_ecr_repository.app["${each.key}/${image}"].arn]
  }
}

resource "aws_iam_role_policy" "preview" {
  for_each = local.preview_envs
  name     = "preview-workspace-state-and-registry"
  role     = aws_iam_role.preview[each.key].id
  policy   = data.aws_iam_policy_document.preview[each.key].json
}

resource "aws_iam_role_policy_attachment" "preview_app" {
  for_each   = merge([for k, e in local.preview_envs : { for arn in e.preview_policy_arns : "${k} ${arn}" => { env = k, arn = arn } }]...)
  role       = aws_iam_role.preview[each.value.env].name
  policy_arn = each.value.arn
}
