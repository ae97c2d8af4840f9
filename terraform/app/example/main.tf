# The seed's App project, as an example stack an app repository starts from: networking, a
# database, the application service and its IAM. It takes the same variables as ../release (the
# deploy workflow passes environment, image repository, image digest and commit), so switching
# TF_WORKING_DIR from terraform/app/release to terraform/app/example is the only change needed.
# The state backend is the environment's bucket created by terraform/core.
#
# Not applied by the local run (the aws provider cannot be downloaded there); checked statically
# by `terraform fmt -check` and checkov in the test suite.

terraform {
  required_version = ">= 1.10.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 6.0, < 7.0"
    }
  }

  backend "s3" {
    use_lockfile = true
    encrypt      = true
  }
}

provider "aws" {
  default_tags {
    tags = {
      "gitops:project"     = "app"
      "gitops:environment" = var.environment
      "gitops:commit"      = var.commit_sha
    }
  }
}

data "aws_region" "current" {}
data "aws_caller_identity" "current" {}

locals {
  name = "${var.name}-${var.environment}"
  azs  = var.availability_zones
  # The image is always run by digest: a tag could be re-pointed, a digest cannot.
  image = "${var.image_repository}@${var.image_digest}"
}
