use super::*;
use crate::exit::ExitClass;
use std::path::Path;

/// An in-memory tree: files by path; directories implied; `@link` marks a symlink.
struct Mem(BTreeMap<String, String>);

impl Mem {
    fn new(files: &[(&str, &str)]) -> Mem {
        Mem(files
            .iter()
            .map(|(p, c)| (p.to_string(), c.to_string()))
            .collect())
    }
}

impl TreeView for Mem {
    fn kind(&self, path: &str) -> Option<Kind> {
        if let Some(c) = self.0.get(path) {
            return Some(if c == "@link" {
                Kind::Symlink
            } else {
                Kind::File
            });
        }
        let pre = format!("{path}/");
        self.0
            .keys()
            .any(|k| k.starts_with(&pre))
            .then_some(Kind::Dir)
    }
    fn list(&self, path: &str) -> Option<Vec<(String, Kind)>> {
        if self.kind(path) != Some(Kind::Dir) {
            return None;
        }
        let pre = if path.is_empty() {
            String::new()
        } else {
            format!("{path}/")
        };
        let mut names: BTreeSet<String> = BTreeSet::new();
        for k in self.0.keys().filter(|k| k.starts_with(&pre)) {
            names.insert(k[pre.len()..].split('/').next().unwrap().to_string());
        }
        Some(
            names
                .into_iter()
                .map(|n| {
                    let k = self.kind(&join(path, &n)).unwrap();
                    (n, k)
                })
                .collect(),
        )
    }
    fn read(&self, path: &str) -> Option<Vec<u8>> {
        self.0.get(path).map(|c| c.as_bytes().to_vec())
    }
}

const ENVS: &[&str] = &["dev", "staging", "prod"];

fn resolve_yaml(yaml: &str, tree: &Mem) -> Result<Resolved> {
    let sec = Section::from_yaml(yaml, "t.yml")?;
    resolve(&sec, tree, ENVS, ".", "t.yml")
}

fn tf_tree() -> Mem {
    Mem::new(&[
        ("stacks/network/main.tf", "resource \"x\" \"y\" {}\n"),
        (
            "stacks/service/main.tf",
            "module \"m\" {\n  source = \"../../modules/svc\"\n}\n",
        ),
        ("stacks/db/main.tf", ""),
        (
            "modules/svc/main.tf",
            "module \"inner\" {\n  source = \"../base\"\n}\n",
        ),
        ("modules/base/main.tf", ""),
        ("modules/other/main.tf", ""),
        ("link", "@link"),
        ("config/service/a.json", "{}"),
    ])
}

#[test]
fn bad_configuration_is_exit_2_naming_the_entry() {
    let t = tf_tree();
    let cases: &[(&str, &str)] = &[
        ("stacks:\n  - name: a\n    path: stacks/network\n    dependson: []\n", "line 4, column 5: an unknown key; expected one of `name`, `path`"),
        ("stack-root: [x]\n", "line 1, column 1: an unknown key; expected one of `environments`, `state-prefixes`, `registries`, `preview`, `stacks`, `stack-roots`"),
        ("stacks:\n  - name: a\n    path: stacks/network\n  - name: a\n    path: stacks/db\n", "stack `a` is listed twice"),
        ("stacks:\n  - name: a\n    path: stacks/network\n  - name: b\n    path: stacks/network/\n", "path `stacks/network/` is used by both `a` and `b`"),
        ("stacks:\n  - name: a\n    path: ../outside\n", "stacks[0].path"),
        ("stacks:\n  - name: a\n    path: /etc\n", "is absolute"),
        ("stacks:\n  - name: a\n    path: stacks/../x\n", "leaves the repository"),
        ("stacks:\n  - name: a\n    path: link/sub\n", "symbolic link `link`"),
        ("stacks:\n  - name: a\n    path: stacks/network/main.tf\n", "is not a directory"),
        ("stacks:\n  - name: a\n    path: stacks/network\n    depends-on: [nope]\n", "stack `a` depends on `nope`, which is not a stack"),
        ("stacks:\n  - name: a\n    path: stacks/network\n    depends-on: [b]\n  - name: b\n    path: stacks/db\n    depends-on: [c]\n  - name: c\n    path: stacks/service\n    depends-on: [a]\n", "dependency cycle: a -> b -> c -> a"),
        ("stacks:\n  - name: a\n    path: stacks/network\n    depends-on: [a]\n", "dependency cycle: a -> a"),
        ("stacks:\n  - name: a\n    path: stacks/network\n    environments: [qa]\n", "names environment `qa`, which does not exist"),
        ("stacks:\n  - name: a\n    path: stacks/network\n    environments: []\n", "stacks[0].environments"),
        ("stacks:\n  - name: a\n    path: stacks/network\n    environments: [prod]\n  - name: b\n    path: stacks/db\n    depends-on: [a]\n", "stack `b` deploys to `dev` but depends on `a`, which does not"),
        ("stacks:\n  - name: 'a b'\n    path: stacks/network\n", "not a valid stack name"),
        ("stacks:\n  - name: a\n    path: stacks/network\n    watch: ['[']\n", "stacks[0].watch"),
        ("stacks:\n  - name: a\n    path: stacks/network\n    watch: ['../x/**']\n", "stacks[0].watch"),
        ("stacks:\n  - name: a\n    path: stacks/network\n    state-key: '/abs'\n", "not a valid state key"),
        ("stacks:\n  - name: a\n    path: stacks/network\n    state-key: 'a/../b'\n", "not a valid state key"),
        ("stacks:\n  - name: network\n    path: stacks/db\nstack-roots: ['stacks/*']\n", "stack name `network` is used by both `stacks/db` and `stacks/network`"),
        ("stacks: []\n", "define no stack"),
        ("stack-roots: ['../*']\n", "stack-roots[0]"),
    ];
    for (yaml, needle) in cases {
        let e = resolve_yaml(yaml, &t).unwrap_err();
        assert_eq!(e.class, ExitClass::Usage, "{yaml}");
        assert!(e.to_string().contains(needle), "{yaml}\n => {e}");
        assert!(!e.to_string().contains('\n'), "one line: {e}");
        // Where and what kind, never the text of the file (#21: echoing input in errors).
        for echoed in ["dependson", "stack-root:"] {
            assert!(!e.to_string().contains(echoed), "{yaml}\n => {e}");
        }
    }
}

