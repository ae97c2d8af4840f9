//! Stacks: many Terraform roots in one repository (`stacks` binary).
//!
//! What it owns:
//! - the `stacks:` / `stack-roots:` section of `.github/gitops.yml` (the environments model in
//!   [`crate::envs`] accepts the keys and leaves them to this module) and its validation: unknown
//!   keys, names, duplicate names or paths, paths outside the repository or through symlinks,
//!   unknown `depends-on` targets, dependency cycles (the cycle is named), environments that do
//!   not exist, dependencies that do not deploy where their dependents do;
//! - the **dependency layers** (a topological order: layer 0 has no dependencies);
//! - **change detection** between two commits: a stack is changed when a file under its path
//!   changed, or under a local module it calls (transitively, read with an HCL parser), or a
//!   `watch` glob matched, or its configuration entry changed, or a stack it depends on changed;
//! - the **matrix** the workflow templates fan out over, split into chunks of at most 256 entries
//!   (GitHub's matrix limit), each chunk within one layer, in dependency order.
//!
//! Everything is read from git objects (the commits' trees), never from the working directory,
//! so what is detected is exactly what the two commits hold. Decisions are pure functions over
//! a [`TreeView`], tested beside them.
//!
//! Without `stacks:` and `stack-roots:` the repository is one stack named [`DEFAULT_STACK`] at the
//! working directory the caller gives (today's `TF_WORKING_DIR` behaviour).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};
use serde::{Deserialize, Serialize};

use crate::exit::{Failure, Result};
use crate::runner::single_line;

/// GitHub's limit on the entries of one job matrix.
pub const MATRIX_LIMIT: usize = 256;

/// The name of the one stack of a repository without a `stacks:` section.
pub const DEFAULT_STACK: &str = "default";

/// At most this many stacks (configured plus discovered).
pub const MAX_STACKS: usize = 10_000;

const FIELD: &str = "config";

// ------------------------------------------------------------------ configuration

/// One `stacks:` entry as written.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Entry {
    /// Stack name.
    pub name: String,
    /// Directory of the Terraform root, repository-relative.
    pub path: String,
    /// Stacks applied before this one in the same run.
    #[serde(default)]
    pub depends_on: Vec<String>,
    /// Extra files (globs, repository-relative) that change this stack.
    #[serde(default)]
    pub watch: Vec<String>,
    /// Where this stack deploys (default: every environment).
    #[serde(default)]
    pub environments: Option<Vec<String>>,
    /// Terraform state key; `{env}` is replaced by the environment. Default `<stack>/{env}.tfstate`.
    #[serde(default)]
    pub state_key: Option<String>,
}

/// The stacks section of the configuration file, as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Section {
    /// Owned by [`crate::envs`] (`environments`, Core's keys, previews): read in the same parse
    /// and handed over to [`crate::envs::Model::from_file`] (one YAML parse serves both).
    #[serde(default)]
    environments: Option<Vec<crate::envs::Environment>>,
    #[serde(default)]
    state_prefixes: Option<Vec<String>>,
    #[serde(default)]
    registries: Option<Vec<String>>,
    #[serde(default)]
    preview: Option<crate::envs::PreviewFile>,
    /// Explicit stacks.
    #[serde(default)]
    pub stacks: Option<Vec<Entry>>,
    /// Discovery globs: every directory matching (with a `.tf` file) holds a stack named after it.
    #[serde(default)]
    pub stack_roots: Option<Vec<String>>,
}

impl Section {
    /// Parse the stacks section from the configuration text (`source` names the file in errors).
    pub fn from_yaml(text: &str, source: &str) -> Result<Section> {
        if text.trim().is_empty() {
            return Ok(Section::default());
        }
        // Where and what kind, never the value (a secret pasted into the wrong file).
        serde_yaml_ng::from_str(text)
            .map_err(|e| Failure::usage(FIELD, crate::validate::config_error(source, &e)))
    }

    /// The environments model and the stacks section of one configuration file, from one YAML
    /// parse. Same result and same first error as [`crate::envs::Model::from_yaml`] followed
    /// by [`Section::from_yaml`]: when the file does not parse, the environments model is
    /// parsed alone first, so its error wins as it did.
    pub fn with_model(text: &str, source: &str) -> Result<(crate::envs::Model, Section)> {
        if text.trim().is_empty() {
            return Ok((crate::envs::Model::default(), Section::default()));
        }
        match Section::from_yaml(text, source) {
            Ok(mut section) => {
                let file = crate::envs::Model::file(
                    section.environments.take(),
                    section.state_prefixes.take(),
                    section.registries.take(),
                    section.preview.take(),
                );
                let model = crate::envs::Model::from_file(file, source)?;
                Ok((model, section))
            }
            Err(e) => {
                crate::envs::Model::from_yaml(text, source)?;
                Err(e)
            }
        }
    }

    /// True when neither `stacks:` nor `stack-roots:` is present (the one-stack mode).
    pub fn is_single(&self) -> bool {
        self.stacks.is_none() && self.stack_roots.is_none()
    }
}

/// One resolved stack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Stack {
    /// Name.
    pub name: String,
    /// Repository-relative directory (`""` is the repository root).
    pub path: String,
    /// Dependencies (names), sorted.
    pub depends_on: Vec<String>,
    /// Watch globs as written.
    pub watch: Vec<String>,
    /// Environments it deploys to (`None`: all).
    pub environments: Option<Vec<String>>,
    /// State key template (`{env}` placeholder).
    pub state_key: String,
    /// Dependency layer over the whole configuration (0: no dependencies).
    pub layer: usize,
}

/// A stack's state key template when its entry gives none.
fn default_state_key(name: &str) -> String {
    format!("{name}/{{env}}.tfstate")
}

/// Does a stack limited to `environments` (`None`: every one) deploy to `env`?
fn listed_in(environments: Option<&[String]>, env: &str) -> bool {
    environments.is_none_or(|l| l.iter().any(|e| e == env))
}

impl Stack {
    /// Does this stack deploy to `env`?
    pub fn deploys_to(&self, env: &str) -> bool {
        listed_in(self.environments.as_deref(), env)
    }

    /// The state key for an environment (`None`: the template `{env}` is kept).
    pub fn state_key_for(&self, env: Option<&str>) -> String {
        match env {
            Some(e) => self.state_key.replace("{env}", e),
            None => self.state_key.clone(),
        }
    }

    /// Path as shown to users (`.` for the root).
    pub fn shown_path(&self) -> &str {
        if self.path.is_empty() {
            "."
        } else {
            &self.path
        }
    }
}

/// The stacks of one commit.
#[derive(Debug, Clone, Default)]
pub struct Resolved {
    /// Stacks in dependency order (layer, then name).
    pub stacks: Vec<Stack>,
    /// Configured stacks whose directory does not exist in the commit (name, path).
    pub missing: Vec<(String, String)>,
    /// Name -> position in `stacks`.
    index: HashMap<String, usize>,
}

impl Resolved {
    fn new(stacks: Vec<Stack>, missing: Vec<(String, String)>) -> Resolved {
        let index = stacks
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name.clone(), i))
            .collect();
        Resolved {
            stacks,
            missing,
            index,
        }
    }

    /// The repository is one stack (no `stacks:`/`stack-roots:`): the templates' one-root jobs,
    /// with their own state key.
    pub fn is_single(&self) -> bool {
        self.stacks.len() == 1 && self.stacks[0].state_key.is_empty()
    }

    /// Look a stack up by name.
    pub fn get(&self, name: &str) -> Option<&Stack> {
        self.index.get(name).map(|&i| &self.stacks[i])
    }
}

/// What kind of entry a path is in a tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
    /// A submodule or anything else.
    Other,
}

/// Read access to one commit's files (repository-relative, `/`-separated paths; `""` is the root).
pub trait TreeView {
    /// The kind of the entry at `path`, if it exists.
    fn kind(&self, path: &str) -> Option<Kind>;
    /// The entries of the directory at `path` (name, kind), if it is a directory.
    fn list(&self, path: &str) -> Option<Vec<(String, Kind)>>;
    /// The contents of the file at `path`.
    fn read(&self, path: &str) -> Option<Vec<u8>>;
    /// The object id of the file at `path`, when the view has one: files with the same id hold
    /// the same bytes (what is read from one holds for every other). Default: none.
    fn id(&self, _path: &str) -> Option<git2::Oid> {
        None
    }
}

