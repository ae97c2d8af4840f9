# Per environment: the container registry the deploy role pushes to (dev) or copies into (later
# environments copy the digest deployed below; nothing is rebuilt). Tags are immutable: a tag
# names one digest forever, which is what makes "deploy the digest that was tested" hold.

resource "aws_ecr_repository" "app" {
  for_each             = local.envs
  name                 = "${var.name_prefix}/${var.repository}-${each.key}"
  image_tag_mutability = "IMMUTABLE"
  force_delete         = false

  image_scanning_configuration {
    scan_on_push = true
  }

  encryption_configuration {
    encryption_type = "KMS"
    kms_key         = aws_kms_key.env[each.key].arn
  }
}

resource "aws_ecr_lifecycle_policy" "app" {
  for_each   = local.envs
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

# The next environment's deploy role may PULL this environment's images (to copy the digest);
# nothing else crosses environments.
data "aws_iam_policy_document" "registry_pull_by_next" {
  for_each = { for n, src in local.source_env : src => n if src != null }

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
      identifiers = [aws_iam_role.deploy[each.value].arn]
    }
  }
}

resource "aws_ecr_repository_policy" "app" {
  for_each   = data.aws_iam_policy_document.registry_pull_by_next
  repository = aws_ecr_repository.app[each.key].name
  policy     = each.value.json
}
