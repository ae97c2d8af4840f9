//! `stacks`: configuration refusals (exit 2 before any network call, nothing planned), change
//! detection against `deploy/<env>/current` on a smart-HTTP remote from a shallow checkout, the
//! one-JSON-document stdout, and the matrix fanned out by a real workflow under act.

use std::path::Path;

use base64::Engine as _;
use serde_json::Value;

use crate::support::git_http::{self, git_ok, GitHttp};
use crate::support::{act, Sandbox};

const TOKEN: &str = "ghs_StacksToken0123456789abcdef";

const CONFIG: &str = "environments:\n  - name: dev\n    branch: dev\n  - name: prod\n    branch: prod\nstacks:\n  - name: network\n    path: stacks/network\n  - name: service\n    path: stacks/service\n    depends-on: [network]\n    watch: ['config/service/**']\n  - name: edge\n    path: stacks/edge\n    environments: [prod]\n    state-key: 'edge/{env}/terraform.tfstate'\n";

fn write(root: &Path, files: &[(&str, &str)]) {
    for (p, text) in files {
        let p = root.join(p);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
}

fn commit(dir: &Path, msg: &str) -> String {
    git_ok(dir, &["add", "-A"]);
    git_ok(dir, &["commit", "-qm", msg, "--allow-empty"]);
    git_ok(dir, &["rev-parse", "HEAD"])
}

fn seed(dir: &Path) -> String {
    git_ok(dir, &["init", "-q", "-b", "main"]);
    write(
        dir,
        &[
            (".github/gitops.yml", CONFIG),
            (
                "stacks/network/main.tf",
                "module \"vpc\" {\n  source = \"../../modules/vpc\"\n}\n",
            ),
            (
                "stacks/service/main.tf",
                "module \"app\" {\n  source = \"../../modules/app\"\n}\n",
            ),
            ("stacks/edge/main.tf", "resource \"a\" \"b\" {}\n"),
            (
                "modules/app/main.tf",
                "module \"lb\" {\n  source = \"../lb\"\n}\n",
            ),
            ("modules/lb/main.tf", "resource \"lb\" \"x\" {}\n"),
            ("modules/vpc/main.tf", "\n"),
            ("config/service/app.json", "{}\n"),
        ],
    );
    commit(dir, "seed")
}

/// `deploy/prod/current` (annotated, as tag-deploy writes it) at `sha`.
fn tag_prod_current(w: &Path, sha: &str) {
    git_ok(
        w,
        &["tag", "-a", "-m", "deploy", "deploy/prod/current", sha],
    );
}

/// Push `main` and the tags of `w` to the remote `app` of `srv`, then make a shallow
/// clone (depth 1, no tags, credentials in `http.extraheader` as actions/checkout leaves them) in
/// `sb`: its path.
fn publish_and_clone(srv: &GitHttp, w: &Path, sb: &Sandbox) -> String {
    let header = format!(
        "AUTHORIZATION: basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{TOKEN}"))
    );
    let url = srv.url("app");
    let push = git_http::git(w)
        .args([
            "-c",
            &format!("http.extraheader={header}"),
            "push",
            "-q",
            &url,
        ])
        .args(["main", "--tags"])
        .output()
        .unwrap();
    assert!(
        push.status.success(),
        "{}",
        String::from_utf8_lossy(&push.stderr)
    );
    let checkout = sb.path().join("checkout");
    let clone = git_http::git(sb.path())
        .args(["clone", "-q", "--depth", "1", "--no-tags", "-c"])
        .arg(format!("http.extraheader={header}"))
        .arg(&url)
        .arg(&checkout)
        .output()
        .unwrap();
    assert!(
        clone.status.success(),
        "{}",
        String::from_utf8_lossy(&clone.stderr)
    );
    checkout.display().to_string()
}

/// Extra files of a vector: (path, contents).
type Files<'a> = &'a [(&'a str, &'a str)];

/// The run printed this line (a stack and its reason) on stdout.
fn says(run: &crate::support::Run, text: &str) {
    assert!(run.stdout.contains(text), "{text}\n{}", run.all());
}

fn json_out(sb: &Sandbox, name: &str) -> Value {
    serde_json::from_str(&sb.outputs()[name]).unwrap()
}

