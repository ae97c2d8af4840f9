# The environment accounts: for each, one aws provider authenticated in it and one instance of
# modules/environment-account with that provider. Terraform cannot `for_each` providers, so an
# account is these two blocks plus its line in `account_outputs` below; the check at the end
# fails the plan when var.accounts names an account that has no blocks here.
#
# Add an account (README.md, "Add an account"): copy the `main` provider and module blocks,
# replace `main` with the new name in the copies, add the name to `account_outputs`, and add
# `<name> = { id = "...", core_role_arn = "arn:aws:iam::<id>:role/<core role>" }` to var.accounts.

provider "aws" {
  alias               = "main"
  region              = var.aws_region
  allowed_account_ids = [var.accounts["main"].id]

  dynamic "assume_role" {
    for_each = var.accounts["main"].core_role_arn == null ? [] : [var.accounts["main"].core_role_arn]
    content {
      role_arn     = assume_role.value
      session_name = "gitops-core"
    }
  }

  default_tags {
    tags = { "gitops:project" = "core", "gitops:account" = "main" }
  }
}

module "account_main" {
  source    = "./modules/environment-account"
  providers = { aws = aws.main }

  account_name          = "main"
  account_id            = var.accounts["main"].id
  aws_region            = var.aws_region
  name_prefix           = var.name_prefix
  create_oidc_provider  = var.accounts["main"].create_oidc_provider
  image_retention_count = var.image_retention_count
  state_noncurrent_days = var.state_noncurrent_days
  environments          = local.account_envs["main"]
  pullers               = local.account_pullers["main"]
  pull_sources          = local.account_pull_sources["main"]
}

locals {
  # One line per account module (name => module): the outputs Core reads (GitHub variables,
  # outputs) are merged from these.
  account_outputs = {
    main = module.account_main
  }

  # The outputs other account modules' INPUTS depend on (next environment's deploy role, the
  # registries and key below): listed output by output, one module per argument, never as the
  # whole module object, so a module's inputs may depend on another's outputs — also on its
  # own, in the one-account setup — without a cycle. Add each new account's module here too.
  deploy_role_arns = merge(module.account_main.deploy_role_arns)
  registry_arns    = merge(module.account_main.registry_arns)
  key_arns         = merge(module.account_main.key_arns)
}

# What the account modules created, merged across accounts.
locals {
  plan_role_arns    = merge([for a in values(local.account_outputs) : a.plan_role_arns]...)
  preview_role_arns = merge([for a in values(local.account_outputs) : a.preview_role_arns]...)
  registry_urls     = merge([for a in values(local.account_outputs) : a.registry_urls]...)
  state_buckets     = merge([for a in values(local.account_outputs) : a.state_buckets]...)
  registry_hosts    = { for n, a in local.account_outputs : n => a.registry_host }
}

check "every_account_has_its_module" {
  assert {
    condition     = toset(keys(var.accounts)) == toset(keys(local.account_outputs)) && length(local.key_arns) == length(merge([for a in values(local.account_outputs) : a.key_arns]...))
    error_message = "var.accounts and the account modules of accounts.tf differ: every account needs its provider and module blocks and its lines in the locals (README.md, \"Add an account\")."
  }
}