/// Stack names: 1-64 of `A-Z a-z 0-9 . _ -`, not starting with `.` or `-`.
pub fn validate_name(field: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with(['.', '-'])
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    require(
        field,
        name,
        ok,
        "is not a valid stack name (1-64 of A-Z, a-z, 0-9, '.', '_', '-', not starting with '.' or '-')",
    )
}

/// `Ok` when `ok`, else exit 2 for `field`: "`<value>` <what>" (the value made one line).
pub fn require(field: &str, value: &str, ok: bool, what: &str) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(Failure::usage(
            field,
            format!("`{}` {what}", single_line(value)),
        ))
    }
}

/// A repository-relative path: no absolute path, no `.`/`..`/empty component, no backslash or
/// control character. Returns it normalised (no trailing `/`; `.` becomes `""`).
pub fn normalise_path(field: &str, path: &str) -> Result<String> {
    let bad = |why: &str| Failure::usage(field, format!("`{}` {why}", single_line(path)));
    if path.len() > 512 || path.chars().any(|c| c.is_control() || c == '\\') {
        return Err(bad(
            "is longer than 512 characters or contains a backslash or control character",
        ));
    }
    if path == "." || path == "./" {
        return Ok(String::new());
    }
    if path.starts_with('/') {
        return Err(bad(
            "is absolute; paths are relative to the repository root",
        ));
    }
    let trimmed = path.strip_suffix('/').unwrap_or(path);
    for c in trimmed.split('/') {
        match c {
            ".." => return Err(bad("leaves the repository (`..`)")),
            "" | "." => return Err(bad("has an empty or `.` component")),
            _ => {}
        }
    }
    if trimmed == ".git" || trimmed.starts_with(".git/") {
        return Err(bad("is inside `.git`"));
    }
    Ok(trimmed.to_string())
}

fn validate_state_key(field: &str, key: &str) -> Result<()> {
    let ok = !key.is_empty()
        && key.len() <= 1024
        && !key.starts_with('/')
        && key
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..")
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-/{}=".contains(&b));
    require(
        field,
        key,
        ok,
        "is not a valid state key (relative, 1-1024 of A-Z, a-z, 0-9, '.', '_', '-', '/', '=', and the `{env}` placeholder)",
    )
}

fn glob(field: &str, pattern: &str) -> Result<Glob> {
    normalise_path(field, pattern)?;
    GlobBuilder::new(pattern)
        .literal_separator(true)
        .build()
        .map_err(|e| Failure::usage(field, format!("is not a valid glob ({})", e.kind())))
}

/// The directory of a watch glob of the form `<literal dir>/**` (everything below it), which
/// is matched by lookup instead of through a glob set.
pub fn watch_prefix(pattern: &str) -> Option<&str> {
    let dir = pattern.strip_suffix("/**")?;
    let literal = !dir.is_empty()
        && !dir
            .bytes()
            .any(|b| matches!(b, b'*' | b'?' | b'[' | b']' | b'{' | b'}' | b'\\' | b'!'))
        && !dir.ends_with('/');
    literal.then_some(dir)
}

/// Is `prefix` (a normalised directory, `""` = root) equal to or an ancestor of `path`?
pub fn is_under(path: &str, prefix: &str) -> bool {
    prefix.is_empty()
        || path == prefix
        || (path.len() > prefix.len()
            && path.starts_with(prefix)
            && path.as_bytes()[prefix.len()] == b'/')
}

/// Check every component of `path` in `tree`: `Ok(true)` a directory, `Ok(false)` missing,
/// exit 2 when a component is a symlink or the path is not a directory.
fn check_dir(tree: &dyn TreeView, field: &str, path: &str) -> Result<bool> {
    if path.is_empty() {
        return Ok(true);
    }
    let mut end = 0;
    loop {
        let next = path[end..].find('/').map(|i| end + i);
        let prefix = &path[..next.unwrap_or(path.len())];
        match tree.kind(prefix) {
            None => return Ok(false),
            Some(Kind::Symlink) => {
                return Err(Failure::usage(
                    field,
                    format!(
                    "`{path}` goes through the symbolic link `{prefix}`; give the real directory"
                ),
                ))
            }
            Some(Kind::Dir) => {}
            Some(_) if next.is_none() => {
                return Err(Failure::usage(
                    field,
                    format!("`{path}` is not a directory"),
                ))
            }
            Some(_) => return Ok(false),
        }
        match next {
            Some(i) => end = i + 1,
            None => return Ok(true),
        }
    }
}

/// Directories matching one `stack-roots` glob that hold at least one `.tf` file.
fn discover(tree: &dyn TreeView, field: &str, pattern: &str) -> Result<Vec<String>> {
    let matcher = glob(field, pattern)?.compile_matcher();
    let norm = normalise_path(field, pattern)?;
    let comps: Vec<&str> = norm.split('/').collect();
    let literal = comps
        .iter()
        .take_while(|c| !c.contains(['*', '?', '[', '{']))
        .count();
    let base = comps[..literal].join("/");
    let max_depth = if comps[literal..].contains(&"**") {
        usize::MAX
    } else {
        comps.len() - literal
    };
    let mut out = Vec::new();
    if literal == comps.len() {
        if check_dir(tree, field, &base)? && has_tf(tree, &base) {
            out.push(base);
        }
        return Ok(out);
    }
    if !check_dir(tree, field, &base)? {
        return Ok(out);
    }
    let mut stack = vec![(base, 0usize)];
    while let Some((dir, depth)) = stack.pop() {
        if depth >= max_depth {
            continue;
        }
        for (name, kind) in tree.list(&dir).unwrap_or_default() {
            if kind != Kind::Dir || name.starts_with('.') {
                continue;
            }
            let p = join(&dir, &name);
            if matcher.is_match(&p) && has_tf(tree, &p) {
                out.push(p.clone());
            }
            stack.push((p, depth + 1));
        }
    }
    out.sort();
    Ok(out)
}