// Every bad configuration is exit 2 naming the entry, before the remote is contacted (the
// remote here is a closed port: reaching it would be exit 3), and no output is set.
#[test]
fn stacks_bad_configuration_is_exit_2_and_nothing_is_planned() {
    let closed = format!(
        "http://127.0.0.1:{}/nobody.git",
        crate::support::free_port()
    );
    let vectors: &[(&str, Files, &str)] = &[
        ("stacks:\n  - name: a\n    path: s/a\n    wach: []\n", &[], "line 4, column 5: an unknown key"),
        ("stacks:\n  - name: a\n    path: s/a\n  - name: a\n    path: s/b\n", &[], "stack `a` is listed twice"),
        ("stacks:\n  - name: a\n    path: s/a\n  - name: b\n    path: s/a\n", &[], "path `s/a` is used by both `a` and `b`"),
        ("stacks:\n  - name: a\n    path: ../up\n", &[], "leaves the repository"),
        ("stacks:\n  - name: a\n    path: s/a\n    depends-on: [zz]\n", &[], "depends on `zz`, which is not a stack"),
        ("stacks:\n  - name: a\n    path: s/a\n    depends-on: [b]\n  - name: b\n    path: s/b\n    depends-on: [a]\n", &[], "dependency cycle: a -> b -> a"),
        ("stacks:\n  - name: a\n    path: s/a\n    environments: [qa]\n", &[], "environment `qa`, which does not exist"),
        ("stacks:\n  - name: a\n    path: s/a\n", &[("s/a/main.tf", "module \"m\" {\n  source = \"../../../x\"\n}\n")], "s/a/main.tf: module source `../../../x` leaves the repository"),
        ("stacks:\n  - name: a\n    path: s/a\n", &[("s/a/bad.tf", "module \"m\" {\n  source = \n}\n")], "s/a/bad.tf:2:"),
    ];
    for (config, extra, needle) in vectors {
        let sb = Sandbox::actions();
        let repo = sb.path().join("repo");
        std::fs::create_dir_all(&repo).unwrap();
        git_ok(&repo, &["init", "-q", "-b", "main"]);
        write(&repo, &[("s/a/main.tf", "\n"), ("s/b/main.tf", "\n")]);
        commit(&repo, "base");
        write(&repo, &[(".github/gitops.yml", config)]);
        write(&repo, extra);
        commit(&repo, "head");
        let r = repo.display().to_string();
        let mut runs = vec![vec!["changed", "--base", "HEAD~1", "--repo-path", &r]];
        // The configuration is checked before the remote is read; `.tf` files are read once
        // the base is known (still before anything is planned).
        if extra.is_empty() {
            runs.push(vec![
                "changed",
                "--environment",
                "dev",
                "--remote",
                &closed,
                "--repo-path",
                &r,
            ]);
        }
        for args in runs {
            let run = sb.run("stacks", &args);
            run.expect_code(2);
            assert!(run.all().contains(needle), "{config}: {}", run.all());
            assert!(
                sb.outputs().is_empty(),
                "{config}: outputs set: {:?}",
                sb.outputs()
            );
        }
    }
}

