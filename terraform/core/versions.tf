# The Core project (the seed's privileged "environments" project): everything an app repository
# needs before its first deploy, per environment — the Terraform state backend, the GitHub OIDC
# trust, a least-privilege deploy role and a read-only plan role, the container registry, and the
# GitHub environment (branch policy, reviewers, the variables the workflow templates read).
#
# Only this project needs a privileged AWS role and a GitHub App token; it is planned on pull
# requests and applied from `main` only (workflows-templates/core.yml).

terraform {
  required_version = ">= 1.10.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 6.0, < 7.0"
    }
    github = {
      source  = "integrations/github"
      version = ">= 6.6, < 7.0"
    }
  }

  # Core's own state: bootstrapped once by hand (bucket, versioning, encryption), then managed here.
  backend "s3" {
    use_lockfile = true
    encrypt      = true
  }
}

provider "aws" {
  region = var.aws_region

  default_tags {
    tags = {
      "gitops:project"    = "core"
      "gitops:repository" = "${var.github_owner}/${var.repository}"
    }
  }
}

# Authenticates with GITHUB_TOKEN from the environment: a GitHub App installation token allowed
# to administer the app repository's environments and variables (never the workflow's own token).
provider "github" {
  owner = var.github_owner
}
