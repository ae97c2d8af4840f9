# Per environment of this account: the Terraform state backend of its repositories. Versioned,
# encrypted with the environment's own KMS key, never public, TLS only; locking is Terraform's
# native S3 lock file (`use_lockfile`), so no DynamoDB table exists. Each repository's roles may
# use only the repository's state key prefixes in it.

data "aws_iam_policy_document" "state_key" {
  #checkov:skip=CKV_AWS_111:This is a KMS key policy: "*" is the key itself, and the account-root statement is AWS's default that keeps the key administrable; use is granted by the roles' IAM policies.
  #checkov:skip=CKV_AWS_356:This is a KMS key policy: "*" can only mean the key the policy is attached to.
  #checkov:skip=CKV_AWS_109:This is a KMS key policy: without the account-root statement the key becomes unmanageable (AWS's documented default).
  for_each = local.env_names

  # The account root administers the key (the AWS default); use is granted by IAM policies.
  statement {
    sid       = "AccountAdministers"
    actions   = ["kms:*"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${var.account_id}:root"]
    }
  }

  # The next environment's deploy roles (another account, possibly) decrypt this environment's
  # images, and only through ECR, when they copy a digest (their own IAM policy grants it too).
  dynamic "statement" {
    for_each = local.key_has_pullers[each.key] ? [local.key_pullers[each.key]] : []
    content {
      sid       = "NextEnvironmentPullsImages"
      actions   = ["kms:Decrypt"]
      resources = ["*"]
      principals {
        type        = "AWS"
        identifiers = statement.value
      }
      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["ecr.${var.aws_region}.amazonaws.com"]
      }
    }
  }
}

resource "aws_kms_key" "env" {
  for_each                = local.env_names
  description             = "${var.name_prefix} ${each.key}: Terraform state and images"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.state_key[each.key].json
}

resource "aws_kms_alias" "env" {
  for_each      = local.env_names
  name          = "alias/${var.name_prefix}-${each.key}"
  target_key_id = aws_kms_key.env[each.key].key_id
}

resource "aws_s3_bucket" "state" {
  #checkov:skip=CKV_AWS_144:Cross-region replication is a disaster-recovery choice per organisation; versioning keeps every state version and the bucket is recreated from Core.
  #checkov:skip=CKV_AWS_18:Access logging needs a separate log bucket owned by the organisation's logging account; CloudTrail data events are the recommended audit trail for state reads.
  #checkov:skip=CKV2_AWS_62:Event notifications have no consumer in this design; nothing reacts to state writes.
  for_each      = local.env_names
  bucket        = "${var.name_prefix}-${var.account_id}-${var.aws_region}-${each.key}-tfstate"
  force_destroy = false
}

resource "aws_s3_bucket_ownership_controls" "state" {
  for_each = local.env_names
  bucket   = aws_s3_bucket.state[each.key].id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "state" {
  for_each                = local.env_names
  bucket                  = aws_s3_bucket.state[each.key].id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_versioning" "state" {
  for_each = local.env_names
  bucket   = aws_s3_bucket.state[each.key].id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "state" {
  for_each = local.env_names
  bucket   = aws_s3_bucket.state[each.key].id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.env[each.key].arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "state" {
  for_each = local.env_names
  bucket   = aws_s3_bucket.state[each.key].id

  rule {
    id     = "state-history"
    status = "Enabled"
    filter {}
    noncurrent_version_expiration {
      noncurrent_days = var.state_noncurrent_days
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }
}

data "aws_iam_policy_document" "state_bucket" {
  for_each = local.env_names

  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.state[each.key].arn, "${aws_s3_bucket.state[each.key].arn}/*"]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }

  statement {
    sid       = "DenyOldTls"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.state[each.key].arn, "${aws_s3_bucket.state[each.key].arn}/*"]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "NumericLessThan"
      variable = "s3:TlsVersion"
      values   = ["1.2"]
    }
  }
}

resource "aws_s3_bucket_policy" "state" {
  for_each = local.env_names
  bucket   = aws_s3_bucket.state[each.key].id
  policy   = data.aws_iam_policy_document.state_bucket[each.key].json

  depends_on = [aws_s3_bucket_public_access_block.state]
}