// The realistic run: a shallow checkout (actions/checkout's default depth 1, credentials in
// `http.extraheader`), the base read from `deploy/<env>/current` on an authenticated
// smart-HTTP remote and fetched; a stack whose apply failed after that deploy is carried over.
#[test]
fn stacks_changed_against_the_deploy_tag_from_a_shallow_checkout() {
    let srv = GitHttp::start(TOKEN);
    let bare = srv.create_repo("app");
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    seed(w);
    write(w, &[("stacks/edge/main.tf", "resource \"a\" \"c\" {}\n")]);
    let deployed = commit(w, "edge change, deployed to prod");
    tag_prod_current(w, &deployed);
    write(w, &[("stacks/network/extra.tf", "# failed apply\n")]);
    commit(w, "network change whose apply failed");
    write(w, &[("modules/lb/main.tf", "resource \"lb\" \"y\" {}\n")]);
    let head = commit(w, "lb change");
    let _ = bare;
    let url = srv.url("app");
    let sb = Sandbox::actions();
    let c = publish_and_clone(&srv, w, &sb);

    let run = sb.run(
        "stacks",
        &["changed", "--environment", "prod", "--repo-path", &c],
    );
    run.expect_code(0);
    let o = sb.outputs();
    assert_eq!(o["base"], deployed, "{}", run.all());
    assert_eq!(o["head"], head);
    assert_eq!(
        json_out(&sb, "matrix"),
        serde_json::json!({"include": [
            {"stack": "network", "path": "stacks/network", "layer": 0, "state-key": "network/prod.tfstate"},
            {"stack": "service", "path": "stacks/service", "layer": 1, "state-key": "service/prod.tfstate"},
        ]}),
        "{}",
        run.all()
    );
    assert_eq!(o["count"], "2");
    assert_eq!(o["layers"], "2");
    assert_eq!(o["chunk-count"], "2");
    assert_eq!(
        json_out(&sb, "stacks"),
        serde_json::json!(["network", "service"])
    );
    assert_eq!(json_out(&sb, "deleted"), serde_json::json!([]));
    says(
        &run,
        "network (stacks/network): stacks/network/extra.tf changed",
    );
    says(
        &run,
        "service (stacks/service): local module modules/lb changed",
    );
    sb.assert_no_leak(&run, &[TOKEN], &[]);

    // dev was never deployed: every stack of dev (edge only deploys to prod).
    let sb2 = Sandbox::actions();
    let run = sb2.run(
        "stacks",
        &["changed", "--environment", "dev", "--repo-path", &c],
    );
    run.expect_code(0);
    assert_eq!(sb2.outputs()["base"], "");
    assert_eq!(
        json_out(&sb2, "stacks"),
        serde_json::json!(["network", "service"])
    );
    assert!(run.stdout.contains("no deploy yet"), "{}", run.all());

    // A wrong token is a runtime failure, with nothing set and the token never printed.
    let sb3 = Sandbox::actions();
    let run = sb3.run(
        "stacks",
        &[
            "changed",
            "--environment",
            "prod",
            "--repo-path",
            &c,
            "--github-token",
            "ghs_wrongwrongwrong",
        ],
    );
    run.expect_code(3);
    assert!(sb3.outputs().is_empty());
    sb3.assert_no_leak(&run, &["ghs_wrongwrongwrong"], &[]);

    // A pull request on top of the failed commit (merge base = it) changes only modules/lb:
    // alone it plans `service`; with `include-undeployed` also `network`, whose apply failed
    // after prod's current deploy, so the merge's deploy applies nothing unplanned.
    let pr_base = git_ok(w, &["rev-parse", "HEAD~1"]);
    let w_s = w.display().to_string();
    let pr = |extra: &[&str]| {
        let sb = Sandbox::actions();
        let mut args = vec![
            "changed",
            "--base",
            &pr_base,
            "--environment",
            "prod",
            "--repo-path",
            &w_s,
            "--remote",
            &url,
            "--github-token",
            TOKEN,
        ];
        args.extend_from_slice(extra);
        let run = sb.run("stacks", &args);
        (sb, run)
    };
    let (sb4, run) = pr(&[]);
    run.expect_code(0);
    assert_eq!(
        json_out(&sb4, "stacks"),
        serde_json::json!(["service"]),
        "{}",
        run.all()
    );
    let (sb5, run) = pr(&["--include-undeployed"]);
    run.expect_code(0);
    assert_eq!(
        json_out(&sb5, "stacks"),
        serde_json::json!(["network", "service"]),
        "{}",
        run.all()
    );
    assert_eq!(sb5.outputs()["base"], pr_base);
    says(
        &run,
        &format!(
            "network (stacks/network): not deployed yet: changed since the current deploy {} (stacks/network/extra.tf changed)",
            &deployed[..12]
        ),
    );
    says(
        &run,
        "service (stacks/service): local module modules/lb changed",
    );
    sb5.assert_no_leak(&run, &[TOKEN], &[]);

    // It needs both `base` and `environment`, and only `changed` takes it: exit 2 before the
    // remote is read (a closed port), nothing set.
    let closed = format!(
        "http://127.0.0.1:{}/nobody.git",
        crate::support::free_port()
    );
    for args in [
        vec!["changed", "--environment", "prod", "--include-undeployed"],
        vec!["changed", "--base", &pr_base, "--include-undeployed"],
        vec!["list", "--environment", "prod", "--include-undeployed"],
    ] {
        let sb = Sandbox::actions();
        let mut args = args.clone();
        args.extend_from_slice(&["--repo-path", &w_s, "--remote", &closed]);
        let run = sb.run("stacks", &args);
        run.expect_code(2);
        assert!(
            run.all()
                .contains("invalid input `include-undeployed`: applies to `changed` with both `base` and `environment`"),
            "{args:?}: {}",
            run.all()
        );
        assert!(sb.outputs().is_empty(), "{args:?}");
    }
}

