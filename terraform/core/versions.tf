# The Core project (the seed's privileged "environments" project): everything the app
# repositories need before their first deploy, per repository and environment — the Terraform
# state backend, the GitHub OIDC trust, a least-privilege deploy role and a read-only plan role,
# the container registries, and the GitHub environment (branch policy, reviewers, the variables
# the workflow templates read). Each environment's AWS side lives in the environment's own
# account (accounts.tf, modules/environment-account); one account for all is the simplest case.
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

# Authenticates with GITHUB_TOKEN from the environment: a GitHub App installation token allowed
# to administer the app repositories' environments and variables (never the workflow's own token).
provider "github" {
  owner = var.github_owner
}