fn has_tf(tree: &dyn TreeView, dir: &str) -> bool {
    tree.list(dir)
        .unwrap_or_default()
        .iter()
        .any(|(n, k)| *k == Kind::File && n.ends_with(".tf"))
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

/// Resolve and validate the stacks of one commit. `envs`: the environment names that exist;
/// `working_dir`: the one stack's path when the section is empty.
pub fn resolve(
    section: &Section,
    tree: &dyn TreeView,
    envs: &[&str],
    working_dir: &str,
    source: &str,
) -> Result<Resolved> {
    let ctx = |f: Failure, at: String| f.context(format!("{source}: {at}"));
    if section.is_single() {
        let path = normalise_path("working-dir", working_dir)?;
        let exists = check_dir(tree, "working-dir", &path)?;
        let stack = Stack {
            name: DEFAULT_STACK.into(),
            path: path.clone(),
            depends_on: vec![],
            watch: vec![],
            environments: None,
            state_key: String::new(),
            layer: 0,
        };
        let missing = if exists {
            vec![]
        } else {
            vec![(DEFAULT_STACK.to_string(), path)]
        };
        return Ok(Resolved::new(vec![stack], missing));
    }
    let mut stacks: Vec<Stack> = Vec::new();
    let mut missing = Vec::new();
    let mut by_name: HashMap<String, usize> = HashMap::new();
    let mut by_path: HashMap<String, usize> = HashMap::new();
    for (i, e) in section.stacks.iter().flatten().enumerate() {
        let at = |k: &str| format!("stacks[{i}].{k}");
        validate_name(FIELD, &e.name).map_err(|f| ctx(f, at("name")))?;
        let path = normalise_path(FIELD, &e.path).map_err(|f| ctx(f, at("path")))?;
        if let Some(&j) = by_name.get(&e.name) {
            return Err(ctx(
                Failure::usage(FIELD, format!("stack `{}` is listed twice", e.name)),
                format!("stacks[{j}] and stacks[{i}]"),
            ));
        }
        if let Some(&j) = by_path.get(&path) {
            return Err(ctx(
                Failure::usage(
                    FIELD,
                    format!(
                        "path `{}` is used by both `{}` and `{}`",
                        e.path, stacks[j].name, e.name
                    ),
                ),
                at("path"),
            ));
        }
        if !check_dir(tree, FIELD, &path).map_err(|f| ctx(f, at("path")))? {
            missing.push((e.name.clone(), path.clone()));
        }
        for w in &e.watch {
            match watch_prefix(w) {
                Some(_) => normalise_path(FIELD, w).map(drop),
                None => glob(FIELD, w).map(drop),
            }
            .map_err(|f| ctx(f, at("watch")))?;
        }
        if let Some(list) = &e.environments {
            if list.is_empty() {
                return Err(ctx(
                    Failure::usage(FIELD, "is empty; leave it out to deploy everywhere"),
                    at("environments"),
                ));
            }
            for env in list {
                if !envs.contains(&env.as_str()) {
                    return Err(ctx(
                        Failure::usage(
                            FIELD,
                            format!(
                                "stack `{}` names environment `{}`, which does not exist (known: {})",
                                e.name,
                                single_line(env),
                                envs.join(", ")
                            ),
                        ),
                        at("environments"),
                    ));
                }
            }
        }
        let state_key = match &e.state_key {
            Some(k) => {
                validate_state_key(FIELD, k).map_err(|f| ctx(f, at("state-key")))?;
                k.clone()
            }
            None => default_state_key(&e.name),
        };
        let mut deps = e.depends_on.clone();
        deps.sort();
        deps.dedup();
        by_name.insert(e.name.clone(), stacks.len());
        by_path.insert(path.clone(), stacks.len());
        stacks.push(Stack {
            name: e.name.clone(),
            path,
            depends_on: deps,
            watch: e.watch.clone(),
            environments: e.environments.clone(),
            state_key,
            layer: 0,
        });
    }
    for (i, pattern) in section.stack_roots.iter().flatten().enumerate() {
        let at = format!("stack-roots[{i}]");
        for dir in discover(tree, FIELD, pattern).map_err(|f| ctx(f, at.clone()))? {
            if by_path.contains_key(&dir) {
                continue; // an explicit entry for the same directory wins
            }
            let name = dir.rsplit('/').next().unwrap_or(&dir).to_string();
            validate_name(FIELD, &name).map_err(|f| ctx(f, format!("{at} found `{dir}`")))?;
            if let Some(&j) = by_name.get(&name) {
                return Err(ctx(
                    Failure::usage(
                        FIELD,
                        format!(
                            "stack name `{name}` is used by both `{}` and `{dir}`; add an explicit `stacks:` entry for one of them",
                            stacks[j].shown_path()
                        ),
                    ),
                    at.clone(),
                ));
            }
            by_name.insert(name.clone(), stacks.len());
            by_path.insert(dir.clone(), stacks.len());
            stacks.push(Stack {
                state_key: default_state_key(&name),
                name,
                path: dir,
                depends_on: vec![],
                watch: vec![],
                environments: None,
                layer: 0,
            });
        }
    }
    if stacks.len() > MAX_STACKS {
        return Err(Failure::usage(
            FIELD,
            format!("{source}: more than {MAX_STACKS} stacks"),
        ));
    }
    if stacks.is_empty() {
        return Err(Failure::usage(
            FIELD,
            format!("{source}: `stacks`/`stack-roots` define no stack"),
        ));
    }
    for s in &stacks {
        for d in &s.depends_on {
            let Some(&j) = by_name.get(d) else {
                return Err(Failure::usage(
                    FIELD,
                    format!(
                        "{source}: stack `{}` depends on `{}`, which is not a stack",
                        s.name,
                        single_line(d)
                    ),
                ));
            };
            if let Some(env) = envs
                .iter()
                .find(|e| s.deploys_to(e) && !stacks[j].deploys_to(e))
            {
                return Err(Failure::usage(
                    FIELD,
                    format!(
                        "{source}: stack `{}` deploys to `{env}` but depends on `{d}`, which does not",
                        s.name
                    ),
                ));
            }
        }
    }
    let graph: Vec<(&str, Vec<&str>)> = stacks
        .iter()
        .map(|s| {
            (
                s.name.as_str(),
                s.depends_on.iter().map(String::as_str).collect(),
            )
        })
        .collect();
    let layers = layers(&graph).map_err(|f| f.context(source))?;
    for (s, l) in stacks.iter_mut().zip(layers) {
        s.layer = l;
    }
    stacks.sort_by(|a, b| (a.layer, &a.name).cmp(&(b.layer, &b.name)));
    missing.sort();
    Ok(Resolved::new(stacks, missing))
}

/// Dependency layers: `graph[i] = (name, dependencies)`; the layer of a node is one more than
/// the highest layer of its dependencies (0 without any). A cycle is exit 2, naming it
/// (`a -> b -> a`). Unknown dependencies are ignored here (checked by [`resolve`]).
pub fn layers(graph: &[(&str, Vec<&str>)]) -> Result<Vec<usize>> {
    let index: HashMap<&str, usize> = graph
        .iter()
        .enumerate()
        .map(|(i, (n, _))| (*n, i))
        .collect();
    // 0 = unvisited, 1 = on the current path, 2 = done.
    let mut state = vec![0u8; graph.len()];
    let mut layer = vec![0usize; graph.len()];
    for start in 0..graph.len() {
        if state[start] == 2 {
            continue;
        }
        // Iterative depth-first search: (node, next dependency to look at).
        let mut path: Vec<(usize, usize)> = vec![(start, 0)];
        state[start] = 1;
        while let Some(&mut (node, ref mut next)) = path.last_mut() {
            let deps = &graph[node].1;
            if let Some(dep) = deps.get(*next) {
                *next += 1;
                let Some(&d) = index.get(dep) else { continue };
                match state[d] {
                    0 => {
                        state[d] = 1;
                        path.push((d, 0));
                    }
                    1 => {
                        let from = path.iter().position(|(n, _)| *n == d).unwrap_or(0);
                        let mut names: Vec<&str> =
                            path[from..].iter().map(|(n, _)| graph[*n].0).collect();
                        names.push(graph[d].0);
                        return Err(Failure::usage(
                            FIELD,
                            format!("dependency cycle: {}", names.join(" -> ")),
                        ));
                    }
                    _ => {}
                }
            } else {
                layer[node] = deps
                    .iter()
                    .filter_map(|d| index.get(d))
                    .map(|&d| layer[d] + 1)
                    .max()
                    .unwrap_or(0);
                state[node] = 2;
                path.pop();
            }
        }
    }
    Ok(layer)
}

// ------------------------------------------------------------------ local modules

/// The local module directories each directory calls (`module` blocks whose `source` starts with
/// `./` or `../`), read with an HCL parser, cached per directory.
pub struct Modules<'t> {
    tree: &'t dyn TreeView,
    /// dir -> (modules it calls, whether every `.tf` file of it was parsed).
    cache: HashMap<String, (Vec<String>, bool)>,
    /// (file id, whether parsed in full) -> the local sources it declares (`None`: it cannot
    /// declare a module): a file with the same bytes as one read before is not read again.
    by_id: HashMap<(git2::Oid, bool), Option<Vec<String>>>,
    /// file -> what parsing it gave, worked out ahead by [`Modules::prefetch`].
    ahead: HashMap<String, Result<Vec<String>>>,
}

/// Below this many files to parse, [`Modules::prefetch`] parses on the calling thread.
const PARALLEL_FROM: usize = 64;

impl<'t> Modules<'t> {
    /// Module reader over one commit.
    pub fn new(tree: &'t dyn TreeView) -> Self {
        Modules {
            tree,
            cache: HashMap::new(),
            by_id: HashMap::new(),
            ahead: HashMap::new(),
        }
    }