// `list --deployed` (drift.yml's matrix): the stacks of the commit behind
// `deploy/<env>/current` on an authenticated remote, read from that commit (fetched into a
// shallow checkout of a later branch tip), never from the checkout's HEAD; an environment never
// deployed lists nothing with `head` empty; and every misuse is exit 2 before the remote is read.
#[test]
fn stacks_list_deployed_reads_the_stacks_of_the_deployed_commit() {
    let srv = GitHttp::start(TOKEN);
    let _bare = srv.create_repo("app");
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let deployed = seed(w);
    tag_prod_current(w, &deployed);
    // After the deploy: a new stack and a new key for edge, on the branch tip only.
    let later = CONFIG.replace("edge/{env}/terraform.tfstate", "edge2/{env}.tfstate")
        + "  - name: extra\n    path: stacks/extra\n";
    write(
        w,
        &[
            (".github/gitops.yml", &later),
            ("stacks/extra/main.tf", "resource \"a\" \"x\" {}\n"),
        ],
    );
    let tip = commit(w, "a new stack, not deployed yet");
    git_ok(
        w,
        &["tag", "-a", "-m", "deploy", "deploy/qa/current", &deployed],
    );
    let sb = Sandbox::actions();
    let c = publish_and_clone(&srv, w, &sb);
    let list_deployed = |sb: &Sandbox, env: &str, extra: &[&str]| {
        let mut args = vec![
            "list",
            "--environment",
            env,
            "--deployed",
            "--repo-path",
            &c,
        ];
        args.extend_from_slice(extra);
        sb.run("stacks", &args)
    };
    let run = list_deployed(&sb, "prod", &[]);
    run.expect_code(0);
    let o = sb.outputs();
    assert_eq!(o["head"], deployed, "{}", run.all());
    assert_ne!(o["head"], tip);
    assert_eq!(o["mode"], "stacks");
    assert_eq!(
        json_out(&sb, "matrix"),
        serde_json::json!({"include": [
            {"stack": "edge", "path": "stacks/edge", "layer": 0, "state-key": "edge/prod/terraform.tfstate"},
            {"stack": "network", "path": "stacks/network", "layer": 0, "state-key": "network/prod.tfstate"},
            {"stack": "service", "path": "stacks/service", "layer": 1, "state-key": "service/prod.tfstate"},
        ]}),
        "the deployed commit's stacks and keys, not the tip's: {}",
        run.all()
    );
    sb.assert_no_leak(&run, &[TOKEN], &[]);

    // The same through GITOPS_DEPLOYED (the action's input), as one JSON document.
    let sb2 = Sandbox::plain();
    let mut cmd = sb2.cmd("stacks");
    cmd.args([
        "list",
        "--environment",
        "prod",
        "--format",
        "json",
        "--repo-path",
        &c,
    ])
    .env("GITOPS_DEPLOYED", "true");
    let run = sb2.run_cmd(cmd);
    run.expect_code(0);
    let doc: Value =
        serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.all()));
    assert_eq!(doc["head"], deployed.as_str(), "{}", run.all());
    assert_eq!(doc["count"], "3");

    // dev was never deployed: nothing listed, head and mode empty, exit 0.
    let sb3 = Sandbox::actions();
    let run = list_deployed(&sb3, "dev", &[]);
    run.expect_code(0);
    let o = sb3.outputs();
    assert_eq!(o["head"], "", "{}", run.all());
    assert_eq!(o["count"], "0");
    assert_eq!(o["mode"], "");
    assert_eq!(json_out(&sb3, "matrix"), serde_json::json!({"include": []}));
    assert!(
        run.all().contains("`dev` has no deploy yet"),
        "{}",
        run.all()
    );

    // A deploy tag of an environment the deployed commit does not configure: exit 2, nothing set.
    let sb5 = Sandbox::actions();
    let run = list_deployed(&sb5, "qa", &[]);
    run.expect_code(2);
    assert!(run.all().contains("qa"), "{}", run.all());
    assert!(sb5.outputs().is_empty(), "{:?}", sb5.outputs());

    // Refused before the remote is read (a closed port would be exit 3), nothing set.
    let closed = format!(
        "http://127.0.0.1:{}/nobody.git",
        crate::support::free_port()
    );
    for (args, needle) in [
        (vec!["list", "--deployed"], "needs `environment`"),
        (
            vec!["list", "--environment", "Prod 1", "--deployed"],
            "not a valid environment name",
        ),
        (
            vec![
                "list",
                "--environment",
                "prod",
                "--deployed",
                "--head",
                "HEAD",
            ],
            "give one of them",
        ),
        (
            vec!["changed", "--environment", "prod", "--deployed"],
            "applies to `list` only",
        ),
        (
            vec!["check-core", "--deployed", "--core-config", "x.yml"],
            "applies to `list` only",
        ),
    ] {
        let sb = Sandbox::actions();
        let mut args = args.clone();
        args.extend(["--remote", &closed, "--repo-path", &c]);
        let run = sb.run("stacks", &args);
        run.expect_code(2);
        assert!(run.all().contains(needle), "{args:?}: {}", run.all());
        assert!(sb.outputs().is_empty(), "{args:?}: {:?}", sb.outputs());
    }

    // A wrong token: exit 3, nothing set, the token never printed.
    let sb4 = Sandbox::actions();
    let run = list_deployed(&sb4, "prod", &["--github-token", "ghs_wrongwrongwrong"]);
    run.expect_code(3);
    assert!(sb4.outputs().is_empty());
    sb4.assert_no_leak(&run, &["ghs_wrongwrongwrong"], &[]);
}