#[test]
fn resolve_orders_by_layer_and_discovers_roots() {
    let t = tf_tree();
    let r = resolve_yaml(
        "stacks:\n  - name: service\n    path: stacks/service\n    depends-on: [network]\n    state-key: 'svc/{env}/s.tfstate'\nstack-roots: ['stacks/*']\n",
        &t,
    )
    .unwrap();
    let got: Vec<(&str, &str, usize)> = r
        .stacks
        .iter()
        .map(|s| (s.name.as_str(), s.path.as_str(), s.layer))
        .collect();
    assert_eq!(
        got,
        vec![
            ("db", "stacks/db", 0),
            ("network", "stacks/network", 0),
            ("service", "stacks/service", 1)
        ]
    );
    assert_eq!(
        r.get("network").unwrap().state_key_for(Some("dev")),
        "network/dev.tfstate"
    );
    assert_eq!(
        r.get("service").unwrap().state_key_for(Some("prod")),
        "svc/prod/s.tfstate"
    );
    // A configured stack missing from disk is not an error: it is reported as missing.
    let r = resolve_yaml("stacks:\n  - name: gone\n    path: stacks/gone\n", &t).unwrap();
    assert_eq!(
        r.missing,
        vec![("gone".to_string(), "stacks/gone".to_string())]
    );
    // Without a section: one stack at the working directory.
    let r = resolve(&Section::default(), &t, ENVS, "stacks/network", "t").unwrap();
    assert_eq!(r.stacks.len(), 1);
    assert_eq!(r.stacks[0].name, DEFAULT_STACK);
    assert_eq!(r.stacks[0].path, "stacks/network");
}