    /// Parse the `.tf` files of `dirs` that may declare a module on every core, ahead of the
    /// reads that need them: [`Modules::calls`] then finds each file's result (or error) as it
    /// would have computed it, at the point where it would have (only the parsing, a pure
    /// function of the bytes, moves; reading git objects stays on this thread).
    pub fn prefetch(&mut self, dirs: &[&str]) {
        let mut queued: HashSet<git2::Oid> = HashSet::new();
        let mut jobs: Vec<(String, Option<git2::Oid>, Vec<u8>)> = Vec::new();
        for dir in dirs {
            for (name, kind) in self.tree.list(dir).unwrap_or_default() {
                if kind != Kind::File || !name.ends_with(".tf") {
                    continue;
                }
                let file = join(dir, &name);
                let id = self.tree.id(&file);
                if let Some(id) = id {
                    if self.by_id.contains_key(&(id, false)) || !queued.insert(id) {
                        continue;
                    }
                }
                let Some(bytes) = self.tree.read(&file) else {
                    continue;
                };
                if !may_declare_module(&bytes) {
                    if let Some(id) = id {
                        self.by_id.insert((id, false), None);
                    }
                    continue;
                }
                jobs.push((file, id, bytes));
            }
        }
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
        let parse = |part: &[(String, Option<git2::Oid>, Vec<u8>)]| -> Vec<Result<Vec<String>>> {
            part.iter().map(|(f, _, b)| module_sources(f, b)).collect()
        };
        let results: Vec<Result<Vec<String>>> = if threads < 2 || jobs.len() < PARALLEL_FROM {
            parse(&jobs)
        } else {
            let size = jobs.len().div_ceil(threads);
            std::thread::scope(|scope| {
                let handles: Vec<_> = jobs
                    .chunks(size)
                    .map(|part| scope.spawn(move || parse(part)))
                    .collect();
                handles
                    .into_iter()
                    .flat_map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                    .collect()
            })
        };
        for ((file, id, _), result) in jobs.into_iter().zip(results) {
            match (id, result) {
                (Some(id), Ok(sources)) => {
                    self.by_id.insert((id, false), Some(sources));
                }
                (_, result) => {
                    self.ahead.insert(file, result);
                }
            }
        }
    }

    /// The local module directories `dir` calls directly (normalised, sorted). Only files that
    /// mention `module` are parsed: no other file can call one.
    pub fn calls(&mut self, dir: &str) -> Result<&[String]> {
        self.read(dir, false)
    }

    fn read(&mut self, dir: &str, full: bool) -> Result<&[String]> {
        if !self.cache.get(dir).is_some_and(|(_, f)| *f || !full) {
            let found = self.read_dir(dir, full)?;
            self.cache.insert(dir.to_string(), (found, full));
        }
        Ok(&self.cache[dir].0)
    }

    /// Read the whole local module graph of `dir`, transitively (a stack about to be planned):
    /// a file declaring a module that does not parse, or a bad module source, is exit 2. With
    /// `full`, every `.tf` file on the way is parsed, not only those declaring modules.
    pub fn check(&mut self, dir: &str, full: bool) -> Result<()> {
        let mut seen: HashSet<String> = HashSet::from([dir.to_string()]);
        let mut todo = vec![dir.to_string()];
        while let Some(d) = todo.pop() {
            for m in self.read(&d, full)?.to_vec() {
                if seen.insert(m.clone()) {
                    todo.push(m);
                }
            }
        }
        Ok(())
    }

    /// The local sources the `.tf` file `file` declares; `None` when it cannot declare a
    /// module (no line starting with `module`; with `full`, every file is parsed).
    fn sources(&mut self, file: &str, full: bool) -> Result<Option<Vec<String>>> {
        let id = self.tree.id(file);
        if let Some(hit) = id.and_then(|id| self.by_id.get(&(id, full))) {
            return Ok(hit.clone());
        }
        if !full {
            if let Some(result) = self.ahead.remove(file) {
                return result.map(Some);
            }
        }
        let Some(bytes) = self.tree.read(file) else {
            return Ok(None);
        };
        let found = if !full && !may_declare_module(&bytes) {
            None
        } else {
            Some(module_sources(file, &bytes)?)
        };
        if let Some(id) = id {
            self.by_id.insert((id, full), found.clone());
        }
        Ok(found)
    }

    fn read_dir(&mut self, dir: &str, full: bool) -> Result<Vec<String>> {
        let mut out = BTreeSet::new();
        for (name, kind) in self.tree.list(dir).unwrap_or_default() {
            if kind != Kind::File || !name.ends_with(".tf") {
                continue;
            }
            let file = join(dir, &name);
            let Some(sources) = self.sources(&file, full)? else {
                continue;
            };
            for source in sources {
                let target = resolve_source(dir, &source).ok_or_else(|| {
                    Failure::usage(
                        FIELD,
                        format!(
                            "{file}: module source `{}` leaves the repository",
                            single_line(&source)
                        ),
                    )
                })?;
                if !check_dir(self.tree, FIELD, &target)
                    .map_err(|f| f.context(format!("{file}: module source `{source}`")))?
                {
                    return Err(Failure::usage(
                        FIELD,
                        format!(
                            "{file}: module source `{}` is not a directory in this commit",
                            single_line(&source)
                        ),
                    ));
                }
                out.insert(target);
            }
        }
        Ok(out.into_iter().collect())
    }
}

/// Can this file declare a `module` block? True when some line starts (after blanks) with the
/// word `module` followed by a blank, `"` or `{`: a cheap filter before parsing (`module.x.id`
/// references and comments do not count). Anything unusual errs on the side of parsing.
pub fn may_declare_module(bytes: &[u8]) -> bool {
    static FINDER: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"module"));
    FINDER.find_iter(bytes).any(|at| {
        let before = bytes[..at]
            .iter()
            .rev()
            .take_while(|&&b| b != b'\n')
            .all(|&b| b == b' ' || b == b'\t' || b == b'\r');
        let after = bytes.get(at + 6).copied();
        before && matches!(after, Some(b' ' | b'\t' | b'"' | b'{'))
    })
}

/// The local `source` strings of the `module` blocks of one `.tf` file. An unparsable file is
/// exit 2 naming the file and line.
pub fn module_sources(file: &str, bytes: &[u8]) -> Result<Vec<String>> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| Failure::usage(FIELD, format!("{file}: is not UTF-8")))?;
    let body = hcl_edit::parser::parse_body(text).map_err(|e| {
        Failure::usage(
            FIELD,
            format!(
                "{file}:{}:{}: cannot parse HCL: {}",
                e.location().line(),
                e.location().column(),
                single_line(e.message())
            ),
        )
    })?;
    let mut out = Vec::new();
    for block in body.get_blocks("module") {
        let Some(attr) = block.body.get_attribute("source") else {
            continue;
        };
        if let Some(s) = attr.value.as_str() {
            if s.starts_with("./") || s.starts_with("../") {
                out.push(s.to_string());
            }
        }
    }
    Ok(out)
}

/// Resolve a local module source against the calling directory; `None` when it leaves the
/// repository.
pub fn resolve_source(dir: &str, source: &str) -> Option<String> {
    let mut parts: Vec<&str> = if dir.is_empty() {
        vec![]
    } else {
        dir.split('/').collect()
    };
    let source = source.split("//").next().unwrap_or(source);
    for c in source.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            c => parts.push(c),
        }
    }
    Some(parts.join("/"))
}

// ------------------------------------------------------------------ change detection