// Outside Actions, `--format json` prints exactly one JSON document on stdout; log lines and
// the deletion warning go to stderr.
#[test]
fn stacks_json_format_is_one_document_and_deletions_are_reported() {
    let sb = Sandbox::plain();
    let repo = sb.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    let base = seed(&repo);
    std::fs::remove_dir_all(repo.join("stacks/edge")).unwrap();
    commit(&repo, "edge removed from disk");
    let r = repo.display().to_string();
    let run = sb.run(
        "stacks",
        &[
            "changed",
            "--base",
            &base,
            "--repo-path",
            &r,
            "--format",
            "json",
        ],
    );
    run.expect_code(0);
    let doc: Value =
        serde_json::from_str(run.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {}", run.stdout));
    assert_eq!(doc["count"], "0");
    assert_eq!(doc["deleted"], r#"["edge"]"#);
    assert_eq!(doc["matrix"], r#"{"include":[]}"#);
    assert!(
        run.stderr.contains("stack `edge` was removed"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("terraform destroy"), "{}", run.stderr);

    // list: every stack of an environment with its layer and state key.
    let run = sb.run(
        "stacks",
        &[
            "list",
            "--environment",
            "prod",
            "--head",
            &base,
            "--repo-path",
            &r,
            "--format",
            "json",
        ],
    );
    run.expect_code(0);
    let doc: Value = serde_json::from_str(run.stdout.trim()).unwrap();
    let m: Value = serde_json::from_str(doc["matrix"].as_str().unwrap()).unwrap();
    let got: Vec<(String, u64, String)> = m["include"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["stack"].as_str().unwrap().to_string(),
                e["layer"].as_u64().unwrap(),
                e["state-key"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("edge".into(), 0, "edge/prod/terraform.tfstate".into()),
            ("network".into(), 0, "network/prod.tfstate".into()),
            ("service".into(), 1, "service/prod.tfstate".into()),
        ]
    );

    // Usage errors before anything is read.
    for (args, needle) in [
        (
            vec!["changed", "--repo-path", &r],
            "needs `base`, or `environment`",
        ),
        (
            vec!["changed", "--base=--upload-pack=x", "--repo-path", &r],
            "is not a revision",
        ),
        (
            vec![
                "changed",
                "--base",
                "0123456789012345678901234567890123456789",
                "--repo-path",
                &r,
            ],
            "is not a commit of the local checkout",
        ),
        (
            vec!["list", "--base", "HEAD", "--repo-path", &r],
            "does not apply to `list`",
        ),
        (
            vec![
                "changed",
                "--base",
                "HEAD",
                "--environment",
                "Prod",
                "--repo-path",
                &r,
            ],
            "did you mean `prod`",
        ),
    ] {
        let run = sb.run("stacks", &args);
        run.expect_code(2);
        assert!(run.all().contains(needle), "{args:?}: {}", run.all());
        assert!(run.stdout.trim().is_empty(), "{args:?}: {}", run.stdout);
    }
}

// The matrix job: a workflow detects the changed stacks with ./actions/stacks and fans a job
// out over `matrix`, and another over the first chunk; both see the stacks in order.
#[test]
fn stacks_matrix_fans_out_under_act() {
    let sb = Sandbox::plain();
    let repo = sb.path().join("repo");
    crate::actions::copy_action_tree(&repo);
    seed(&repo);
    write(&repo, &[("modules/vpc/main.tf", "# v2\n")]);
    let wf = r#"on: push
permissions: {}
jobs:
  detect:
    runs-on: ubuntu-latest
    outputs:
      matrix: ${{ steps.stacks.outputs.matrix }}
      chunks: ${{ steps.stacks.outputs.chunks }}
      count: ${{ steps.stacks.outputs.count }}
    steps:
      - uses: actions/checkout@v4
      - id: stacks
        uses: ./actions/stacks
        with:
          command: changed
          base: HEAD~1
          environment: dev
  plan:
    needs: detect
    if: needs.detect.outputs.count != '0'
    runs-on: ubuntu-latest
    strategy:
      matrix: ${{ fromJSON(needs.detect.outputs.matrix) }}
    steps:
      - env:
          STACK: ${{ matrix.stack }}
          DIR: ${{ matrix.path }}
          LAYER: ${{ matrix.layer }}
          KEY: ${{ matrix.state-key }}
        run: echo "PLAN stack=$STACK dir=$DIR layer=$LAYER key=$KEY"
  chunk0:
    needs: detect
    runs-on: ubuntu-latest
    strategy:
      matrix: ${{ fromJSON(needs.detect.outputs.chunks)[0] }}
    steps:
      - env:
          STACK: ${{ matrix.stack }}
        run: echo "CHUNK0 stack=$STACK"
"#;
    write(&repo, &[(".github/workflows/stacks.yml", wf)]);
    act::init_repo(&repo);
    // act's checkout of the local repository needs the previous commit for HEAD~1.
    write(&repo, &[("modules/vpc/main.tf", "# v3\n")]);
    git_http::git(&repo)
        .args(["commit", "-qam", "vpc v3"])
        .output()
        .unwrap();
    let mut sb = sb;
    sb.set(
        "GITOPS_ACTIONS_LOCAL_BIN_DIR",
        crate::actions::built_bin_dir().display().to_string(),
    );
    let bins = crate::actions::built_bin_dir().display().to_string();
    let run = act::run(
        &sb,
        &repo,
        "push",
        &["--env", &format!("GITOPS_ACTIONS_LOCAL_BIN_DIR={bins}")],
    );
    let log = run.all();
    assert_eq!(run.code, 0, "{log}");
    for want in [
        "PLAN stack=network dir=stacks/network layer=0 key=network/dev.tfstate",
        "PLAN stack=service dir=stacks/service layer=1 key=service/dev.tfstate",
        "CHUNK0 stack=network",
    ] {
        assert!(log.contains(want), "missing {want:?}\n{log}");
    }
    assert!(!log.contains("PLAN stack=edge"), "{log}");
    assert!(!log.contains("CHUNK0 stack=service"), "{log}");
}

// `check-core`: Core's configuration of a repository (terraform/core/repositories/<repo>.yml)
// against the repository's own .github/gitops.yml at HEAD. They agree: exit 0. Each kind of
// disagreement (an environment's key, the registries, a stack's state key outside Core's
// state-prefixes) is named, exit 1, and no output is set; a missing or bad Core file is exit 2.
#[test]
fn stacks_check_core_agrees_or_names_every_disagreement() {
    let prefixes = "state-prefixes: ['network/', 'service/', 'edge/']\n";
    let sb = Sandbox::actions();
    let repo = sb.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    seed(&repo);
    write(
        &repo,
        &[(".github/gitops.yml", &format!("{CONFIG}{prefixes}"))],
    );
    commit(&repo, "state prefixes");
    let r = repo.display().to_string();
    let core_dir = sb.path().join("core");
    std::fs::create_dir_all(&core_dir).unwrap();
    let core_envs =
        "environments:\n  - name: dev\n    branch: dev\n  - name: prod\n    branch: prod\n";
    let check = |name: &str, text: &str| {
        let f = core_dir.join(name);
        std::fs::write(&f, text).unwrap();
        let f = f.display().to_string();
        sb.run(
            "stacks",
            &["check-core", "--core-config", &f, "--repo-path", &r],
        )
    };

    let run = check("app.yml", &format!("{core_envs}{prefixes}"));
    run.expect_code(0);
    assert!(run.all().contains("they agree"), "{}", run.all());

    let run = check(
        "app.yml",
        &format!(
            "{}{prefixes}registries: ['app']\n",
            core_envs.replace("branch: prod", "branch: release")
        ),
    );
    run.expect_code(1);
    for want in [
        "environment `prod`: branch is `release` in Core, `prod` in the repository",
        "registries is [app] in Core, (not set) in the repository",
        "disagree in 2 place(s)",
    ] {
        assert!(run.all().contains(want), "{want}: {}", run.all());
    }
    assert!(sb.outputs().is_empty(), "{:?}", sb.outputs());

    // Both files say the same prefixes, but a stack's key is outside them: Core's roles could
    // not reach that state.
    write(
        &repo,
        &[(
            ".github/gitops.yml",
            &format!("{CONFIG}state-prefixes: ['network/', 'service/']\n"),
        )],
    );
    commit(&repo, "edge outside");
    let run = check(
        "app.yml",
        &format!("{core_envs}state-prefixes: ['network/', 'service/']\n"),
    );
    run.expect_code(1);
    assert!(
        run.all().contains("stack `edge` in `prod`: its state key `edge/prod/terraform.tfstate` is outside Core's state-prefixes [network/, service/]"),
        "{}",
        run.all()
    );
    // Without state-prefixes Core grants `<repository>/` (its file is named after the repository).
    write(&repo, &[(".github/gitops.yml", CONFIG)]);
    commit(&repo, "no prefixes");
    let run = check("network.yml", core_envs);
    run.expect_code(1);
    assert!(run.all().contains("stack `service` in `dev`: its state key `service/dev.tfstate` is outside Core's state-prefixes [network/]"), "{}", run.all());

    // Core's file lists the stacks (the same file): Core grants each stack's key in the
    // environments it deploys to, and check-core compares them per stack and environment.
    let prefixes = "state-prefixes: ['network/', 'service/', 'edge/']\n";
    write(
        &repo,
        &[(".github/gitops.yml", &format!("{CONFIG}{prefixes}"))],
    );
    commit(&repo, "prefixes again");
    let run = check("app.yml", &format!("{CONFIG}{prefixes}"));
    run.expect_code(0);
    assert!(run.all().contains("they agree"), "{}", run.all());
    // edge limited to prod in the repository, listed everywhere in Core; service missing from
    // Core; network with another key.
    let core_stacks = "stacks:\n  - { name: network, path: stacks/network, state-key: 'network/{env}/x.tfstate' }\n  - { name: edge, path: stacks/edge, state-key: 'edge/{env}/terraform.tfstate' }\n";
    let run = check("app.yml", &format!("{core_envs}{prefixes}{core_stacks}"));
    run.expect_code(1);
    for want in [
        "stack `network` in `dev`: the repository's state key `network/dev.tfstate`, Core grants `network/dev/x.tfstate`",
        "stack `service` in `prod`: the repository's state key `service/prod.tfstate`, Core's file grants none (it does not list the stack there)",
        "stack `edge` in `dev`: Core grants state key `edge/dev/terraform.tfstate`, the repository has no such stack there",
        "disagree in 5 place(s)",
    ] {
        assert!(run.all().contains(want), "{want}: {}", run.all());
    }
    assert!(sb.outputs().is_empty(), "{:?}", sb.outputs());
    // A key of Core's stacks outside Core's own state-prefixes: Core refuses it.
    let run = check(
        "app.yml",
        &format!("{CONFIG}state-prefixes: ['network/', 'service/']\n"),
    );
    run.expect_code(1);
    assert!(run.all().contains("stack `edge` in `prod`: Core's state key `edge/prod/terraform.tfstate` is outside Core's state-prefixes [network/, service/] (Core refuses it)"), "{}", run.all());
    // A Core file whose stacks are not in the schema: exit 2.
    let run = check(
        "app.yml",
        &format!("{core_envs}{prefixes}stacks:\n  - {{ name: a, path: a, stat-key: x }}\n"),
    );
    run.expect_code(2);
    assert!(run.all().contains("app.yml"), "{}", run.all());

    // Refusals before anything is read: exit 2 naming the input.
    let missing = core_dir.join("nope.yml").display().to_string();
    let bad = core_dir.join("bad.yml");
    std::fs::write(
        &bad,
        "environments:\n  - name: dev\n    branch: dev\n    acount: 1\n",
    )
    .unwrap();
    let bad = bad.display().to_string();
    for (args, want) in [
        (
            vec!["check-core", "--repo-path", &r],
            "`check-core` needs `core-config`",
        ),
        (
            vec!["list", "--core-config", &missing, "--repo-path", &r],
            "invalid input `core-config`: applies to `check-core` only",
        ),
        (
            vec!["check-core", "--core-config", &missing, "--repo-path", &r],
            "cannot read",
        ),
        (
            vec!["check-core", "--core-config", &bad, "--repo-path", &r],
            "bad.yml: line 4, column 5: an unknown key",
        ),
        (
            vec![
                "check-core",
                "--base",
                "HEAD",
                "--core-config",
                &bad,
                "--repo-path",
                &r,
            ],
            "invalid input `base`: does not apply to `check-core`",
        ),
    ] {
        let run = sb.run("stacks", &args);
        run.expect_code(2);
        assert!(run.all().contains(want), "{args:?}: {}", run.all());
        assert!(sb.outputs().is_empty());
    }
}

// The committed example of Core's configuration is valid in the gitops.yml schema, and an app
// repository holding the same file agrees with it.
#[test]
fn stacks_check_core_accepts_the_committed_core_example() {
    let example = crate::support::root().join("terraform/core/repositories/example-app.yml");
    let text = std::fs::read_to_string(&example).unwrap();
    let sb = Sandbox::actions();
    let repo = sb.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    git_ok(&repo, &["init", "-q", "-b", "main"]);
    write(
        &repo,
        &[
            (".github/gitops.yml", &text),
            ("terraform/app/release/main.tf", "\n"),
        ],
    );
    commit(&repo, "same as Core");
    let r = repo.display().to_string();
    let e = example.display().to_string();
    let run = sb.run(
        "stacks",
        &["check-core", "--core-config", &e, "--repo-path", &r],
    );
    run.expect_code(0);
    assert!(run.all().contains("they agree"), "{}", run.all());
}

// The per-layer matrices the templates' fixed layer jobs read (`layer-<k>`, with `max-layers`),
// the `mode` output, and a configuration that needs more layers than the workflow runs: exit 2
// naming `max-layers`, before the remote is read (a closed port here), no output set.
#[test]
fn stacks_layer_outputs_and_max_layers() {
    let sb = Sandbox::actions();
    let repo = sb.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    seed(&repo);
    write(&repo, &[("modules/vpc/main.tf", "# v2\n")]);
    commit(&repo, "vpc v2");
    let r = repo.display().to_string();
    let run = sb.run(
        "stacks",
        &[
            "changed",
            "--base",
            "HEAD~1",
            "--environment",
            "dev",
            "--max-layers",
            "3",
            "--repo-path",
            &r,
        ],
    );
    run.expect_code(0);
    assert_eq!(sb.outputs()["mode"], "stacks");
    assert_eq!(json_out(&sb, "layer-0")["include"][0]["stack"], "network");
    assert_eq!(
        json_out(&sb, "layer-0")["include"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(json_out(&sb, "layer-1")["include"][0]["stack"], "service");
    assert_eq!(
        json_out(&sb, "layer-1")["include"][0]["state-key"],
        "service/dev.tfstate"
    );
    for k in 2..6 {
        assert_eq!(
            json_out(&sb, &format!("layer-{k}")),
            serde_json::json!({"include": []})
        );
    }

    // Without max-layers: no layer outputs (the matrix and chunks as before).
    let sb2 = Sandbox::actions();
    sb2.run(
        "stacks",
        &["list", "--environment", "prod", "--repo-path", &r],
    )
    .expect_code(0);
    assert!(!sb2.outputs().contains_key("layer-0"));

    // One layer is not enough for network -> service.
    let closed = format!(
        "http://127.0.0.1:{}/nobody.git",
        crate::support::free_port()
    );
    for args in [
        vec![
            "changed",
            "--environment",
            "dev",
            "--max-layers",
            "1",
            "--remote",
            &closed,
            "--repo-path",
            &r,
        ],
        vec!["list", "--max-layers", "1", "--repo-path", &r],
    ] {
        let sb = Sandbox::actions();
        let run = sb.run("stacks", &args);
        run.expect_code(2);
        assert!(
            run.all().contains("max-layers")
                && run.all().contains("need 2 dependency layers (stack `service` is in the last), but the workflow runs at most 1"),
            "{}",
            run.all()
        );
        assert!(sb.outputs().is_empty(), "{:?}", sb.outputs());
    }
    for bad in ["0", "7", "x"] {
        let sb = Sandbox::actions();
        let run = sb.run("stacks", &["list", "--max-layers", bad, "--repo-path", &r]);
        run.expect_code(2);
        assert!(
            run.all().contains("is not a number of layers from 1 to 6"),
            "{}",
            run.all()
        );
    }

    // No `stacks:`: one stack, `mode=single`, its state key left to the template.
    let one = sb.path().join("one");
    std::fs::create_dir_all(&one).unwrap();
    git_ok(&one, &["init", "-q", "-b", "main"]);
    write(&one, &[("main.tf", "\n")]);
    commit(&one, "one");
    let sb = Sandbox::actions();
    let o = one.display().to_string();
    sb.run(
        "stacks",
        &[
            "list",
            "--environment",
            "dev",
            "--max-layers",
            "3",
            "--repo-path",
            &o,
        ],
    )
    .expect_code(0);
    assert_eq!(sb.outputs()["mode"], "single");
    assert_eq!(json_out(&sb, "layer-0")["include"][0]["state-key"], "");
}

// The templates' layer pattern under act: `layer-<k>` outputs (read with the bracket form, as
// the templates do) feed one matrix job per layer; layer 1 runs only after every entry of
// layer 0, and a layer beyond `layers` is skipped.
#[test]
fn stacks_layer_jobs_run_in_dependency_order_under_act() {
    let sb = Sandbox::plain();
    let repo = sb.path().join("repo");
    crate::actions::copy_action_tree(&repo);
    seed(&repo);
    let wf = r#"on: push
permissions: {}
jobs:
  stacks:
    runs-on: ubuntu-latest
    outputs:
      layers: ${{ steps.s.outputs.layers }}
      layer-0: ${{ steps.s.outputs['layer-0'] }}
      layer-1: ${{ steps.s.outputs['layer-1'] }}
      layer-2: ${{ steps.s.outputs['layer-2'] }}
    steps:
      - uses: actions/checkout@v4
      - id: s
        uses: ./actions/stacks
        with:
          command: list
          environment: prod
          max-layers: "3"
  layer-0:
    needs: stacks
    if: ${{ needs.stacks.outputs.layers > 0 }}
    runs-on: ubuntu-latest
    strategy:
      fail-fast: false
      max-parallel: ${{ fromJSON(vars.STACKS_MAX_PARALLEL || '4') }}
      matrix: ${{ fromJSON(needs.stacks.outputs['layer-0']) }}
    steps:
      - env:
          STACK: ${{ matrix.stack }}
          KEY: ${{ matrix['state-key'] }}
        run: echo "LAYER0 stack=$STACK key=$KEY"
  layer-1:
    needs: [stacks, layer-0]
    if: ${{ needs.stacks.outputs.layers > 1 }}
    runs-on: ubuntu-latest
    strategy:
      matrix: ${{ fromJSON(needs.stacks.outputs['layer-1']) }}
    steps:
      - env:
          STACK: ${{ matrix.stack }}
        run: echo "LAYER1 stack=$STACK"
  layer-2:
    needs: [stacks, layer-1]
    if: ${{ needs.stacks.outputs.layers > 2 }}
    runs-on: ubuntu-latest
    strategy:
      matrix: ${{ fromJSON(needs.stacks.outputs['layer-2']) }}
    steps:
      - run: echo "LAYER2 ran"
"#;
    write(&repo, &[(".github/workflows/layers.yml", wf)]);
    act::init_repo(&repo);
    let bins = crate::actions::built_bin_dir().display().to_string();
    let run = act::run(
        &sb,
        &repo,
        "push",
        &["--env", &format!("GITOPS_ACTIONS_LOCAL_BIN_DIR={bins}")],
    );
    let log = run.all();
    assert_eq!(run.code, 0, "{log}");
    let at = |needle: &str| {
        log.find(needle)
            .unwrap_or_else(|| panic!("missing {needle:?}\n{log}"))
    };
    // prod: edge and network in layer 0, service (depends on network) in layer 1.
    let edge = at("LAYER0 stack=edge key=edge/prod/terraform.tfstate");
    let network = at("LAYER0 stack=network key=network/prod.tfstate");
    let service = at("LAYER1 stack=service");
    assert!(
        edge < service && network < service,
        "layer 1 ran before layer 0:\n{log}"
    );
    assert!(
        !log.contains("LAYER2 ran"),
        "a layer beyond `layers` ran:\n{log}"
    );
}