type Graph<'a> = &'a [(&'a str, &'a [&'a str])];

#[test]
fn layers_table() {
    let cases: &[(Graph, std::result::Result<&[usize], &str>)] = &[
        (&[], Ok(&[])),
        (
            &[("a", &[]), ("b", &["a"]), ("c", &["b", "a"])],
            Ok(&[0, 1, 2]),
        ),
        (
            &[("c", &["a", "b"]), ("b", &["a"]), ("a", &[])],
            Ok(&[2, 1, 0]),
        ),
        (&[("a", &[]), ("b", &[]), ("c", &["a"])], Ok(&[0, 0, 1])),
        (&[("a", &["x"])], Ok(&[0])),
        (
            &[("a", &["b"]), ("b", &["a"])],
            Err("dependency cycle: a -> b -> a"),
        ),
        (
            &[("x", &[]), ("a", &["x", "b"]), ("b", &["c"]), ("c", &["b"])],
            Err("dependency cycle: b -> c -> b"),
        ),
    ];
    for (graph, want) in cases {
        let g: Vec<(&str, Vec<&str>)> = graph.iter().map(|(n, d)| (*n, d.to_vec())).collect();
        match (layers(&g), want) {
            (Ok(got), Ok(w)) => assert_eq!(&got[..], *w, "{graph:?}"),
            (Err(e), Err(w)) => {
                assert_eq!(e.class, ExitClass::Usage);
                assert!(e.to_string().contains(w), "{e}");
            }
            (got, _) => panic!("{graph:?}: {got:?}"),
        }
    }
}

#[test]
fn module_sources_and_paths() {
    let src = "module \"a\" {\n source = \"./x\"\n}\nmodule \"b\" {\n source = \"hashicorp/consul/aws\"\n}\nmodule \"c\" { source = \"../y//sub\" }\n# module \"d\" { source = \"./commented\" }\n";
    assert_eq!(
        module_sources("f.tf", src.as_bytes()).unwrap(),
        vec!["./x", "../y//sub"]
    );
    let e = module_sources("stacks/a/main.tf", b"resource \"x\" {\n  a = \n}\n").unwrap_err();
    assert_eq!(e.class, ExitClass::Usage);
    assert!(
        e.to_string()
            .contains("stacks/a/main.tf:2:7: cannot parse HCL"),
        "{e}"
    );
    for (dir, src, want) in [
        ("stacks/a", "./m", Some("stacks/a/m")),
        ("stacks/a", "../../modules/x", Some("modules/x")),
        ("stacks/a", "../../../x", None),
        ("", "./m/", Some("m")),
        ("a", "../y//sub", Some("y")),
    ] {
        assert_eq!(resolve_source(dir, src).as_deref(), want, "{dir} {src}");
    }
    for (p, pre, want) in [
        ("a/b", "a", true),
        ("ab", "a", false),
        ("a", "a", true),
        ("x", "", true),
        ("a/bc", "a/b", false),
    ] {
        assert_eq!(is_under(p, pre), want, "{p} {pre}");
    }
}

#[test]
fn watch_prefix_table() {
    for (glob, want) in [
        ("config/service/**", Some("config/service")),
        ("a/**", Some("a")),
        ("**", None),
        ("/**", None),
        ("a/*/**", None),
        ("a/{b,c}/**", None),
        ("a/**/x", None),
        ("a//**", None),
    ] {
        assert_eq!(watch_prefix(glob), want, "{glob}");
    }
}

#[test]
fn module_prefilter_table() {
    for (text, want) in [
        ("module \"a\" {}", true),
        ("  module \"a\" {}", true),
        ("x = 1\n\tmodule\t\"a\" {}", true),
        ("module{", true),
        ("output \"id\" { value = module.m.id }", false),
        ("# module \"a\" {}", false),
        ("modules = 1", false),
        ("", false),
    ] {
        assert_eq!(may_declare_module(text.as_bytes()), want, "{text:?}");
    }
}

#[test]
fn full_check_parses_every_file_of_the_closure() {
    let t = Mem::new(&[
        ("s/main.tf", "module \"m\" { source = \"../m\" }\n"),
        ("m/main.tf", "resource \"x\" \"y\" {\n"),
    ]);
    let mut m = Modules::new(&t);
    // Deciding calls needs only files that declare modules; a full check parses them all.
    assert_eq!(m.calls("m").unwrap(), &[] as &[String]);
    m.check("s", false).unwrap();
    let e = m.check("s", true).unwrap_err();
    assert_eq!(e.class, ExitClass::Usage);
    assert!(e.to_string().contains("m/main.tf:"), "{e}");
}

#[test]
fn module_errors_are_exit_2() {
    for (files, needle) in [
        (
            vec![("s/main.tf", "module \"m\" { source = \"../../x\" }")],
            "leaves the repository",
        ),
        (
            vec![("s/main.tf", "module \"m\" { source = \"./nope\" }")],
            "not a directory in this commit",
        ),
        (
            vec![
                ("s/main.tf", "module \"m\" { source = \"../link\" }"),
                ("link", "@link"),
            ],
            "symbolic link",
        ),
        (vec![("s/main.tf", "module \"m\" {")], "s/main.tf:1:"),
    ] {
        let t = Mem::new(&files);
        let e = Modules::new(&t).calls("s").unwrap_err();
        assert_eq!(e.class, ExitClass::Usage);
        assert!(e.to_string().contains(needle), "{e}");
    }
}

fn names(head: &Resolved, c: &Changes) -> Vec<String> {
    c.changed
        .iter()
        .map(|(i, r)| format!("{}:{}", head.stacks[*i].name, r))
        .collect()
}

#[test]
fn change_rules_table() {
    let t = tf_tree();
    let yaml = "stacks:\n  - name: network\n    path: stacks/network\n  - name: service\n    path: stacks/service\n    depends-on: [network]\n    watch: ['config/service/**']\n  - name: db\n    path: stacks/db\n    environments: [prod]\n";
    let head = resolve_yaml(yaml, &t).unwrap();
    let base = head.clone();
    let cases: &[(&[&str], Option<&str>, &[&str])] = &[
        (&[], None, &[]),
        (&["README.md"], None, &[]),
        (
            &["stacks/network/main.tf"],
            None,
            &[
                "network:stacks/network/main.tf changed",
                "service:depends on `network`, which changed",
            ],
        ),
        (
            &["modules/base/main.tf"],
            None,
            &["service:local module modules/base changed (modules/base/main.tf)"],
        ),
        (&["modules/other/main.tf"], None, &[]),
        (
            &["config/service/a.json"],
            None,
            &["service:watched file config/service/a.json changed"],
        ),
        (
            &["config/service/deep/b.json"],
            None,
            &["service:watched file config/service/deep/b.json changed"],
        ),
        (&["stacks/db/x.tf"], Some("dev"), &[]),
        (
            &["stacks/db/x.tf"],
            Some("prod"),
            &["db:stacks/db/x.tf changed"],
        ),
        (&["stacks/dbx/x.tf"], None, &[]),
    ];
    for (paths, env, want) in cases {
        let paths: Vec<String> = paths.iter().map(|s| s.to_string()).collect();
        let c = changed(Some(&base), &head, &paths, &mut Modules::new(&t), *env).unwrap();
        assert_eq!(names(&head, &c), *want, "{paths:?} {env:?}");
        assert!(c.deleted.is_empty());
    }
    // A changed entry, a new stack, a deleted one; no base configuration = everything.
    let base2 = resolve_yaml("stacks:\n  - name: network\n    path: stacks/network\n    watch: ['x']\n  - name: old\n    path: stacks/db\n", &t).unwrap();
    let head2 = resolve_yaml("stacks:\n  - name: network\n    path: stacks/network\n  - name: new\n    path: stacks/db\n", &t).unwrap();
    let c = changed(Some(&base2), &head2, &[], &mut Modules::new(&t), None).unwrap();
    assert_eq!(
        names(&head2, &c),
        [
            "network:new, or its configuration entry changed",
            "new:new, or its configuration entry changed"
        ]
    );
    assert_eq!(c.deleted, ["old"]);
    let c = changed(None, &head2, &[], &mut Modules::new(&t), None).unwrap();
    assert_eq!(c.changed.len(), 2);
    // Missing from disk: deleted, never planned.
    let head3 = resolve_yaml("stacks:\n  - name: network\n    path: stacks/gone\n", &t).unwrap();
    let c = changed(
        Some(&head3),
        &head3,
        &["stacks/gone/main.tf".into()],
        &mut Modules::new(&t),
        None,
    )
    .unwrap();
    assert!(c.changed.is_empty());
    assert_eq!(c.deleted, ["network"]);
}

#[test]
fn nested_stack_owns_its_files() {
    let t = Mem::new(&[("live/main.tf", ""), ("live/vpc/main.tf", "")]);
    let head = resolve_yaml(
        "stacks:\n  - name: live\n    path: live\n  - name: vpc\n    path: live/vpc\n",
        &t,
    )
    .unwrap();
    let c = changed(
        Some(&head),
        &head,
        &["live/vpc/main.tf".into()],
        &mut Modules::new(&t),
        None,
    )
    .unwrap();
    assert_eq!(names(&head, &c), ["vpc:live/vpc/main.tf changed"]);
}

#[test]
fn matrix_chunks_by_layer_and_limit() {
    let mut stacks = Vec::new();
    for i in 0..600 {
        stacks.push(Stack {
            name: format!("s{i:03}"),
            path: format!("s/{i}"),
            depends_on: vec![],
            watch: vec![],
            environments: None,
            state_key: format!("s{i:03}/{{env}}.tfstate"),
            layer: if i < 300 { 0 } else { 3 },
        });
    }
    let all: Vec<usize> = (0..600).collect();
    let o = matrix(&stacks, &all, Some("dev"), &[]);
    assert_eq!(o.layers, 2);
    let shape: Vec<(usize, usize, usize)> = o
        .chunks
        .iter()
        .map(|c| (c.chunk, c.layer, c.include.len()))
        .collect();
    assert_eq!(
        shape,
        vec![(0, 0, 256), (1, 0, 44), (2, 1, 256), (3, 1, 44)]
    );
    assert_eq!(o.matrix.include[0].state_key, "s000/dev.tfstate");
    assert_eq!(o.matrix.include[599].layer, 1);
    let o = matrix(&stacks, &[450, 5], None, &[]);
    let got: Vec<(&str, usize)> = o
        .matrix
        .include
        .iter()
        .map(|e| (e.stack.as_str(), e.layer))
        .collect();
    assert_eq!(got, vec![("s005", 0), ("s450", 1)]);
    assert_eq!(o.matrix.include[0].state_key, "s005/{env}.tfstate");
    let o = matrix(&stacks, &[], None, &[]);
    assert_eq!((o.layers, o.chunks.len()), (0, 0));
    assert_eq!(
        serde_json::to_string(&o.matrix).unwrap(),
        r#"{"include":[]}"#
    );
}

// ---------------------------------------------------------------- on real git repositories

struct Repo {
    _dir: tempfile::TempDir,
    repo: git2::Repository,
}

impl Repo {
    fn new() -> Repo {
        let dir = tempfile::tempdir().unwrap();
        let repo = git2::Repository::init(dir.path()).unwrap();
        Repo { _dir: dir, repo }
    }
    fn root(&self) -> &Path {
        self.repo.workdir().unwrap()
    }
    fn write(&self, path: &str, text: &str) -> &Self {
        let p = self.root().join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
        self
    }
    fn rm(&self, path: &str) -> &Self {
        let p = self.root().join(path);
        if p.is_dir() {
            std::fs::remove_dir_all(p).unwrap();
        } else {
            std::fs::remove_file(p).unwrap();
        }
        self
    }
    fn mv(&self, from: &str, to: &str) -> &Self {
        let t = self.root().join(to);
        std::fs::create_dir_all(t.parent().unwrap()).unwrap();
        std::fs::rename(self.root().join(from), t).unwrap();
        self
    }
    fn commit(&self) -> git2::Oid {
        let mut idx = self.repo.index().unwrap();
        idx.add_all(["*"], git2::IndexAddOption::DEFAULT, None)
            .unwrap();
        idx.update_all(["*"], None).unwrap();
        idx.write().unwrap();
        let tree = self.repo.find_tree(idx.write_tree().unwrap()).unwrap();
        let sig = git2::Signature::now("t", "t@example.com").unwrap();
        let parent = self.repo.head().ok().and_then(|h| h.peel_to_commit().ok());
        let parents: Vec<&git2::Commit> = parent.iter().collect();
        self.repo
            .commit(Some("HEAD"), &sig, &sig, "c", &tree, &parents)
            .unwrap()
    }
    fn changed(
        &self,
        base: Option<git2::Oid>,
        head: git2::Oid,
        env: Option<&str>,
    ) -> (Vec<String>, Vec<String>) {
        let opts = Opts {
            config_path: crate::envs::CONFIG_PATH,
            working_dir: ".",
            environment: env,
        };
        let d = detect(&self.repo, base, head, &opts).unwrap();
        let names = d
            .changes
            .changed
            .iter()
            .map(|(i, _)| d.head.stacks[*i].name.clone())
            .collect();
        (names, d.changes.deleted)
    }
}

const CONFIG: &str = "environments:\n  - name: dev\n    branch: dev\n  - name: prod\n    branch: prod\nstacks:\n  - name: network\n    path: stacks/network\n  - name: service\n    path: stacks/service\n    depends-on: [network]\n    watch: ['config/service/**']\n  - name: edge\n    path: stacks/edge\n    environments: [prod]\n";

fn seeded() -> (Repo, git2::Oid) {
    let r = Repo::new();
    r.write(".github/gitops.yml", CONFIG)
        .write(
            "stacks/network/main.tf",
            "module \"vpc\" {\n  source = \"../../modules/vpc\"\n}\n",
        )
        .write(
            "stacks/service/main.tf",
            "module \"app\" {\n  source = \"../../modules/app\"\n}\n",
        )
        .write("stacks/edge/main.tf", "resource \"a\" \"b\" {}\n")
        .write(
            "modules/app/main.tf",
            "module \"lb\" {\n  source = \"../lb\"\n}\n",
        )
        .write("modules/lb/main.tf", "resource \"lb\" \"x\" {}\n")
        .write("modules/vpc/main.tf", "")
        .write("config/service/app.json", "{}");
    let c = r.commit();
    (r, c)
}

#[test]
fn git_module_chain_watch_and_propagation() {
    let (r, base) = seeded();
    r.write("modules/lb/main.tf", "resource \"lb\" \"y\" {}\n");
    let h = r.commit();
    assert_eq!(
        r.changed(Some(base), h, None),
        (vec!["service".into()], vec![])
    );
    r.write("modules/vpc/variables.tf", "variable \"x\" {}\n");
    let h2 = r.commit();
    assert_eq!(r.changed(Some(h), h2, None).0, ["network", "service"]);
    r.write("config/service/app.json", "{\"a\":1}");
    let h3 = r.commit();
    assert_eq!(r.changed(Some(h2), h3, None).0, ["service"]);
    // The same range through environments: `edge` only deploys to prod.
    assert_eq!(
        r.changed(Some(base), h3, Some("dev")).0,
        ["network", "service"]
    );
    r.write("stacks/edge/x.tf", "");
    let h4 = r.commit();
    assert!(r.changed(Some(h3), h4, Some("dev")).0.is_empty());
    assert_eq!(r.changed(Some(h3), h4, Some("prod")).0, ["edge"]);
}

#[test]
fn git_renames_count_on_both_sides() {
    let (r, base) = seeded();
    // A module moved from one stack's directory into another's.
    r.write("stacks/network/extra/x.tf", "resource \"a\" \"b\" {}\n");
    let c1 = r.commit();
    r.mv("stacks/network/extra/x.tf", "stacks/edge/extra/x.tf");
    let c2 = r.commit();
    assert_eq!(
        r.changed(Some(c1), c2, None).0,
        ["edge", "network", "service"]
    );
    let _ = base;
}

#[test]
fn git_deleted_stacks_are_listed_not_planned() {
    let (r, base) = seeded();
    r.rm("stacks/edge");
    let h = r.commit();
    assert_eq!(
        r.changed(Some(base), h, None),
        (vec![], vec!["edge".into()])
    );
    r.write(
        ".github/gitops.yml",
        &CONFIG.replace(
            "  - name: edge\n    path: stacks/edge\n    environments: [prod]\n",
            "",
        ),
    );
    let h2 = r.commit();
    assert_eq!(
        r.changed(Some(base), h2, None),
        (vec![], vec!["edge".into()])
    );
    // Deleted in prod only: dev never had it.
    assert_eq!(r.changed(Some(base), h2, Some("dev")), (vec![], vec![]));
}

#[test]
fn git_config_entry_change_and_first_deploy() {
    let (r, base) = seeded();
    r.write(
        ".github/gitops.yml",
        &CONFIG.replace(
            "watch: ['config/service/**']",
            "watch: ['config/service/*.json']",
        ),
    );
    let h = r.commit();
    assert_eq!(r.changed(Some(base), h, None).0, ["service"]);
    assert_eq!(r.changed(None, h, Some("dev")).0, ["network", "service"]);
    assert_eq!(
        r.changed(None, h, Some("prod")).0,
        ["edge", "network", "service"]
    );
}

#[test]
fn git_failed_stack_is_carried_over() {
    // deploy/<env>/current stays at the last successful deploy: a stack whose apply failed in
    // a later run is still changed against it in the next run, whatever that push touched.
    let (r, deployed) = seeded();
    r.write("stacks/edge/main.tf", "resource \"a\" \"c\" {}\n");
    let _failed = r.commit();
    r.write("modules/vpc/main.tf", "# v2\n");
    let next = r.commit();
    assert_eq!(
        r.changed(Some(deployed), next, Some("prod")).0,
        ["edge", "network", "service"]
    );
}

#[test]
fn git_stack_roots_and_invalid_base_configuration() {
    let r = Repo::new();
    r.write(".github/gitops.yml", "stack-roots: ['stacks/*']\n")
        .write("stacks/a/main.tf", "")
        .write("stacks/b/main.tf", "")
        .write("stacks/notes/README.md", "");
    let base = r.commit();
    r.write("stacks/c/main.tf", "").rm("stacks/b");
    let h = r.commit();
    assert_eq!(
        r.changed(Some(base), h, None),
        (vec!["c".into()], vec!["b".into()])
    );
    // The head is always validated; an invalid base only widens the change set.
    r.write(
        ".github/gitops.yml",
        "stack-roots: ['stacks/*']\nbogus: 1\n",
    );
    let bad = r.commit();
    let opts = Opts {
        config_path: crate::envs::CONFIG_PATH,
        working_dir: ".",
        environment: None,
    };
    let e = detect(&r.repo, Some(h), bad, &opts).err().unwrap();
    assert_eq!(e.class, ExitClass::Usage);
    // Where and what kind, never the key itself (a pasted secret can sit in a key, #21 item 4).
    assert!(
        e.to_string().contains("line 2, column 1: an unknown key"),
        "{e}"
    );
    assert!(!e.to_string().contains("bogus"), "{e}");
    r.write(".github/gitops.yml", "stack-roots: ['stacks/*']\n");
    let good = r.commit();
    let d = detect(&r.repo, Some(bad), good, &opts).unwrap();
    assert_eq!(d.changes.changed.len(), 2);
    assert!(d.warning.unwrap().contains("every stack counts as changed"));
}

#[test]
fn git_symlinked_stack_path_is_refused() {
    let r = Repo::new();
    r.write(
        ".github/gitops.yml",
        "stacks:\n  - name: a\n    path: link/x\n",
    )
    .write("real/x/main.tf", "");
    std::os::unix::fs::symlink("real", r.root().join("link")).unwrap();
    let h = r.commit();
    let opts = Opts {
        config_path: crate::envs::CONFIG_PATH,
        working_dir: ".",
        environment: None,
    };
    let e = detect(&r.repo, None, h, &opts).err().unwrap();
    assert_eq!(e.class, ExitClass::Usage);
    assert!(e.to_string().contains("symbolic link `link`"), "{e}");
}

// Core grants a repository's roles its state-prefixes only: the stacks' keys outside them, per
// environment they deploy to (an `environments:` list narrows it; `{env}` is substituted).
#[test]
fn keys_outside_the_prefixes_table() {
    let tree = tf_tree();
    let r = resolve_yaml(
        "stacks:\n  - name: network\n    path: stacks/network\n    state-key: 'app/network/{env}.tfstate'\n  - name: service\n    path: stacks/service\n  - name: db\n    path: stacks/db\n    environments: [prod]\n    state-key: '{env}/db.tfstate'\n",
        &tree,
    )
    .unwrap();
    let p = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let got = keys_outside(&r, ENVS, &p(&["app/", "service/"]));
    assert_eq!(
        got,
        vec![("db".into(), "prod".into(), "prod/db.tfstate".into())]
    );
    assert!(keys_outside(&r, ENVS, &p(&["app/", "service/", "prod/"])).is_empty());
    let got = keys_outside(&r, ENVS, &p(&["app/network/"]));
    let names: Vec<String> = got.iter().map(|(s, e, _)| format!("{s}/{e}")).collect();
    assert_eq!(
        names,
        ["db/prod", "service/dev", "service/staging", "service/prod"]
            .map(String::from)
            .to_vec()
    );
    // The one stack without a stacks section uses Core's TF_STATE_KEY: never outside.
    let single = resolve(&Section::default(), &tree, ENVS, ".", "t.yml").unwrap();
    assert!(keys_outside(&single, ENVS, &p(&["elsewhere/"])).is_empty());
}

// Core grants per stack when its file lists `stacks:`: every (stack, environment) where the
// repository and Core differ is one line naming both keys; prefix grants keep keys_outside.
#[test]
fn core_disagreements_table() {
    let tree = tf_tree();
    let repo = "stacks:\n  - name: network\n    path: stacks/network\n    state-key: 'app/network/{env}.tfstate'\n  - name: service\n    path: stacks/service\n  - name: db\n    path: stacks/db\n    environments: [dev]\n";
    let r = resolve_yaml(repo, &tree).unwrap();
    let single = resolve(&Section::default(), &tree, ENVS, ".", "t.yml").unwrap();
    let p = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let core = |yaml: &str| Section::from_yaml(yaml, "core.yml").unwrap().stacks;
    let same = core(repo);
    let no_db = core("stacks:\n  - { name: network, path: n, state-key: 'app/network/{env}.tfstate' }\n  - { name: service, path: s }\n");
    let db_prod = core("stacks:\n  - { name: network, path: n, state-key: 'app/network/{env}.tfstate' }\n  - { name: service, path: s }\n  - { name: db, path: d, environments: [dev, prod] }\n");
    let other_key = core("stacks:\n  - { name: network, path: n, state-key: 'net/{env}.tfstate' }\n  - { name: service, path: s }\n  - { name: db, path: d, environments: [dev] }\n");
    let extra = core("stacks:\n  - { name: network, path: n, state-key: 'app/network/{env}.tfstate' }\n  - { name: service, path: s }\n  - { name: db, path: d, environments: [dev] }\n  - { name: cache, path: c, environments: [staging] }\n");
    // (what, the repository's stacks, Core's `stacks:`, explicit prefixes, prefixes, lines)
    type Case<'a> = (
        &'a str,
        &'a Resolved,
        Option<Vec<Entry>>,
        bool,
        Vec<&'a str>,
        Vec<&'a str>,
    );
    let cases: Vec<Case> = vec![
        ("the same stacks", &r, same.clone(), false, vec!["app/"], vec![]),
        (
            "a stack missing from Core",
            &r,
            no_db,
            false,
            vec!["app/"],
            vec!["stack `db` in `dev`: the repository's state key `db/dev.tfstate`, Core's file grants none (it does not list the stack there)"],
        ),
        (
            "Core lists it in another environment",
            &r,
            db_prod,
            false,
            vec!["app/"],
            vec!["stack `db` in `prod`: Core grants state key `db/prod.tfstate`, the repository has no such stack there"],
        ),
        (
            "a key differs",
            &r,
            other_key,
            false,
            vec!["app/"],
            vec![
                "stack `network` in `dev`: the repository's state key `app/network/dev.tfstate`, Core grants `net/dev.tfstate`",
                "stack `network` in `staging`: the repository's state key `app/network/staging.tfstate`, Core grants `net/staging.tfstate`",
                "stack `network` in `prod`: the repository's state key `app/network/prod.tfstate`, Core grants `net/prod.tfstate`",
            ],
        ),
        (
            "Core lists a stack the repository does not have",
            &r,
            extra,
            false,
            vec!["app/"],
            vec!["stack `cache` in `staging`: Core grants state key `cache/staging.tfstate`, the repository has no such stack there"],
        ),
        (
            "a key outside explicit prefixes",
            &r,
            same.clone(),
            true,
            vec!["app/", "service/"],
            vec!["stack `db` in `dev`: Core's state key `db/dev.tfstate` is outside Core's state-prefixes [app/, service/] (Core refuses it)"],
        ),
        (
            "prefix grants: keys_outside",
            &r,
            None,
            true,
            vec!["app/", "service/"],
            vec!["stack `db` in `dev`: its state key `db/dev.tfstate` is outside Core's state-prefixes [app/, service/]"],
        ),
        ("prefix grants, the one stack", &single, None, false, vec!["x/"], vec![]),
        (
            "the one stack against Core's stacks",
            &single,
            core("stacks:\n  - { name: default, path: ., state-key: 'app/{env}/terraform.tfstate', environments: [dev] }\n"),
            false,
            vec!["app/"],
            vec![
                "stack `default` in `staging`: the repository's state key `app/staging/terraform.tfstate`, Core's file grants none (it does not list the stack there)",
                "stack `default` in `prod`: the repository's state key `app/prod/terraform.tfstate`, Core's file grants none (it does not list the stack there)",
            ],
        ),
    ];
    for (what, resolved, entries, explicit, prefixes, want) in cases {
        let prefixes = p(&prefixes);
        let grants = CoreGrants::from_core(entries.as_deref(), ENVS, &prefixes);
        let got = core_disagreements(resolved, ENVS, &grants, explicit, &prefixes, "app/");
        assert_eq!(got, want, "{what}");
    }
    // Core's environments that the repository does not have: its keys there are Core's only.
    let grants = CoreGrants::from_core(same.as_deref(), &["dev", "qa"], &p(&["app/"]));
    let got = core_disagreements(&r, &["dev"], &grants, false, &p(&["app/"]), "app/");
    assert_eq!(
        got,
        vec![
            "stack `network` in `qa`: Core grants state key `app/network/qa.tfstate`, the repository has no such stack there",
            "stack `service` in `qa`: Core grants state key `service/qa.tfstate`, the repository has no such stack there",
        ]
    );
}

// ------------------------------------------- fast paths against the full ones (generated repos)

/// A small deterministic generator (xorshift64*), so a failing case can be replayed by seed.
struct Gen(u64);

impl Gen {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % n
    }
    fn pick<'a>(&mut self, of: &[&'a str]) -> &'a str {
        of[self.below(of.len())]
    }
}