/// Why a stack is in the changed set (first reason found).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind", content = "detail")]
pub enum Reason {
    /// No deploy of the environment yet: every stack is planned.
    FirstDeploy,
    /// The stack is new or its configuration entry changed.
    Config,
    /// A file under its path changed.
    File(String),
    /// A file of a local module it calls (transitively) changed: (module dir, file).
    Module(String, String),
    /// A file matching one of its `watch` globs changed.
    Watch(String),
    /// A stack it depends on changed.
    DependsOn(String),
    /// Not changed against the merge base, but changed since the environment's current deploy
    /// (its short SHA; `None`: never deployed): the environment's next deploy applies it too.
    Undeployed(Option<String>, Box<Reason>),
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reason::FirstDeploy => f.write_str("no deploy of this environment yet"),
            Reason::Config => f.write_str("new, or its configuration entry changed"),
            Reason::File(p) => write!(f, "{p} changed"),
            Reason::Module(m, p) => write!(f, "local module {m} changed ({p})"),
            Reason::Watch(p) => write!(f, "watched file {p} changed"),
            Reason::DependsOn(s) => write!(f, "depends on `{s}`, which changed"),
            Reason::Undeployed(Some(sha), r) => {
                write!(
                    f,
                    "not deployed yet: changed since the current deploy {sha} ({r})"
                )
            }
            Reason::Undeployed(None, _) => {
                f.write_str("not deployed yet: the environment has no deploy")
            }
        }
    }
}

/// The changed stacks, in dependency order, and the deleted ones.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// (stack index in `head.stacks`, reason), in dependency order.
    pub changed: Vec<(usize, Reason)>,
    /// Stacks that were in the base and are gone from the configuration or the disk (sorted).
    pub deleted: Vec<String>,
}

/// Decide which stacks changed. `base`: the stacks of the base commit (`None`: the base's
/// configuration could not be read, every stack counts as changed by its configuration);
/// `paths`: every path changed between base and head (both sides of a rename); `modules`: the
/// head's module reader; `env`: only stacks deploying there.
pub fn changed(
    base: Option<&Resolved>,
    head: &Resolved,
    paths: &[String],
    modules: &mut Modules<'_>,
    env: Option<&str>,
) -> Result<Changes> {
    let present = |r: &Resolved, s: &Stack| !r.missing.iter().any(|(n, _)| *n == s.name);
    let in_env = |s: &Stack| env.is_none_or(|e| s.deploys_to(e));
    let n = head.stacks.len();
    let mut reason: Vec<Option<Reason>> = vec![None; n];
    let live: Vec<bool> = head
        .stacks
        .iter()
        .map(|s| present(head, s) && in_env(s))
        .collect();

    // Configuration entries.
    for (i, s) in head.stacks.iter().enumerate() {
        let same = base.and_then(|b| b.get(&s.name)).is_some_and(|o| {
            o.path == s.path
                && o.depends_on == s.depends_on
                && o.watch == s.watch
                && o.environments == s.environments
                && o.state_key == s.state_key
                && present(base.expect("some"), o)
        });
        if !same {
            reason[i] = Some(Reason::Config);
        }
    }

    // Files under a stack's path: the deepest stack holding the file.
    let by_path: HashMap<&str, usize> = head
        .stacks
        .iter()
        .enumerate()
        .map(|(i, s)| (s.path.as_str(), i))
        .collect();
    let mut touched: HashSet<&str> = HashSet::new();
    for p in paths {
        let mut end = p.len();
        let mut owner = None;
        loop {
            let dir = &p[..end];
            if end < p.len() {
                touched.insert(dir);
            }
            if owner.is_none() && end < p.len() {
                owner = by_path.get(dir).copied();
            }
            if end == 0 {
                break;
            }
            end = dir.rfind('/').unwrap_or(0);
        }
        if let Some(i) = owner {
            if reason[i].is_none() {
                reason[i] = Some(Reason::File(p.clone()));
            }
        }
    }

    // Watch globs: `dir/**` by directory lookup, the others in one set for every stack.
    let mut set = GlobSetBuilder::new();
    let mut owner: Vec<usize> = Vec::new();
    let mut by_dir: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, s) in head.stacks.iter().enumerate() {
        for w in &s.watch {
            if let Some(dir) = watch_prefix(w) {
                by_dir.entry(dir).or_default().push(i);
            } else {
                set.add(glob(FIELD, w)?);
                owner.push(i);
            }
        }
    }
    if !by_dir.is_empty() {
        for p in paths {
            let mut end = p.len();
            while let Some(cut) = p[..end].rfind('/') {
                end = cut;
                for &i in by_dir.get(&p[..end]).into_iter().flatten() {
                    if reason[i].is_none() {
                        reason[i] = Some(Reason::Watch(p.clone()));
                    }
                }
            }
        }
    }
    if !owner.is_empty() {
        let set: GlobSet = set.build().map_err(|e| {
            Failure::usage(
                FIELD,
                format!("the watch globs do not build ({})", e.kind()),
            )
        })?;
        for p in paths {
            for g in set.matches(p) {
                let i = owner[g];
                if reason[i].is_none() {
                    reason[i] = Some(Reason::Watch(p.clone()));
                }
            }
        }
    }

    // Every directory read below (the walk's first step, the check of changed stacks), parsed
    // ahead on every core.
    let first: Vec<&str> = (0..n)
        .filter(|&i| live[i] && (reason[i].is_some() || !touched.is_empty()))
        .map(|i| head.stacks[i].path.as_str())
        .collect();
    modules.prefetch(&first);

    // Local modules, only for live stacks not already changed and only when some changed path
    // lies in a directory a module could be in.
    if !touched.is_empty() {
        let first_file = |dir: &str| {
            paths
                .iter()
                .find(|p| is_under(p, dir))
                .cloned()
                .unwrap_or_default()
        };
        for i in 0..n {
            if reason[i].is_some() || !live[i] {
                continue;
            }
            let start = head.stacks[i].path.clone();
            let mut seen: HashSet<String> = HashSet::from([start.clone()]);
            let mut todo = vec![start];
            'walk: while let Some(dir) = todo.pop() {
                for m in modules.calls(&dir)?.to_vec() {
                    if touched.contains(m.as_str()) {
                        let f = first_file(&m);
                        reason[i] = Some(Reason::Module(m, f));
                        break 'walk;
                    }
                    if seen.insert(m.clone()) {
                        todo.push(m);
                    }
                }
            }
        }
    }

    // depends-on: in layer order, a stack whose dependency changed is changed.
    let index: HashMap<&str, usize> = head
        .stacks
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.as_str(), i))
        .collect();
    for i in 0..n {
        // head.stacks is in layer order, so dependencies are decided before their dependents.
        if reason[i].is_some() {
            continue;
        }
        if let Some(d) = head.stacks[i].depends_on.iter().find(|d| {
            index
                .get(d.as_str())
                .is_some_and(|&j| reason[j].is_some() && live[j])
        }) {
            reason[i] = Some(Reason::DependsOn(d.clone()));
        }
    }

    let changed: Vec<(usize, Reason)> = reason
        .into_iter()
        .enumerate()
        .filter(|(i, _)| live[*i])
        .filter_map(|(i, r)| r.map(|r| (i, r)))
        .collect();
    for (i, _) in &changed {
        modules.check(&head.stacks[*i].path, false)?;
    }
    let mut deleted: BTreeSet<String> = head
        .missing
        .iter()
        .filter(|(n, _)| head.get(n).is_some_and(in_env))
        .map(|(n, _)| n.clone())
        .collect();
    if let Some(b) = base {
        for s in &b.stacks {
            if head.get(&s.name).is_none() && in_env(s) && present(b, s) {
                deleted.insert(s.name.clone());
            }
        }
    }
    Ok(Changes {
        changed,
        deleted: deleted.into_iter().collect(),
    })
}

/// Every live stack of the head as changed for a first deploy.
pub fn first_deploy(head: &Resolved, env: Option<&str>) -> Changes {
    Changes {
        changed: head
            .stacks
            .iter()
            .enumerate()
            .filter(|(_, s)| env.is_none_or(|e| s.deploys_to(e)))
            .filter(|(_, s)| !head.missing.iter().any(|(n, _)| *n == s.name))
            .map(|(i, _)| (i, Reason::FirstDeploy))
            .collect(),
        deleted: head
            .missing
            .iter()
            .filter(|(n, _)| {
                head.get(n)
                    .is_some_and(|s| env.is_none_or(|e| s.deploys_to(e)))
            })
            .map(|(n, _)| n.clone())
            .collect(),
    }
}

