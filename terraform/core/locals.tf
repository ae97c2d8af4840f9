# The repositories' configuration files (the schema of `.github/gitops.yml`, owned by the
# gitops-actions library, src/envs.rs) read into one map of repository environments, keyed
# "<repository>/<environment>", each with the account it lives in and its neighbours in the
# promotion order. State grants: with an explicit `stacks:` list, each environment's roles get
# exactly the keys of the stacks deploying there (`state_keys`); without one (one stack, or
# `stack-roots:` discovery, which Terraform cannot evaluate) the whole `state-prefixes`.

locals {
  config = { for r, c in var.repositories : r => yamldecode(file("${path.module}/${c.config}")) }

  account_by_id = { for name, a in var.accounts : a.id => name }
  only_account  = length(var.accounts) == 1 ? one(keys(var.accounts)) : null

  repos = { for r, c in var.repositories : r => {
    full_name = "${var.github_owner}/${r}"
    # The `sub` prefix of this repository in its form (see var.sub_claim_format).
    sub_repo = coalesce(c.sub_claim_format, var.sub_claim_format) == "immutable" ? "repo:${var.github_owner}@${var.github_owner_id}/${r}@${c.repository_id}" : "repo:${var.github_owner}/${r}"
    # What a plan role's trust policy requires besides `sub`: a pull-request run of the plan workflow.
    plan_ref              = "refs/pull/*/merge"
    plan_job_workflow_ref = "${var.github_owner}/${r}/${c.plan_workflow}@refs/pull/*/merge"
    # ... or a run of the drift workflow from its branch (a refresh-only plan of the deployed commit).
    drift_ref              = "refs/heads/${c.drift_branch}"
    drift_job_workflow_ref = "${var.github_owner}/${r}/${c.drift_workflow}@refs/heads/${c.drift_branch}"
    # What a preview role's trust policy requires besides `sub` (#18): a pull-request run of the
    # preview workflow (opened ... closed), or its scheduled sweep / Run workflow on the sweep
    # branch (reviewed code); each job_workflow_ref names its own ref.
    preview_refs = ["refs/pull/*/merge", "refs/heads/${c.preview_sweep_branch}"]
    preview_job_workflow_refs = [
      "${var.github_owner}/${r}/${c.preview_workflow}@refs/pull/*/merge",
      "${var.github_owner}/${r}/${c.preview_workflow}@refs/heads/${c.preview_sweep_branch}",
    ]
    workspace_key_prefix = c.workspace_key_prefix
    # The state key prefixes its stacks use (the one-stack TF_STATE_KEY is the first + <env>/terraform.tfstate).
    state_prefixes = try(local.config[r]["state-prefixes"], ["${r}/"])
    # Given in the file (then every stack key must lie under one of them), or the default.
    explicit_prefixes = try(local.config[r]["state-prefixes"], null) != null
    # An explicit `stacks:` list (src/stacks.rs): per environment its roles get exactly the state
    # keys of the stacks deploying there. Without one (a one-stack repository, or `stack-roots:`
    # discovery, which needs the repository's tree and cannot be evaluated here) null: the roles
    # keep the whole state prefixes.
    stacks        = try(local.config[r].stacks, null)
    images        = try(local.config[r].registries, [r])
    environments  = local.config[r].environments
    immutable     = coalesce(c.sub_claim_format, var.sub_claim_format) == "immutable"
    repository_id = c.repository_id
  } }

  # Per repository environment ("<repository>/<environment>"), the exact state keys of the
  # stacks deploying there (null without `stacks:`), used by `envs` below.
  stack_keys = merge([for r, c in local.repos : { for e in c.environments : "${r}/${e.name}" => c.stacks == null ? null : [
    for s in c.stacks : replace(coalesce(try(s["state-key"], null), "${s.name}/{env}.tfstate"), "{env}", e.name)
    if contains(coalesce(try(s.environments, null), [for x in c.environments : x.name]), e.name)
  ] }]...)

  envs = merge([for r, c in local.repos : { for i, e in c.environments : "${r}/${e.name}" => {
    repository = r
    name       = e.name
    branch     = e.branch
    production = try(e.production, false)
    # Preview workspaces (#18), as the binaries decide it (src/envs.rs): `previews:` when given
    # (refused there on production and promoted-into environments), else only a first, non-
    # production environment named dev.
    previews       = try(e.previews, i == 0 && e.name == "dev" && !try(e.production, false))
    aws_region     = try(e["aws-region"], null)
    account        = try(e["aws-account-id"], null) == null ? local.only_account : lookup(local.account_by_id, e["aws-account-id"], null)
    reviewer_users = try(e.reviewers.users, [])
    reviewer_teams = try(e.reviewers.teams, [])
    previous       = i == 0 ? null : "${r}/${c.environments[i - 1].name}"
    next           = i == length(c.environments) - 1 ? null : "${r}/${c.environments[i + 1].name}"
    state_key      = "${c.state_prefixes[0]}${e.name}/terraform.tfstate"
    # The exact state keys of the stacks that deploy here (a stack's `environments:`, default
    # every environment), as src/stacks.rs computes them: its `state-key` with `{env}` replaced
    # by the environment (a literal replace, not a pattern), default `<stack>/{env}.tfstate`.
    # null without `stacks:` (prefix grants).
    state_keys = local.stack_keys["${r}/${e.name}"]
    # What its roles are granted in the bucket: those keys, or the prefixes.
    state_grants = local.stack_keys["${r}/${e.name}"] == null ? c.state_prefixes : local.stack_keys["${r}/${e.name}"]
    registries   = { for image in c.images : image => "${var.name_prefix}/${image}-${e.name}" }
  } }]...)

  # Per repository, the environments its `stacks:` name that its file does not have (github.tf
  # refuses any). A local, not a precondition's own expression: the stacks' objects differ in
  # shape, so no list function can merge them with an empty default.
  unknown_stack_envs = { for r, c in local.repos : r => c.stacks == null ? [] : [
    for x in flatten([for s in c.stacks : try(s.environments, [])]) : x
    if !contains([for y in c.environments : y.name], x)
  ] }

  # Per repository environment, the stack keys outside the `state-prefixes` its file gives
  # (github.tf refuses any: the file's prefixes are what the repository said it uses).
  keys_outside_prefixes = { for k, e in local.envs : k => [
    for key in(e.state_keys == null ? [] : e.state_keys) : key
    if local.repos[e.repository].explicit_prefixes && !anytrue([for p in local.repos[e.repository].state_prefixes : startswith(key, p)])
  ] }

  # The other refusals of github.tf's preconditions, each a local so that Terraform evaluates it
  # without the providers (tests/it/e2e.rs, e2e_terraform_core_refusals_name_what_is_at_fault).
  # Per repository environment, the stack keys under its repository's workspace_key_prefix: the
  # S3 backend keeps the preview workspaces' state there, so each would be a preview's key.
  keys_under_workspace_prefix = { for k, e in local.envs : k => [
    for key in(e.state_keys == null ? [] : e.state_keys) : key
    if startswith(key, "${local.repos[e.repository].workspace_key_prefix}/")
  ] }

  # The repository environments where no stack of the repository's `stacks:` deploys: their
  # roles would have no state key.
  envs_without_stacks = [for k, e in local.envs : k if length(e.state_grants) == 0]

  # Per repository environment, its state grants (stack keys, or state prefixes) that overlap
  # another repository's in the same state bucket (same account and environment name), compared
  # per key: each as "<grant> with <repository>/<environment>'s <grant>", where one starts with
  # the other (a key or prefix under a prefix, or the same key).
  overlapping_grants = { for k, e in local.envs : k => flatten([
    for k2, e2 in local.envs : [
      for p in e.state_grants : [
        for q in e2.state_grants : "${p} with ${k2}'s ${q}" if startswith(p, q) || startswith(q, p)
      ]
    ] if e2.account == e.account && e2.name == e.name && e2.repository != e.repository
  ]) }

  # Per repository, its state prefixes that start with its workspace_key_prefix: the preview
  # role's workspace keys would include default-workspace state.
  prefixes_under_workspace_prefix = { for r, c in local.repos : r => [
    for p in c.state_prefixes : p if startswith(p, "${c.workspace_key_prefix}/")
  ] }

  # Every ECR repository name that more than one "<repository>/<environment>/<image>" gets:
  # each belongs to one repository environment's image.
  shared_registries = { for name, users in {
    for name in distinct(flatten([for e in values(local.envs) : values(e.registries)])) : name => flatten([
      for k, e in local.envs : [for image, n in e.registries : "${k}/${image}" if n == name]
    ])
  } : name => users if length(users) > 1 }

  # The repository environments whose aws-account-id is not the id of an account in
  # var.accounts (or is missing while there are several accounts) ...
  envs_without_account = [for k, e in local.envs : k if e.account == null]
  # ... whose aws-region is another than var.aws_region (Core serves one region) ...
  envs_in_another_region = [for k, e in local.envs : k if e.aws_region != null && e.aws_region != var.aws_region]
  # ... and the production ones without a reviewer.
  production_envs_without_reviewers = [for k, e in local.envs : k if e.production && length(e.reviewer_users) + length(e.reviewer_teams) == 0]

  # What each account's module creates: its repository environments ...
  account_envs = { for a, _ in var.accounts : a => { for k, e in local.envs : k => {
    repository            = e.repository
    full_name             = local.repos[e.repository].full_name
    name                  = e.name
    deploy_sub            = "${local.repos[e.repository].sub_repo}:environment:${e.name}"
    plan_sub              = "${local.repos[e.repository].sub_repo}:environment:${e.name}-plan"
    plan_ref              = local.repos[e.repository].plan_ref
    plan_job_workflow_ref = local.repos[e.repository].plan_job_workflow_ref
    # ... or the drift workflow (drift.yml) from its branch: each job_workflow_ref names its own ref.
    drift_ref              = local.repos[e.repository].drift_ref
    drift_job_workflow_ref = local.repos[e.repository].drift_job_workflow_ref
    # The plan jobs of deploy.yml/rollback.yml (#16): runs on the environment's own branch only.
    deploy_plan_ref               = "refs/heads/${e.branch}"
    deploy_plan_job_workflow_refs = [for w in var.repositories[e.repository].deploy_workflows : "${local.repos[e.repository].full_name}/${w}@refs/heads/${e.branch}"]
    state_prefixes                = local.repos[e.repository].state_prefixes
    state_keys                    = e.state_keys
    previews                      = e.previews && !e.production
    preview_sub                   = "${local.repos[e.repository].sub_repo}:environment:${e.name}-preview"
    preview_refs                  = local.repos[e.repository].preview_refs
    preview_job_workflow_refs     = local.repos[e.repository].preview_job_workflow_refs
    workspace_key_prefix          = local.repos[e.repository].workspace_key_prefix
    preview_policy_arns           = coalesce(var.repositories[e.repository].preview_policy_arns, var.repositories[e.repository].app_deploy_policy_arns)
    registries                    = e.registries
    app_deploy_policy_arns        = var.repositories[e.repository].app_deploy_policy_arns
    plan_policy_arns              = var.repositories[e.repository].plan_policy_arns
  } if e.account == a } }

  # The environments with previews (#18): each gets a GitHub environment `<env>-preview` and a
  # role of its own (github.tf, modules/environment-account/iam.tf); never a production one.
  preview_envs = { for k, e in local.envs : k => e if e.previews && !e.production }

  # ... which next environment's deploy role may pull from each of its registries ...
  account_pullers = { for a, _ in var.accounts : a => merge([for k, e in local.envs : {
    for image, _ in e.registries : "${k}/${image}" => local.deploy_role_arns[e.next]
  } if e.account == a && e.next != null]...) }

  # ... and, for each of its environments with one below, where that one's images are.
  account_pull_sources = { for a, _ in var.accounts : a => { for k, e in local.envs : k => {
    registry_arns = [for image, _ in e.registries : local.registry_arns["${e.previous}/${image}"]]
    key_arn       = local.key_arns["${local.envs[e.previous].account}/${local.envs[e.previous].name}"]
  } if e.account == a && e.previous != null } }
}