/// The reference: libgit2's tree-to-tree diff, both sides of every delta.
fn libgit2_paths(repo: &git2::Repository, a: git2::Oid, b: git2::Oid) -> Vec<String> {
    let tree = |c: git2::Oid| repo.find_commit(c).unwrap().tree().unwrap();
    let diff = repo
        .diff_tree_to_tree(Some(&tree(a)), Some(&tree(b)), None)
        .unwrap();
    let mut out: Vec<String> = diff
        .deltas()
        .flat_map(|d| [d.old_file(), d.new_file()])
        .filter_map(|f| f.path().and_then(|p| p.to_str()).map(str::to_string))
        .collect();
    out.sort();
    out.dedup();
    out
}

const DIRS: &[&str] = &[
    "stacks/a",
    "stacks/b",
    "stacks/b/nested",
    "stacks/c",
    "modules/m1",
    "modules/m2",
    "config/a",
    "config/b",
    "other",
    "",
];
const NAMES: &[&str] = &["main.tf", "x.tf", "f.json", "a", "a.txt", "a-b", "z"];

/// One random change to the working tree of `r`: write, delete, replace a file by a directory
/// or the reverse, symlink, flip the executable bit, rename, or write a `.tf` calling a module.
fn mutate(r: &Repo, g: &mut Gen) {
    use std::os::unix::fs::PermissionsExt;
    let dir = g.pick(DIRS);
    let name = g.pick(NAMES);
    let path = if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    };
    let full = r.root().join(&path);
    let clear = |p: &Path| {
        if p.is_symlink() || p.is_file() {
            std::fs::remove_file(p).unwrap();
        } else if p.is_dir() {
            std::fs::remove_dir_all(p).unwrap();
        }
    };
    // Nothing may sit where a parent directory has to be.
    let mut parent = full.parent();
    while let Some(p) = parent {
        if p == r.root() {
            break;
        }
        if p.is_symlink() || p.is_file() {
            clear(p);
        }
        parent = p.parent();
    }
    match g.below(9) {
        0..=2 => {
            clear(&full);
            r.write(&path, &format!("v{}\n", g.below(4)));
        }
        3 if g.below(2) == 0 || dir.is_empty() => clear(&full),
        3 => clear(&r.root().join(dir)), // a whole directory (a stack's, perhaps) goes
        4 => {
            clear(&full);
            r.write(&format!("{path}/inner.tf"), "");
        }
        5 => {
            // A symlink as the entry, or in place of its whole directory.
            let at = if g.below(2) == 0 || dir.is_empty() {
                full.clone()
            } else {
                r.root().join(dir)
            };
            clear(&at);
            std::fs::create_dir_all(at.parent().unwrap()).unwrap();
            std::os::unix::fs::symlink(g.pick(&["../stacks", "main.tf", "nowhere"]), &at).unwrap();
        }
        6 => {
            // The executable bit flips, the contents stay.
            if !full.is_file() || full.is_symlink() {
                clear(&full);
                r.write(&path, "same\n");
            }
            let mode = full.metadata().unwrap().permissions().mode() ^ 0o111;
            // Written again (the same bytes): the index's stat cache would not see a chmod.
            let bytes = std::fs::read(&full).unwrap();
            std::fs::remove_file(&full).unwrap();
            std::fs::write(&full, bytes).unwrap();
            std::fs::set_permissions(&full, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        7 => {
            let to = r.root().join(g.pick(DIRS)).join("moved");
            if full.exists() && !full.is_symlink() && !to.starts_with(&full) {
                clear(&to);
                r.mv(&path, to.strip_prefix(r.root()).unwrap().to_str().unwrap());
            }
        }
        _ => {
            clear(&full);
            let target = g.pick(&["../../modules/m1", "../../modules/m2", "../m1", "./nested"]);
            r.write(
                &format!("{dir}/calls.tf"),
                &format!("module \"m\" {{\n  source = \"{target}\"\n}}\n"),
            );
        }
    }
}

#[test]
fn diff_paths_match_libgit2_on_generated_repos() {
    for seed in 1..=12u64 {
        let mut g = Gen(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let r = Repo::new();
        r.write("keep.txt", "k");
        let mut commits = vec![r.commit()];
        for _ in 0..6 {
            for _ in 0..1 + g.below(6) {
                mutate(&r, &mut g);
            }
            r.write("keep.txt", &format!("{}", commits.len()));
            commits.push(r.commit());
        }
        let tree = |c: git2::Oid| r.repo.find_commit(c).unwrap().tree().unwrap();
        for &a in &commits {
            for &b in &commits {
                assert_eq!(
                    diff_paths(&r.repo, &tree(a), &tree(b)).unwrap(),
                    libgit2_paths(&r.repo, a, b),
                    "seed {seed}: {a}..{b}"
                );
            }
        }
    }
}

#[test]
fn diff_paths_see_a_change_of_mode_alone() {
    // Built with a tree builder: the index helper does not record a chmod alone.
    let r = Repo::new();
    let blob = r.repo.blob(b"same\n").unwrap();
    let tree = |mode: i32| {
        let mut sub = r.repo.treebuilder(None).unwrap();
        sub.insert("run.sh", blob, mode).unwrap();
        sub.insert("keep", blob, 0o100644).unwrap();
        let sub = sub.write().unwrap();
        let mut top = r.repo.treebuilder(None).unwrap();
        top.insert("bin", sub, 0o040000).unwrap();
        r.repo.find_tree(top.write().unwrap()).unwrap()
    };
    let (a, b) = (tree(0o100644), tree(0o100755));
    assert_eq!(diff_paths(&r.repo, &a, &b).unwrap(), ["bin/run.sh"]);
    assert!(diff_paths(&r.repo, &a, &a).unwrap().is_empty());
}

/// The configuration of the generated repositories: module calls, watch globs, depends-on,
/// a nested stack and a stack limited to one environment.
const GEN_CONFIG: &str = "environments:\n  - name: dev\n    branch: dev\n  - name: prod\n    branch: prod\nstacks:\n  - name: a\n    path: stacks/a\n    watch: ['config/a/**']\n  - name: b\n    path: stacks/b\n    depends-on: [a]\n    watch: ['config/*/f.json']\n  - name: nested\n    path: stacks/b/nested\n  - name: c\n    path: stacks/c\n    environments: [prod]\n  - name: top\n    path: other\n    depends-on: [c]\n    environments: [prod]\n";

/// Everything a detection decides, as comparable text (a failure is its message).
fn outcome(d: Result<Detection>) -> String {
    match d {
        Ok(d) => format!(
            "changed {:?} deleted {:?} warning {:?} head {:?}",
            d.changes
                .changed
                .iter()
                .map(|(i, r)| (d.head.stacks[*i].name.clone(), r.clone()))
                .collect::<Vec<_>>(),
            d.changes.deleted,
            d.warning,
            d.head.missing
        ),
        Err(f) => format!("error {:?} {f}", f.class),
    }
}

#[test]
fn fast_base_matches_full_resolution_on_generated_repos() {
    let mut fast_paths = 0;
    for seed in 1..=12u64 {
        let mut g = Gen(seed.wrapping_mul(0x2545_f491_4f6c_dd1d) | 1);
        let r = Repo::new();
        r.write(".github/gitops.yml", GEN_CONFIG);
        for d in [
            "stacks/a",
            "stacks/b",
            "stacks/b/nested",
            "stacks/c",
            "other",
        ] {
            r.write(&format!("{d}/main.tf"), "");
        }
        r.write("modules/m1/main.tf", "")
            .write("modules/m2/main.tf", "");
        let mut commits = vec![r.commit()];
        for _ in 0..6 {
            for _ in 0..1 + g.below(5) {
                mutate(&r, &mut g);
            }
            // Now and then a configuration change (the fast path must step aside).
            if g.below(5) == 0 {
                r.write(".github/gitops.yml", &GEN_CONFIG.replace("[prod]", "[dev]"));
            } else {
                r.write(".github/gitops.yml", GEN_CONFIG);
            }
            commits.push(r.commit());
        }
        for &a in &commits {
            for &b in &commits {
                for env in [None, Some("dev"), Some("prod")] {
                    let opts = Opts {
                        config_path: crate::envs::CONFIG_PATH,
                        working_dir: ".",
                        environment: env,
                    };
                    let full = outcome(detect_with(&r.repo, Some(a), b, &opts, Resolve::Full));
                    let fast = outcome(detect_with(&r.repo, Some(a), b, &opts, Resolve::Fast));
                    assert_eq!(fast, full, "seed {seed}: {a}..{b} env {env:?}");
                    if full.starts_with("changed") {
                        fast_paths += 1;
                    }
                }
            }
        }
    }
    // The generator must reach detections that succeed, not only refusals.
    assert!(fast_paths > 100, "{fast_paths}");
}

#[test]
fn one_yaml_parse_gives_what_two_gave() {
    let cases = [
        "",
        "  \n",
        GEN_CONFIG,
        "stacks:\n  - name: a\n    path: a\n",
        "environments:\n  - name: dev\n    branch: dev\n",
        "environments:\n  - name: Dev\n    branch: dev\nstacks:\n  - name: a\n    path: a\n",
        "environments:\n  - name: dev\n    branch: dev\n    bogus: 1\nstacks:\n  - name: a\n    pth: a\n",
        "stacks:\n  - name: a\n    pth: a\nenvironments:\n  - name: dev\n    branch: dev\n    bogus: 1\n",
        "stacks:\n  - name: a\n    pth: a\nenvironments:\n  - name: dev\n    branch: dev\n",
        "stacks: 3\nenvironments: []\n",
        "stack-roots: ['s/*']\nextra: 1\n",
        "environments: [\n",
        "environments:\n  - name: dev\n    branch: dev\n  - name: dev\n    branch: main\nstacks: []\n",
    ];
    let show = |r: Result<(crate::envs::Model, Section)>| match r {
        // The environments are the model's now (the one-parse section hands them over).
        Ok((m, s)) => format!("ok {m:?} {:?} {:?}", s.stacks, s.stack_roots),
        Err(f) => format!("error {:?} {f}", f.class),
    };
    for text in cases {
        let two = (|| {
            let model = if text.trim().is_empty() {
                crate::envs::Model::default()
            } else {
                crate::envs::Model::from_yaml(text, "g.yml")?
            };
            Ok((model, Section::from_yaml(text, "g.yml")?))
        })();
        assert_eq!(
            show(Section::with_model(text, "g.yml")),
            show(two),
            "{text:?}"
        );
    }
}

#[test]
fn files_read_once_by_id_still_resolve_in_their_own_directory() {
    let r = Repo::new();
    let call = "module \"m\" {\n  source = \"./sub\"\n}\n";
    r.write("stacks/a/main.tf", call)
        .write("stacks/a/sub/main.tf", "")
        .write("stacks/b/main.tf", call)
        .write("stacks/c/main.tf", call)
        .write("stacks/c/sub/main.tf", "");
    let c = r.commit();
    let view = GitTree::new(&r.repo, r.repo.find_commit(c).unwrap().tree().unwrap());
    assert_eq!(
        view.id("stacks/a/main.tf"),
        view.id("stacks/b/main.tf"),
        "the same blob"
    );
    let mut m = Modules::new(&view);
    assert_eq!(m.calls("stacks/a").unwrap(), ["stacks/a/sub"]);
    assert_eq!(m.calls("stacks/c").unwrap(), ["stacks/c/sub"]);
    // The same bytes, read from the cache, are still checked against their own directory.
    let e = m.calls("stacks/b").unwrap_err();
    assert_eq!(e.class, ExitClass::Usage);
    assert!(
        e.to_string()
            .contains("stacks/b/main.tf: module source `./sub` is not a directory"),
        "{e}"
    );
}

#[test]
fn prefetched_parses_give_what_reading_one_by_one_gives() {
    let r = Repo::new();
    let mut dirs = Vec::new();
    for i in 0..(2 * PARALLEL_FROM + 5) {
        let d = format!("stacks/s{i:03}");
        let main = match i % 5 {
            0 => "module \"m\" {\n  source = \"./sub\"\n}\n".to_string(),
            1 => format!("module \"m\" {{\n  source = \"../s{:03}\"\n}}\n", i / 2),
            2 => "module \"broken\" {\n  source = \n".to_string(),
            3 => "resource \"a\" \"b\" {}\n".to_string(),
            _ => format!("module \"m{i}\" {{\n  source = \"./gone\"\n}}\n"),
        };
        r.write(&format!("{d}/main.tf"), &main)
            .write(&format!("{d}/variables.tf"), "variable \"x\" {}\n");
        if i % 3 == 0 {
            r.write(&format!("{d}/sub/main.tf"), "");
        }
        dirs.push(d);
    }
    let c = r.commit();
    let view = GitTree::new(&r.repo, r.repo.find_commit(c).unwrap().tree().unwrap());
    let show = |m: &mut Modules<'_>, d: &str| match m.calls(d) {
        Ok(v) => format!("ok {v:?}"),
        Err(f) => format!("error {f}"),
    };
    let mut plain = Modules::new(&view);
    let mut ahead = Modules::new(&view);
    let all: Vec<&str> = dirs.iter().map(String::as_str).collect();
    ahead.prefetch(&all);
    for d in &dirs {
        assert_eq!(show(&mut ahead, d), show(&mut plain, d), "{d}");
    }
    // The same over a view without object ids (every result kept by file).
    let mem = Mem::new(&[
        ("a/main.tf", "module \"m\" {\n  source = \"../b\"\n}\n"),
        ("b/main.tf", "module \"m\" {\n  source = \n"),
    ]);
    let mut ahead = Modules::new(&mem);
    ahead.prefetch(&["a", "b"]);
    assert_eq!(show(&mut ahead, "a"), "ok [\"b\"]");
    assert_eq!(
        show(&mut ahead, "b"),
        show(&mut Modules::new(&mem), "b"),
        "the error names its file"
    );
}

#[test]
fn pull_request_changes_joined_with_what_the_next_deploy_applies() {
    let r = |i: usize, why: Reason| (i, why);
    let file = |p: &str| Reason::File(p.to_string());
    let undeployed =
        |sha: Option<&str>, why: Reason| Reason::Undeployed(sha.map(str::to_string), Box::new(why));
    let ch = |changed: Vec<(usize, Reason)>, deleted: &[&str]| Changes {
        changed,
        deleted: deleted.iter().map(|s| s.to_string()).collect(),
    };
    // (pr, since, deployed) -> expected
    let cases = vec![
        // Nothing carried over: the pull request's own changes, unchanged.
        (
            ch(vec![r(1, file("b/x.tf"))], &[]),
            ch(vec![r(1, file("b/y.tf"))], &[]),
            Some("abc1234"),
            ch(vec![r(1, file("b/x.tf"))], &[]),
        ),
        // A stack whose apply failed (changed since the deploy only) joins, in dependency order.
        (
            ch(vec![r(2, file("c/x.tf"))], &[]),
            ch(vec![r(0, file("a/main.tf")), r(2, file("c/x.tf"))], &[]),
            Some("abc1234"),
            ch(
                vec![
                    r(0, undeployed(Some("abc1234"), file("a/main.tf"))),
                    r(2, file("c/x.tf")),
                ],
                &[],
            ),
        ),
        // Never deployed: every stack of the environment joins.
        (
            ch(vec![], &["gone"]),
            ch(
                vec![r(0, Reason::FirstDeploy), r(1, Reason::FirstDeploy)],
                &["old"],
            ),
            None,
            ch(
                vec![
                    r(0, undeployed(None, Reason::FirstDeploy)),
                    r(1, undeployed(None, Reason::FirstDeploy)),
                ],
                &["gone", "old"],
            ),
        ),
        // A change the pull request reverts still counts (it is in `pr` only).
        (
            ch(vec![r(3, Reason::Config)], &["x"]),
            ch(vec![], &["x"]),
            Some("abc1234"),
            ch(vec![r(3, Reason::Config)], &["x"]),
        ),
    ];
    for (n, (pr, since, deployed, want)) in cases.into_iter().enumerate() {
        assert_eq!(with_undeployed(pr, since, deployed), want, "case {n}");
    }
    assert_eq!(
        undeployed(Some("abc1234"), file("a/main.tf")).to_string(),
        "not deployed yet: changed since the current deploy abc1234 (a/main.tf changed)"
    );
    assert_eq!(
        undeployed(None, Reason::FirstDeploy).to_string(),
        "not deployed yet: the environment has no deploy"
    );
}