/// What a pull request plans: the stacks it changes (`pr`, against the merge base) joined with
/// what the target environment's next deploy applies beyond them (`since`, the stacks changed
/// since its current deploy `deployed`; `None`: never deployed). Without the join, a stack
/// whose apply failed in an earlier deploy is applied by the next deploy with no plan reviewed
/// on the pull request. A stack in both keeps its `pr` reason; one only in `since` is
/// [`Reason::Undeployed`]. Both are of the same head (indices into the same stacks), so the
/// result stays in dependency order.
pub fn with_undeployed(pr: Changes, since: Changes, deployed: Option<&str>) -> Changes {
    let mut by_index: BTreeMap<usize, Reason> = pr.changed.into_iter().collect();
    for (i, r) in since.changed {
        by_index
            .entry(i)
            .or_insert_with(|| Reason::Undeployed(deployed.map(str::to_string), Box::new(r)));
    }
    let deleted: BTreeSet<String> = pr.deleted.into_iter().chain(since.deleted).collect();
    Changes {
        changed: by_index.into_iter().collect(),
        deleted: deleted.into_iter().collect(),
    }
}

// ------------------------------------------------------------------ matrix

/// One matrix entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct MatrixEntry {
    /// Stack name.
    pub stack: String,
    /// Directory (`.` for the root).
    pub path: String,
    /// Layer within this matrix (0, 1, ...: consecutive; a layer runs after the one before).
    pub layer: usize,
    /// Terraform state key (empty in the one-stack mode: the template keeps its own).
    pub state_key: String,
}

/// A matrix (`{"include": [...]}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Matrix {
    /// The entries.
    pub include: Vec<MatrixEntry>,
}

/// One chunk of at most [`MATRIX_LIMIT`] entries, all of one layer. Serialised as a matrix
/// (`{"include": [...]}`: any other top-level key would be a matrix dimension).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Chunk {
    /// Chunk number (0, 1, ...), in the order they must run (its index in the array).
    #[serde(skip)]
    pub chunk: usize,
    /// The layer of every entry.
    #[serde(skip)]
    pub layer: usize,
    /// The entries.
    pub include: Vec<MatrixEntry>,
}

/// The outputs of `list` and `changed`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outputs {
    /// Every entry, in dependency order.
    pub matrix: Matrix,
    /// Chunks in run order.
    pub chunks: Vec<Chunk>,
    /// Number of layers.
    pub layers: usize,
    /// Deleted stacks.
    pub deleted: Vec<String>,
}

/// Build the matrix of the selected stacks (indices into `stacks`, which is in layer order).
/// Layers are renumbered to be consecutive among the selected stacks.
pub fn matrix(
    stacks: &[Stack],
    selected: &[usize],
    env: Option<&str>,
    deleted: &[String],
) -> Outputs {
    let mut sel = selected.to_vec();
    sel.sort_by(|&a, &b| {
        (stacks[a].layer, &stacks[a].name).cmp(&(stacks[b].layer, &stacks[b].name))
    });
    let mut renumber: BTreeMap<usize, usize> = BTreeMap::new();
    for &i in &sel {
        let next = renumber.len();
        renumber.entry(stacks[i].layer).or_insert(next);
    }
    let include: Vec<MatrixEntry> = sel
        .iter()
        .map(|&i| {
            let s = &stacks[i];
            MatrixEntry {
                stack: s.name.clone(),
                path: s.shown_path().to_string(),
                layer: renumber[&s.layer],
                state_key: s.state_key_for(env),
            }
        })
        .collect();
    let mut chunks: Vec<Chunk> = Vec::new();
    for e in &include {
        match chunks.last_mut() {
            Some(c) if c.layer == e.layer && c.include.len() < MATRIX_LIMIT => {
                c.include.push(e.clone())
            }
            _ => chunks.push(Chunk {
                chunk: chunks.len(),
                layer: e.layer,
                include: vec![e.clone()],
            }),
        }
    }
    Outputs {
        layers: renumber.len(),
        matrix: Matrix { include },
        chunks,
        deleted: deleted.to_vec(),
    }
}

// ------------------------------------------------------------------ git

/// A [`TreeView`] over one commit's tree. Directories are looked up once and kept (a lookup by
/// path would parse every tree on the way again: libgit2 does not cache trees above 4 KiB, and a
/// `stacks/` directory of 1,000 entries is 35 KiB).
pub struct GitTree<'r> {
    repo: &'r git2::Repository,
    dirs: std::cell::RefCell<HashMap<String, Option<std::rc::Rc<git2::Tree<'r>>>>>,
}

impl<'r> GitTree<'r> {
    /// A view of `tree`.
    pub fn new(repo: &'r git2::Repository, tree: git2::Tree<'r>) -> Self {
        let dirs = HashMap::from([(String::new(), Some(std::rc::Rc::new(tree)))]);
        GitTree {
            repo,
            dirs: std::cell::RefCell::new(dirs),
        }
    }

    fn kind_of(mode: i32) -> Kind {
        match mode & 0o170000 {
            0o040000 => Kind::Dir,
            0o120000 => Kind::Symlink,
            0o100000 => Kind::File,
            _ => Kind::Other,
        }
    }

    /// The directory at `path` (`None`: missing or not a directory).
    fn dir(&self, path: &str) -> Option<std::rc::Rc<git2::Tree<'r>>> {
        if let Some(t) = self.dirs.borrow().get(path) {
            return t.clone();
        }
        let (parent, name) = split(path);
        let found = self.dir(parent).and_then(|p| {
            let e = p.get_name(name)?;
            if Self::kind_of(e.filemode()) != Kind::Dir {
                return None;
            }
            self.repo.find_tree(e.id()).ok().map(std::rc::Rc::new)
        });
        self.dirs
            .borrow_mut()
            .insert(path.to_string(), found.clone());
        found
    }

    /// Mode and id of the entry at `path`.
    fn entry(&self, path: &str) -> Option<(Kind, git2::Oid)> {
        let (parent, name) = split(path);
        let dir = self.dir(parent)?;
        let e = dir.get_name(name)?;
        Some((Self::kind_of(e.filemode()), e.id()))
    }
}

/// (`a/b`, `c`) for `a/b/c`; (``, `c`) for `c`.
fn split(path: &str) -> (&str, &str) {
    match path.rfind('/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => ("", path),
    }
}

impl TreeView for GitTree<'_> {
    fn kind(&self, path: &str) -> Option<Kind> {
        if path.is_empty() {
            return Some(Kind::Dir);
        }
        self.entry(path).map(|(k, _)| k)
    }

    fn list(&self, path: &str) -> Option<Vec<(String, Kind)>> {
        let t = self.dir(path)?;
        Some(
            t.iter()
                .filter_map(|e| Some((e.name()?.to_string(), Self::kind_of(e.filemode()))))
                .collect(),
        )
    }

    fn read(&self, path: &str) -> Option<Vec<u8>> {
        match self.entry(path)? {
            (Kind::File, id) => Some(self.repo.find_blob(id).ok()?.content().to_vec()),
            _ => None,
        }
    }

    fn id(&self, path: &str) -> Option<git2::Oid> {
        match self.entry(path)? {
            (Kind::File, id) => Some(id),
            _ => None,
        }
    }
}

