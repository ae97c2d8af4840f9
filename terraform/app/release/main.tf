# The release record: the one stack the local run (./scripts/demo) applies for real.
#
# It is built only from Terraform's built-in `terraform_data`, so it needs no provider plugin and
# runs offline, yet it goes through everything a real stack does in the deploy workflow: the S3
# backend with native lock files (`use_lockfile`), a saved plan, `terraform show -json`, the plan
# gate, and an apply of exactly that plan. It records WHICH image digest and WHICH commit are
# deployed in an environment; a real app stack (see ../example) takes the same variables and puts
# the digest into its ECS task definition.

terraform {
  required_version = ">= 1.10.0"

  # Partial configuration: bucket, key and region come from `-backend-config` in the workflow
  # (the GitHub environment variables TF_STATE_BUCKET, TF_STATE_KEY, AWS_REGION written by core).
  backend "s3" {
    use_lockfile = true
    encrypt      = true
  }
}

variable "environment" {
  description = "Environment being deployed (dev, staging, prod)."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,31}$", var.environment))
    error_message = "The environment must be a lowercase name (letters, digits, '-')."
  }
}

variable "image_repository" {
  description = "Registry host and repository of the image, e.g. 123456789012.dkr.ecr.eu-west-1.amazonaws.com/app-dev."
  type        = string
}

variable "image_digest" {
  description = "Digest of the image to run (sha256:<64 hex>). Empty in pull-request plans, where the image is not built yet."
  type        = string
  default     = ""

  validation {
    condition     = var.image_digest == "" || can(regex("^sha256:[0-9a-f]{64}$", var.image_digest))
    error_message = "The image digest must be sha256: followed by 64 lowercase hex digits."
  }
}

variable "commit_sha" {
  description = "The commit being deployed (40 lowercase hex)."
  type        = string

  validation {
    condition     = can(regex("^[0-9a-f]{40}$", var.commit_sha))
    error_message = "The commit must be a full 40-character lowercase SHA."
  }
}

locals {
  image = var.image_digest == "" ? "${var.image_repository}@(built on merge)" : "${var.image_repository}@${var.image_digest}"
}

# One record per environment, updated in place by each deploy: the plan shows `~1` with the old
# and new image digest (a replacement would be a destroy, which plan-gate refuses in production).
resource "terraform_data" "release" {
  input = {
    environment = var.environment
    image       = local.image
    commit      = var.commit_sha
  }
}

output "image" {
  description = "The image reference now deployed."
  value       = terraform_data.release.output.image
}

output "commit" {
  description = "The commit now deployed."
  value       = terraform_data.release.output.commit
}

output "url" {
  description = "Where this deploy can be seen: the environment, or a preview workspace `pr-<n>` of it (the `preview.url-output` of .github/gitops.yml)."
  value       = terraform.workspace == "default" ? "https://${var.environment}.app.example.com/" : "https://${terraform.workspace}.${var.environment}.app.example.com/"
}
