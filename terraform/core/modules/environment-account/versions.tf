# Everything of the environments that live in ONE AWS account: the account's GitHub OIDC
# provider, per environment its KMS key and Terraform state bucket, per repository + environment
# the deploy and plan roles and the container registries, and the account's ECR setting that lets
# a registry mount blobs across its repositories.
#
# The root module instantiates this module once per environment account, each time with that
# account's provider (`providers = { aws = aws.<account> }`): Terraform cannot `for_each`
# providers, so an account is two blocks in ../../accounts.tf (see ../../README.md, "Add an
# account").

terraform {
  required_version = ">= 1.10.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 6.0, < 7.0"
    }
  }
}