/// Every path changed between two trees, both sides of every change (so a rename counts for
/// its old and its new location without rename detection), sorted. The same paths as
/// `git diff --name-only --no-renames` (and libgit2's tree-to-tree diff), found by walking
/// both trees together and skipping every subtree whose object id is the same on both sides:
/// only the directories that differ are read.
pub fn diff_paths(
    repo: &git2::Repository,
    base: &git2::Tree<'_>,
    head: &git2::Tree<'_>,
) -> std::result::Result<Vec<String>, git2::Error> {
    let mut out = Vec::new();
    diff_trees(repo, "", Some(base), Some(head), &mut out)?;
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// The changed paths below `dir` between `old` and `new` (`None`: the side has no tree there).
fn diff_trees(
    repo: &git2::Repository,
    dir: &str,
    old: Option<&git2::Tree<'_>>,
    new: Option<&git2::Tree<'_>>,
    out: &mut Vec<String>,
) -> std::result::Result<(), git2::Error> {
    // Git sorts tree entries by name, a directory as if its name ended in `/`: merging both
    // lists in that order pairs each entry with the same name and kind on the other side (a
    // file replaced by a directory is a file deleted and a directory added).
    fn key<'e>(e: &'e git2::TreeEntry<'_>) -> (&'e [u8], bool) {
        (e.name_bytes(), GitTree::kind_of(e.filemode()) == Kind::Dir)
    }
    let order = |(a, ta): (&[u8], bool), (b, tb): (&[u8], bool)| {
        let n = a.len().min(b.len());
        a[..n].cmp(&b[..n]).then_with(|| {
            let next = |s: &[u8], t: bool| s.get(n).copied().or(t.then_some(b'/'));
            next(a, ta).cmp(&next(b, tb))
        })
    };
    let mut a: Vec<git2::TreeEntry<'_>> = old.map(|t| t.iter().collect()).unwrap_or_default();
    let mut b: Vec<git2::TreeEntry<'_>> = new.map(|t| t.iter().collect()).unwrap_or_default();
    a.reverse();
    b.reverse();
    loop {
        let side = match (a.last(), b.last()) {
            (None, None) => return Ok(()),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (Some(x), Some(y)) => order(key(x), key(y)),
        };
        let (x, y) = match side {
            std::cmp::Ordering::Less => (a.pop(), None),
            std::cmp::Ordering::Greater => (None, b.pop()),
            std::cmp::Ordering::Equal => (a.pop(), b.pop()),
        };
        if let (Some(x), Some(y)) = (&x, &y) {
            if x.id() == y.id() && x.filemode() == y.filemode() {
                continue;
            }
        }
        let Some(name) = x.as_ref().or(y.as_ref()).and_then(|e| e.name()) else {
            continue; // not UTF-8: a path the rules could not name either
        };
        let path = join(dir, name);
        let is_tree = |e: &Option<git2::TreeEntry<'_>>| {
            e.as_ref()
                .is_some_and(|e| GitTree::kind_of(e.filemode()) == Kind::Dir)
        };
        if is_tree(&x) || is_tree(&y) {
            let tree = |e: &Option<git2::TreeEntry<'_>>| match e {
                Some(e) => repo.find_tree(e.id()).map(Some),
                None => Ok(None),
            };
            let (tx, ty) = (tree(&x)?, tree(&y)?);
            diff_trees(repo, &path, tx.as_ref(), ty.as_ref(), out)?;
        } else {
            out.push(path);
        }
    }
}

/// Where and how to read the stacks of a commit.
#[derive(Debug, Clone)]
pub struct Opts<'a> {
    /// Repository-relative path of the configuration file (default [`crate::envs::CONFIG_PATH`]).
    pub config_path: &'a str,
    /// The one stack's directory when the configuration has no stacks section.
    pub working_dir: &'a str,
    /// Only stacks deploying to this environment.
    pub environment: Option<&'a str>,
}

/// The configuration of one commit: environments model, stacks section and resolved stacks.
pub struct Loaded {
    /// The environments model.
    pub model: crate::envs::Model,
    /// The resolved stacks.
    pub resolved: Resolved,
    section: Section,
    config: Option<Vec<u8>>,
}

/// Read and validate the configuration and stacks of one commit (exit 2 on anything wrong).
pub fn load(tree: &dyn TreeView, opts: &Opts<'_>, what: &str) -> Result<Loaded> {
    load_reusing(tree, opts, what, None)
}

/// As [`load`]; when the configuration file holds exactly the bytes of `same` (the other
/// commit's), its parsed model and section are reused instead of parsing the YAML again.
fn load_reusing(
    tree: &dyn TreeView,
    opts: &Opts<'_>,
    what: &str,
    same: Option<&Loaded>,
) -> Result<Loaded> {
    let config = normalise_path("config", opts.config_path)?;
    let source = format!("{config} at {what}");
    let bytes = read_config(tree, &config, &source)?;
    let (model, section) = match (same, &bytes) {
        (Some(l), b) if l.config == *b => (l.model.clone(), l.section.clone()),
        (_, None) => (crate::envs::Model::default(), Section::default()),
        (_, Some(bytes)) => {
            let text = std::str::from_utf8(bytes)
                .map_err(|_| Failure::usage("config", format!("{source}: is not UTF-8")))?;
            Section::with_model(text, &source)?
        }
    };
    if let Some(e) = opts.environment {
        model.get("environment", e)?;
    }
    let names: Vec<&str> = model
        .environments()
        .iter()
        .map(|e| e.name.as_str())
        .collect();
    let resolved = resolve(&section, tree, &names, opts.working_dir, &source)?;
    Ok(Loaded {
        model,
        resolved,
        section,
        config: bytes,
    })
}

/// The bytes of the configuration file at `config` (`None`: no such file); exit 2 when it is
/// not a regular file.
fn read_config(tree: &dyn TreeView, config: &str, source: &str) -> Result<Option<Vec<u8>>> {
    match tree.kind(config) {
        None => Ok(None),
        Some(Kind::File) => Ok(tree.read(config)),
        Some(_) => Err(Failure::usage(
            "config",
            format!("{source}: is not a regular file (a symbolic link or directory)"),
        )),
    }
}

/// The base's stacks without resolving the base in full, when that is sure to give what
/// [`resolve`] would: the base's configuration file holds the head's bytes and has no
/// `stack-roots:` (discovery depends on the tree). The stacks, their order and layers are
/// then the head's; only whether a stack's directory exists (or goes through a symlink) can
/// differ, and only for a stack whose path is a changed path, lies under one, or holds one (a
/// directory that appears, disappears or changes kind shows in the diff as the paths below it
/// or as the entry itself). Those few are checked in the base's tree. `None`: resolve the base
/// in full (also when such a check fails, so the full path words the warning).
fn base_like_head(
    head: &Loaded,
    base: &dyn TreeView,
    opts: &Opts<'_>,
    paths: &[String],
) -> Option<Resolved> {
    if head.section.stack_roots.is_some() {
        return None;
    }
    let config = normalise_path("config", opts.config_path).ok()?;
    if read_config(base, &config, "").ok()? != head.config {
        return None;
    }
    let changed: HashSet<&str> = paths.iter().map(String::as_str).collect();
    let mut holds: HashSet<&str> = HashSet::new();
    for p in paths {
        let mut end = p.len();
        while end > 0 {
            end = p[..end].rfind('/').unwrap_or(0);
            if !holds.insert(&p[..end]) {
                break; // its ancestors are in already
            }
        }
    }
    let touches = |path: &str| {
        if holds.contains(path) {
            return true;
        }
        let mut end = path.len();
        while end > 0 {
            if changed.contains(&path[..end]) {
                return true;
            }
            end = path[..end].rfind('/').unwrap_or(0);
        }
        false
    };
    let r = &head.resolved;
    let mut missing: Vec<(String, String)> = r
        .missing
        .iter()
        .filter(|(_, p)| !touches(p))
        .cloned()
        .collect();
    for s in r.stacks.iter().filter(|s| touches(&s.path)) {
        if !check_dir(base, FIELD, &s.path).ok()? {
            missing.push((s.name.clone(), s.path.clone()));
        }
    }
    missing.sort();
    Some(Resolved::new(r.stacks.clone(), missing))
}

/// The result of `changed`.
pub struct Detection {
    /// The head's stacks.
    pub head: Resolved,
    /// What changed.
    pub changes: Changes,
    /// A warning to show (the base's configuration could not be read).
    pub warning: Option<String>,
}

/// Detect the changed stacks between `base` (`None`: first deploy, every stack) and `head`.
pub fn detect(
    repo: &git2::Repository,
    base: Option<git2::Oid>,
    head: git2::Oid,
    opts: &Opts<'_>,
) -> Result<Detection> {
    detect_with(repo, base, head, opts, Resolve::Fast)
}

/// How [`detect_with`] reads the base's stacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resolve {
    /// From the head's when the configuration is the same ([`base_like_head`]).
    Fast,
    /// Always in full (the reference the fast path is tested against).
    #[cfg_attr(not(test), allow(dead_code))]
    Full,
}

