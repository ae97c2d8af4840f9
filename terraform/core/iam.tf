# Per environment two roles, both assumable ONLY through GitHub OIDC, only with the STS audience,
# and only by a job of this repository running in the named GitHub environment (exact `sub`, no
# wildcard):
#   - deploy: `environment:<env>`      — read/write that environment's state key and lock file,
#                                        push to its registry, pull from the one below;
#   - plan:   `environment:<env>-plan` — read that environment's state object and lock file
#                                        (decrypting them only through S3), describe its images;
#                                        and only from a pull-request run (`ref` =
#                                        `refs/pull/<n>/merge`) of the plan workflow
#                                        (`job_workflow_ref`), or a run of the drift workflow
#                                        from the default branch (`drift.yml`), so pushing a
#                                        branch with a workflow that names `<env>-plan` gets
#                                        nothing.
# GitHub puts `environment:<name>` into `sub` for every job that names an environment, so a
# pull-request job (plan.yml runs in `<env>-plan`) can never get the deploy role.
# What a plan role can read, and why that is acceptable: docs/actions.md ("What a plan role can read").

data "aws_iam_policy_document" "trust" {
  for_each = { for pair in setproduct(keys(local.envs), ["deploy", "plan"]) : "${pair[0]}/${pair[1]}" => {
    env  = pair[0]
    kind = pair[1]
  } }

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
      values   = ["${local.sub_repo}:environment:${each.value.kind == "deploy" ? each.value.env : "${each.value.env}-plan"}"]
    }

    # Plan roles: pull-request runs of the plan workflow, and the drift workflow on the default
    # branch, only (STS validates these GitHub claims).
    dynamic "condition" {
      for_each = each.value.kind == "plan" ? local.plan_trust : {}
      content {
        test     = "StringLike"
        variable = "${local.oidc_host}:${condition.key}"
        values   = condition.value
      }
    }
  }
}

resource "aws_iam_role" "deploy" {
  for_each             = local.envs
  name                 = "${var.name_prefix}-${var.repository}-${each.key}-deploy"
  description          = "GitHub Actions deploys of ${var.github_owner}/${var.repository} to ${each.key}"
  assume_role_policy   = data.aws_iam_policy_document.trust["${each.key}/deploy"].json
  max_session_duration = 3600
}

resource "aws_iam_role" "plan" {
  for_each             = local.envs
  name                 = "${var.name_prefix}-${var.repository}-${each.key}-plan"
  description          = "GitHub Actions pull-request plans of ${var.github_owner}/${var.repository} for ${each.key} (read-only)"
  assume_role_policy   = data.aws_iam_policy_document.trust["${each.key}/plan"].json
  max_session_duration = 3600
}

data "aws_iam_policy_document" "deploy" {
  for_each = local.envs

  statement {
    sid       = "StateList"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.state[each.key].arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = [local.state_key[each.key], "${local.state_key[each.key]}.tflock"]
    }
  }

  statement {
    sid       = "StateReadWrite"
    actions   = ["s3:GetObject", "s3:PutObject"]
    resources = ["${aws_s3_bucket.state[each.key].arn}/${local.state_key[each.key]}", "${aws_s3_bucket.state[each.key].arn}/${local.state_key[each.key]}.tflock"]
  }

  statement {
    sid       = "StateLockRelease"
    actions   = ["s3:DeleteObject"]
    resources = ["${aws_s3_bucket.state[each.key].arn}/${local.state_key[each.key]}.tflock"]
  }

  statement {
    sid       = "StateEncryption"
    actions   = ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"]
    resources = [aws_kms_key.env[each.key].arn]
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
    resources = [aws_ecr_repository.app[each.key].arn]
  }

  dynamic "statement" {
    for_each = local.source_env[each.key] == null ? [] : [local.source_env[each.key]]
    content {
      sid = "RegistryPullFromBelow"
      actions = [
        "ecr:BatchCheckLayerAvailability",
        "ecr:BatchGetImage",
        "ecr:DescribeImages",
        "ecr:GetDownloadUrlForLayer",
      ]
      resources = [aws_ecr_repository.app[statement.value].arn]
    }
  }
}

resource "aws_iam_role_policy" "deploy" {
  for_each = local.envs
  name     = "state-and-registry"
  role     = aws_iam_role.deploy[each.key].id
  policy   = data.aws_iam_policy_document.deploy[each.key].json
}

resource "aws_iam_role_policy_attachment" "deploy_app" {
  for_each   = { for pair in setproduct(keys(local.envs), var.app_deploy_policy_arns) : "${pair[0]} ${pair[1]}" => { env = pair[0], arn = pair[1] } }
  role       = aws_iam_role.deploy[each.value.env].name
  policy_arn = each.value.arn
}

data "aws_iam_policy_document" "plan" {
  for_each = local.envs

  # Exactly what `terraform init` + `terraform plan -lock=false` need from the S3 backend: list
  # the state object (and the workspace prefix `env:/`, which init lists: key names only), read
  # the state object and the lock file (it names who holds the lock, no state data). Never
  # PutObject or DeleteObject: a plan cannot take, break or write anything.
  statement {
    sid       = "StateList"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.state[each.key].arn]
    condition {
      test     = "StringEquals"
      variable = "s3:prefix"
      values   = [local.state_key[each.key], "${local.state_key[each.key]}.tflock", "env:/"]
    }
  }

  statement {
    sid       = "StateRead"
    actions   = ["s3:GetObject"]
    resources = ["${aws_s3_bucket.state[each.key].arn}/${local.state_key[each.key]}", "${aws_s3_bucket.state[each.key].arn}/${local.state_key[each.key]}.tflock"]
  }

  # The environment's key also encrypts its images: the plan role may decrypt only what S3 asks
  # it to for this state bucket (bucket keys: the context is the bucket ARN), never call KMS
  # directly, never encrypt.
  statement {
    sid       = "StateDecrypt"
    actions   = ["kms:Decrypt"]
    resources = [aws_kms_key.env[each.key].arn]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${var.aws_region}.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "kms:EncryptionContext:aws:s3:arn"
      values   = [aws_s3_bucket.state[each.key].arn, "${aws_s3_bucket.state[each.key].arn}/${local.state_key[each.key]}", "${aws_s3_bucket.state[each.key].arn}/${local.state_key[each.key]}.tflock"]
    }
  }

  statement {
    sid       = "RegistryDescribe"
    actions   = ["ecr:DescribeImages", "ecr:DescribeRepositories"]
    resources = [aws_ecr_repository.app[each.key].arn]
  }
}

resource "aws_iam_role_policy" "plan" {
  for_each = local.envs
  name     = "state-read"
  role     = aws_iam_role.plan[each.key].id
  policy   = data.aws_iam_policy_document.plan[each.key].json
}

resource "aws_iam_role_policy_attachment" "plan_app" {
  for_each   = { for pair in setproduct(keys(local.envs), var.plan_policy_arns) : "${pair[0]} ${pair[1]}" => { env = pair[0], arn = pair[1] } }
  role       = aws_iam_role.plan[each.value.env].name
  policy_arn = each.value.arn
}
