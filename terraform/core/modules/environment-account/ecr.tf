# Per repository + environment: the container registries (one per image) the deploy role pushes
# to (the first environment) or copies into (later environments copy the digest deployed below,
# possibly from another account; nothing is rebuilt). Tags are immutable: a tag names one digest
# forever, which is what makes "deploy the digest that was tested" hold.

resource "aws_ecr_repository" "app" {
  for_each             = local.registries
  name                 = each.value.repository_name
  image_tag_mutability = "IMMUTABLE"
  force_delete         = false

  image_scanning_configuration {
    scan_on_push = true
  }

  encryption_configuration {
    encryption_type = "KMS"
    kms_key         = aws_kms_key.env[each.value.name].arn
  }
}

resource "aws_ecr_lifecycle_policy" "app" {
  for_each   = local.registries
  repository = aws_ecr_repository.app[each.key].name
  policy = jsonencode({
    rules = [
      {
        rulePriority = 1
        description  = "Untagged images (layers of failed pushes) go after 14 days"
        selection = {
          tagStatus   = "untagged"
          countType   = "sinceImagePushed"
          countUnit   = "days"
          countNumber = 14
        }
        action = { type = "expire" }
      },
      {
        rulePriority = 2
        description  = "Keep the most recent tagged images: enough for the rollback history"
        selection = {
          tagStatus   = "any"
          countType   = "imageCountMoreThan"
          countNumber = var.image_retention_count
        }
        action = { type = "expire" }
      },
    ]
  })
}

# The NEXT environment's deploy role (in its own account, possibly) may PULL this environment's
# images by digest, so `ecr-push copy` in its deploy job works with that job's own credentials;
# nothing else crosses environments.
data "aws_iam_policy_document" "registry_pull_by_next" {
  for_each = var.pullers

  statement {
    sid = "NextEnvironmentCopiesDigest"
    actions = [
      "ecr:BatchGetImage",
      "ecr:GetDownloadUrlForLayer",
      "ecr:BatchCheckLayerAvailability",
      "ecr:DescribeImages",
    ]
    principals {
      type        = "AWS"
      identifiers = [each.value]
    }
  }
}

resource "aws_ecr_repository_policy" "app" {
  for_each   = var.pullers
  repository = aws_ecr_repository.app[each.key].name
  policy     = data.aws_iam_policy_document.registry_pull_by_next[each.key].json
}