fn detect_with(
    repo: &git2::Repository,
    base: Option<git2::Oid>,
    head: git2::Oid,
    opts: &Opts<'_>,
    how: Resolve,
) -> Result<Detection> {
    let tree_of = |oid: git2::Oid, what: &str| {
        repo.find_commit(oid).and_then(|c| c.tree()).map_err(|e| {
            Failure::runtime(format!(
                "cannot read the {what} commit {oid}: {}",
                single_line(e.message())
            ))
        })
    };
    let head_tree = tree_of(head, "head")?;
    let head_view = GitTree::new(repo, head_tree.clone());
    let loaded = load(&head_view, opts, &format!("head {}", short(head)))?;
    let env = opts.environment;
    let Some(base) = base else {
        let changes = first_deploy(&loaded.resolved, env);
        let mut modules = Modules::new(&head_view);
        let dirs: Vec<&str> = changes
            .changed
            .iter()
            .map(|(i, _)| loaded.resolved.stacks[*i].path.as_str())
            .collect();
        modules.prefetch(&dirs);
        for (i, _) in &changes.changed {
            modules.check(&loaded.resolved.stacks[*i].path, false)?;
        }
        return Ok(Detection {
            head: loaded.resolved,
            changes,
            warning: None,
        });
    };
    let base_tree = tree_of(base, "base")?;
    let base_view = GitTree::new(repo, base_tree.clone());
    let paths = diff_paths(repo, &base_tree, &head_tree).map_err(|e| {
        Failure::runtime(format!(
            "cannot diff {base}..{head}: {}",
            single_line(e.message())
        ))
    })?;
    let fast = match how {
        Resolve::Fast => base_like_head(&loaded, &base_view, opts, &paths),
        Resolve::Full => None,
    };
    let (base_resolved, warning) = match fast {
        Some(r) => (Some(r), None),
        None => match load_reusing(
            &base_view,
            &Opts {
                environment: None,
                ..opts.clone()
            },
            &format!("base {}", short(base)),
            Some(&loaded),
        ) {
            Ok(l) => (Some(l.resolved), None),
            Err(f) => (
                None,
                Some(format!(
                    "the base's configuration is not valid ({}); every stack counts as changed",
                    f.message
                )),
            ),
        },
    };
    let mut modules = Modules::new(&head_view);
    let changes = changed(
        base_resolved.as_ref(),
        &loaded.resolved,
        &paths,
        &mut modules,
        env,
    )?;
    Ok(Detection {
        head: loaded.resolved,
        changes,
        warning,
    })
}

/// The first 12 hex digits of a commit id, as messages show it.
pub fn short(oid: git2::Oid) -> String {
    oid.to_string()[..12].to_string()
}

/// The state keys of `resolved`'s stacks, in the environments they deploy to, that lie outside
/// every one of `prefixes` (what Core grants the repository's roles): `(stack, env, key)`, in
/// stack order. The one stack of a repository without a stacks section (empty key) uses the
/// key Core writes into TF_STATE_KEY, under the first prefix by construction.
pub fn keys_outside(
    resolved: &Resolved,
    envs: &[&str],
    prefixes: &[String],
) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for s in resolved.stacks.iter().filter(|s| !s.state_key.is_empty()) {
        for e in envs.iter().filter(|e| s.deploys_to(e)) {
            let key = s.state_key_for(Some(e));
            if !prefixes.iter().any(|p| key.starts_with(p.as_str())) {
                out.push((s.name.clone(), e.to_string(), key));
            }
        }
    }
    out
}

/// What Core grants a repository's roles, read from Core's configuration file of it: with an
/// explicit `stacks:` list, per environment exactly the keys of the stacks deploying there
/// (terraform/core/locals.tf `state_keys`); without one, the whole state prefixes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoreGrants {
    /// Everything under these prefixes, in every environment.
    Prefixes(Vec<String>),
    /// Per environment of Core's file: `(stack, key)`, in the file's order.
    Keys(BTreeMap<String, Vec<(String, String)>>),
}

impl CoreGrants {
    /// What Core computes from its file: `entries` (its `stacks:`, if any), `envs` (its
    /// environments), `prefixes` (its state-prefixes or the default).
    pub fn from_core(entries: Option<&[Entry]>, envs: &[&str], prefixes: &[String]) -> CoreGrants {
        let Some(entries) = entries else {
            return CoreGrants::Prefixes(prefixes.to_vec());
        };
        let mut keys: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
        for env in envs {
            let here = keys.entry(env.to_string()).or_default();
            for e in entries {
                if listed_in(e.environments.as_deref(), env) {
                    let template = e
                        .state_key
                        .clone()
                        .unwrap_or_else(|| default_state_key(&e.name));
                    here.push((e.name.clone(), template.replace("{env}", env)));
                }
            }
        }
        CoreGrants::Keys(keys)
    }
}

/// Where the repository's stacks and what Core grants disagree, one line each (empty: they
/// agree). `envs`: the repository's environments; `prefixes`: Core's state prefixes (or its
/// default); `explicit_prefixes`: Core's file names them (then Core refuses a stack key outside
/// them); `single_key_prefix`: the repository's first state prefix, whose
/// `<prefix><env>/terraform.tfstate` is the one stack's key (TF_STATE_KEY) without `stacks:`.
///
/// With prefix grants: every stack key outside the prefixes ([`keys_outside`]). With per-stack
/// grants: every (stack, environment) where one side has a key and the other has none or
/// another, naming both keys, and every Core key outside explicit prefixes.
pub fn core_disagreements(
    resolved: &Resolved,
    envs: &[&str],
    grants: &CoreGrants,
    explicit_prefixes: bool,
    prefixes: &[String],
    single_key_prefix: &str,
) -> Vec<String> {
    let keys = match grants {
        CoreGrants::Prefixes(p) => {
            return keys_outside(resolved, envs, p)
                .into_iter()
                .map(|(stack, env, key)| {
                    format!(
                        "stack `{stack}` in `{env}`: its state key `{key}` is outside Core's state-prefixes [{}]",
                        p.join(", ")
                    )
                })
                .collect();
        }
        CoreGrants::Keys(k) => k,
    };
    let mut out = Vec::new();
    // Every environment of either side, the repository's order first.
    let mut all: Vec<&str> = envs.to_vec();
    all.extend(
        keys.keys()
            .map(String::as_str)
            .filter(|e| !envs.contains(e)),
    );
    for env in all {
        let repo: Vec<(String, String)> = if envs.contains(&env) {
            resolved
                .stacks
                .iter()
                .filter(|s| s.deploys_to(env))
                .map(|s| {
                    let key = if s.state_key.is_empty() {
                        format!("{single_key_prefix}{env}/terraform.tfstate")
                    } else {
                        s.state_key_for(Some(env))
                    };
                    (s.name.clone(), key)
                })
                .collect()
        } else {
            vec![]
        };
        let core: &[(String, String)] = keys.get(env).map(Vec::as_slice).unwrap_or(&[]);
        let find = |l: &[(String, String)], n: &str| {
            l.iter().find(|(m, _)| m == n).map(|(_, k)| k.clone())
        };
        for (name, key) in &repo {
            match find(core, name) {
                None => out.push(format!(
                    "stack `{name}` in `{env}`: the repository's state key `{key}`, Core's file grants none (it does not list the stack there)"
                )),
                Some(k) if k != *key => out.push(format!(
                    "stack `{name}` in `{env}`: the repository's state key `{key}`, Core grants `{k}`"
                )),
                Some(_) => {}
            }
        }
        for (name, key) in core {
            if find(&repo, name).is_none() {
                out.push(format!(
                    "stack `{name}` in `{env}`: Core grants state key `{key}`, the repository has no such stack there"
                ));
            }
            if explicit_prefixes && !prefixes.iter().any(|p| key.starts_with(p.as_str())) {
                out.push(format!(
                    "stack `{name}` in `{env}`: Core's state key `{key}` is outside Core's state-prefixes [{}] (Core refuses it)",
                    prefixes.join(", ")
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
