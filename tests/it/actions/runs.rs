//! The composite actions run by a real runner (act, host mode) from a temporary repository that
//! holds a copy of our action tree: inputs reach the binary verbatim through `GITOPS_*`, the
//! `command` input becomes the first argument (and only an allowed one), outputs come back through
//! the declared `value:`s, masks hold, and the root action puts the real binaries on PATH.
//!
//! The per-action binaries are probes (they print what they received and set every declared
//! output): what is under test here is the action layer, which is the same whatever the binary
//! does. The root-action job runs the real binaries built for this test run.

use std::fmt::Write as _;

use gitops_actions::actiongen::{self, COMMAND_INPUT, TOKEN_INPUTS};
use gitops_actions::cli::env_name;
use gitops_actions::cmd::{binaries, BinaryDoc, OutputDoc};
use serde_yaml_ng::Value;

use crate::support::{act, Sandbox};

const TOKEN: &str = "ghs_actTestToken0123456789abcdef";
const TRICKY: &str = "a\"b'c $(echo INJECTED) `id` ; rm -rf x";

/// A synthetic binary with flags, subcommands and outputs, so the wiring is exercised even while
/// the real binaries are young. Rendered by the real generator under an allowed binary name.
mod synthetic {
    use clap::{Parser, Subcommand};

    #[derive(Parser)]
    #[command(name = "tag-deploy", version)]
    pub struct Args {
        #[command(subcommand)]
        cmd: Sub,
        /// Environment name.
        #[arg(long, env = "GITOPS_ENVIRONMENT", global = true)]
        environment: Option<String>,
        /// Token for the GitHub API.
        #[arg(long, env = "GITOPS_GITHUB_TOKEN", global = true)]
        github_token: Option<String>,
    }

    #[derive(Subcommand)]
    enum Sub {
        /// Record.
        Record {
            /// Commit.
            #[arg(long, env = "GITOPS_SHA")]
            sha: String,
            /// Mark as rollback.
            #[arg(long, env = "GITOPS_ROLLBACK")]
            rollback: bool,
        },
        /// List.
        List {
            /// How many.
            #[arg(long, env = "GITOPS_LIMIT", default_value = "10")]
            limit: u32,
        },
    }
}

fn synthetic_doc() -> BinaryDoc {
    use clap::CommandFactory;
    BinaryDoc {
        name: "tag-deploy",
        description: "Synthetic probe of the generator",
        command: synthetic::Args::command,
        outputs: &[
            OutputDoc {
                name: "tag",
                description: "Tag",
            },
            OutputDoc {
                name: "history-tag",
                description: "History tag",
            },
        ],
    }
}

/// The probe binary: prints its arguments and GITOPS_* environment, masks and prints a derived
/// secret, and sets `outputs`.
fn probe_script(secret: &str, outputs: &[String]) -> String {
    let mut s = String::from("#!/usr/bin/env bash\nset -eu\nme=\"$(basename \"$0\")\"\n");
    s.push_str("printf 'PROBE %s argc=%s argv1=%s\\n' \"$me\" \"$#\" \"${1-}\"\n");
    s.push_str(
        "env | LC_ALL=C sort | grep '^GITOPS_' | grep -v '^GITOPS_ACTIONS_' | sed \"s/^/PROBE $me env /\"\n",
    );
    let _ = writeln!(s, "echo \"::add-mask::{secret}\"");
    let _ = writeln!(s, "echo \"PROBE $me derived={secret}\"");
    for o in outputs {
        let _ = writeln!(s, "echo \"{o}=out-$me-{o}\" >> \"$GITHUB_OUTPUT\"");
    }
    s
}

use crate::actions::write_exec;

fn yaml_q(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

/// Value the workflow passes for one input, and what the binary must see.
fn input_value(name: &str, first: bool) -> (String, String) {
    if TOKEN_INPUTS.contains(&name) {
        ("${{ secrets.GITOPS_TEST_TOKEN }}".into(), "***".into())
    } else if first {
        (yaml_q(TRICKY), TRICKY.into())
    } else {
        let v = format!("in-{name}");
        (yaml_q(&v), v)
    }
}

struct Expect {
    lines: Vec<String>,
}

/// Append a `uses:` step for the action at `dir` plus a step echoing its outputs.
fn use_action(wf: &mut String, exp: &mut Expect, step: &str, dir: &str, action: &Value, bin: &str) {
    let _ = writeln!(wf, "      - id: {step}\n        uses: ./{dir}");
    let inputs = action.get("inputs").and_then(Value::as_mapping);
    let mut with = String::new();
    let mut argv1 = String::new();
    let mut argc = 0;
    let mut first = true;
    for (k, _) in inputs.into_iter().flatten() {
        let name = k.as_str().unwrap();
        if name == COMMAND_INPUT {
            let script = action["runs"]["steps"][1]["run"].as_str().unwrap();
            // The first allowed command, read from the generated case statement.
            let line = script
                .lines()
                .find(|l| l.trim_end().ends_with(") ;;"))
                .unwrap();
            argv1 = line.trim().split(['|', ')']).next().unwrap().to_string();
            argc = 1;
            let _ = writeln!(with, "          {name}: {}", yaml_q(&argv1));
            exp.lines
                .push(format!("PROBE {bin} env GITOPS_COMMAND={argv1}"));
            continue;
        }
        let (given, seen) = input_value(name, first);
        first &= TOKEN_INPUTS.contains(&name);
        let _ = writeln!(with, "          {name}: {given}");
        exp.lines
            .push(format!("PROBE {bin} env {}={seen}", env_name(name)));
    }
    if !with.is_empty() {
        let _ = write!(wf, "        with:\n{with}");
    }
    exp.lines
        .push(format!("PROBE {bin} argc={argc} argv1={argv1}"));
    let outputs = action.get("outputs").and_then(Value::as_mapping);
    for (k, _) in outputs.into_iter().flatten() {
        let o = k.as_str().unwrap();
        let var = format!("OUT_{}", o.replace('-', "_").to_uppercase());
        let _ = writeln!(
            wf,
            "      - env:\n          {var}: ${{{{ steps.{step}.outputs.{o} }}}}\n        run: echo \"OUT {step} {o}=${var}\""
        );
        exp.lines.push(format!("OUT {step} {o}=out-{bin}-{o}"));
    }
}

#[test]
fn actions_run_under_act_pass_inputs_outputs_and_masks() {
    let sb = Sandbox::plain();
    let repo = sb.path().join("repo");
    crate::actions::copy_action_tree(&repo);
    let secret = format!("derived{}", gitops_actions::runner::random_token());

    // The synthetic action, rendered by the generator, next to the real ones.
    let synth = actiongen::model(&synthetic_doc()).unwrap();
    std::fs::create_dir_all(repo.join("actions/synthetic")).unwrap();
    std::fs::write(
        repo.join("actions/synthetic/action.yml"),
        actiongen::render_action(&synth),
    )
    .unwrap();

    // Probe binaries, one per binary name, setting the union of declared outputs.
    let probes = sb.path().join("probe-bin");
    std::fs::create_dir_all(&probes).unwrap();
    for doc in binaries() {
        let mut outs: Vec<String> = doc.outputs.iter().map(|o| o.name.to_string()).collect();
        if doc.name == "tag-deploy" {
            outs.extend(synth.outputs.iter().map(|o| o.name.to_string()));
        }
        write_exec(&probes.join(doc.name), &probe_script(&secret, &outs));
    }

    let mut wf = String::from("on: push\npermissions: {}\njobs:\n");
    let _ = writeln!(
        wf,
        "  probes:\n    runs-on: ubuntu-latest\n    env:\n      GITOPS_ACTIONS_LOCAL_BIN_DIR: {}\n    steps:\n      - uses: actions/checkout@v4",
        yaml_q(&probes.display().to_string())
    );
    let mut exp = Expect { lines: vec![] };
    for doc in binaries() {
        let dir = format!("actions/{}", doc.name);
        let action: Value = serde_yaml_ng::from_str(
            &std::fs::read_to_string(repo.join(&dir).join("action.yml")).unwrap(),
        )
        .unwrap();
        use_action(
            &mut wf,
            &mut exp,
            &doc.name.replace('-', "_"),
            &dir,
            &action,
            doc.name,
        );
    }
    let synth_action: Value = serde_yaml_ng::from_str(&actiongen::render_action(&synth)).unwrap();
    use_action(
        &mut wf,
        &mut exp,
        "synthetic",
        "actions/synthetic",
        &synth_action,
        "tag-deploy",
    );
    // A command outside the allowed set never reaches the binary.
    let _ = writeln!(
        wf,
        "      - id: bad\n        continue-on-error: true\n        uses: ./actions/synthetic\n        with:\n          command: {}\n      - env:\n          OUTCOME: ${{{{ steps.bad.outcome }}}}\n        run: echo \"BAD outcome=$OUTCOME\"",
        yaml_q("record; touch pwned")
    );

    // The root action installs the real binaries and puts them on PATH.
    let bins = crate::actions::built_bin_dir();
    let _ = writeln!(
        wf,
        "  root:\n    runs-on: ubuntu-latest\n    env:\n      GITOPS_ACTIONS_LOCAL_BIN_DIR: {}\n    steps:\n      - uses: actions/checkout@v4\n      - id: install\n        uses: ./\n      - env:\n          BIN_DIR: ${{{{ steps.install.outputs.bin-dir }}}}\n          VERSION: ${{{{ steps.install.outputs.version }}}}\n        run: |\n          echo \"ROOT version=$VERSION bin-dir=$BIN_DIR\"\n          for b in oidc-login plan-gate ecr-push promote tag-deploy stacks; do echo \"ROOT $($b --version)\"; done\n          echo \"ROOT holds=$(ls -A \"$BIN_DIR\" | sort | tr '\\n' ' ')|\"\n          case \"$(command -v oidc-login)\" in \"$BIN_DIR\"/*) echo \"ROOT path=bin-dir\" ;; esac",
        yaml_q(&bins.display().to_string())
    );
    // A real binary through its action: plan-gate on a committed plan fixture.
    std::fs::copy(
        crate::support::root().join("tests/fixtures/actions/plan.json"),
        repo.join("plan.json"),
    )
    .unwrap();
    let _ = writeln!(
        wf,
        "  real:\n    runs-on: ubuntu-latest\n    env:\n      GITOPS_ACTIONS_LOCAL_BIN_DIR: {}\n    steps:\n      - uses: actions/checkout@v4\n      - id: gate\n        uses: ./actions/plan-gate\n        with:\n          plan: plan.json\n          comment: \"off\"\n      - env:\n          VERDICT: ${{{{ steps.gate.outputs.verdict }}}}\n          ADD: ${{{{ steps.gate.outputs.add }}}}\n          HAS: ${{{{ steps.gate.outputs.has-changes }}}}\n        run: echo \"REAL verdict=$VERDICT add=$ADD has-changes=$HAS\"",
        yaml_q(&bins.display().to_string())
    );
    std::fs::create_dir_all(repo.join(".github/workflows")).unwrap();
    std::fs::write(repo.join(".github/workflows/probe.yml"), &wf).unwrap();
    act::init_repo(&repo);

    let secret_arg = format!("GITOPS_TEST_TOKEN={TOKEN}");
    let run = act::run(&sb, &repo, "push", &["--secret", &secret_arg]);
    let log = run.all();
    eprintln!("--- act log\n{log}");
    assert_eq!(run.code, 0, "act failed\n{log}\n--- workflow\n{wf}");
    for l in &exp.lines {
        assert!(
            log.contains(l.as_str()),
            "missing {l:?} in act log\n{log}\n--- workflow\n{wf}"
        );
    }
    // Masks hold: the derived secret and the token never appear; the tricky value arrived
    // verbatim and was not executed.
    assert!(!log.contains(&secret), "derived secret leaked");
    assert!(log.contains("derived=***"));
    assert!(!log.contains(TOKEN), "token leaked");
    assert!(
        log.contains(&format!("GITOPS_ENVIRONMENT={TRICKY}")),
        "tricky value not verbatim"
    );
    assert!(!log.contains("| INJECTED"));
    // The bad command: refused by the action with exit 2, before the binary.
    assert!(log.contains("BAD outcome=failure"), "{log}");
    assert!(
        log.contains("input 'command' must be one of: record, list"),
        "{log}"
    );
    assert!(!repo.join("pwned").exists());
    let probe_runs = log.matches("PROBE tag-deploy argc=").count();
    assert_eq!(
        probe_runs, 2,
        "tag-deploy probe ran {probe_runs} times\n{log}"
    );
    // The real plan-gate read its inputs and its outputs came back through the action.
    assert!(
        log.contains("REAL verdict=pass add=1 has-changes=true"),
        "{log}"
    );
    // Root action: real binaries on PATH, outputs set; the directory on PATH is a fresh one
    // holding the five binaries and nothing else (not the build directory they came from, which
    // holds much more: item 11 of #21).
    assert!(log.contains("ROOT version=local bin-dir="), "{log}");
    assert!(
        log.contains("ROOT holds=ecr-push oidc-login plan-gate promote stacks tag-deploy |"),
        "{log}"
    );
    assert!(log.contains("ROOT path=bin-dir"), "{log}");
    for b in [
        "oidc-login",
        "plan-gate",
        "ecr-push",
        "promote",
        "tag-deploy",
        "stacks",
    ] {
        let want = format!("ROOT {b} {}", env!("CARGO_PKG_VERSION"));
        assert!(log.contains(&want), "missing {want:?}\n{log}");
    }
}

// #21 item 14, under a real runner (act): with GITHUB_ACTIONS=true, `--format json` output piped
// into a JSON parser (and redirected to a file for jq) parses, because stdout holds only the
// document; the masks the binaries print on stderr still take effect for the rest of the step
// (the runner reads workflow commands on stderr too).
#[test]
fn actions_json_output_parses_under_act_and_masks_still_hold() {
    use crate::support::git_http;
    let sb = Sandbox::plain();
    let repo = sb.path().join("repo");
    std::fs::create_dir_all(repo.join(".github/workflows")).unwrap();
    let sentinel = format!("SENTINEL-{}", gitops_actions::runner::random_token());
    let plan = format!(
        r#"{{"format_version":"1.2","terraform_version":"1.11.0","resource_changes":[
        {{"address":"aws_db_instance.main","mode":"managed","type":"aws_db_instance","name":"main","provider_name":"registry.terraform.io/hashicorp/aws",
        "change":{{"actions":["update"],"before":{{"password":"old-value-123456","name":"db"}},"after":{{"password":"{sentinel}","name":"db2"}},
        "after_unknown":{{}},"before_sensitive":{{"password":true}},"after_sensitive":{{"password":true}}}}}}]}}"#
    );
    std::fs::write(repo.join("plan.json"), plan).unwrap();

    // A remote with one recorded deploy of `dev`.
    let bare = sb.path().join("remote.git");
    git_http::init_bare(&bare);
    let seeded = git_http::seed_env_branches(&bare, 3);
    let dev_tip = seeded.dev[2].clone();
    let mut rec = Sandbox::actions();
    // An existing directory without .github/gitops.yml: the built-in model (a missing path is
    // refused, #21 item 8).
    let no_checkout = rec.path().join("no-checkout");
    std::fs::create_dir_all(&no_checkout).unwrap();
    let no_checkout = no_checkout.display().to_string();
    rec.set("GITOPS_SKIP_GITHUB_DEPLOYMENT", "true")
        .set("GITHUB_RUN_ID", "7")
        .set("GITOPS_REPO_PATH", no_checkout);
    rec.run(
        "tag-deploy",
        &[
            "record",
            "--environment",
            "dev",
            "--sha",
            &dev_tip,
            "--remote",
            &bare.display().to_string(),
        ],
    )
    .expect_code(0);

    let token = format!("tok{}", gitops_actions::runner::random_token());
    let bins = crate::actions::built_bin_dir();
    let mut wf =
        String::from("on: push\npermissions: {}\njobs:\n  json:\n    runs-on: ubuntu-latest\n");
    let _ = writeln!(
        wf,
        "    env:\n      BIN: {}\n      REMOTE: {}\n      TOKEN_VALUE: {}\n      SENTINEL_VALUE: {}\n      GITHUB_ACTIONS: \"true\"",
        yaml_q(&bins.display().to_string()),
        yaml_q(&bare.display().to_string()),
        yaml_q(&token),
        yaml_q(&sentinel),
    );
    wf.push_str(
        r#"    steps:
      - uses: actions/checkout@v4
      - name: plan-gate json into a parser
        run: |
          set -euo pipefail
          "$BIN/plan-gate" --plan plan.json --format json --comment off | python3 -c 'import json,sys; d=json.load(sys.stdin); print("PARSED plan-gate verdict=%s change=%s" % (d["verdict"], d["change"]))'
          echo "AFTER plan-gate $SENTINEL_VALUE"
      - name: tag-deploy list json into a file, then parsers
        run: |
          set -euo pipefail
          mkdir -p "$RUNNER_TEMP/no-checkout"
          "$BIN/tag-deploy" list --environment dev --format json --remote "$REMOTE" --repo-path "$RUNNER_TEMP/no-checkout" --token "$TOKEN_VALUE" > history.json
          python3 -c 'import json; d=json.load(open("history.json")); print("PARSED tag-deploy current=%s verified=%s" % (d["current"], d["history"][0]["record_verified"]))'
          echo "JQ $(jq -r '.history | length' history.json)"
          "$BIN/tag-deploy" list --environment dev --format json --remote "$REMOTE" --repo-path "$RUNNER_TEMP/no-checkout" --token "$TOKEN_VALUE" | jq -e '.environment == "dev"' > /dev/null
          echo "AFTER tag-deploy $TOKEN_VALUE"
"#,
    );
    std::fs::write(repo.join(".github/workflows/json.yml"), &wf).unwrap();
    act::init_repo(&repo);
    let run = act::run(&sb, &repo, "push", &["--actor", "octocat"]);
    let log = run.all();
    eprintln!("--- act log\n{log}");
    assert_eq!(run.code, 0, "act failed\n{log}\n--- workflow\n{wf}");
    for want in [
        "PARSED plan-gate verdict=pass change=1".to_string(),
        format!("PARSED tag-deploy current={dev_tip} verified=True"),
        "JQ 1".to_string(),
        // the masks printed on stderr took effect for the rest of each step
        "AFTER plan-gate ***".to_string(),
        "AFTER tag-deploy ***".to_string(),
    ] {
        assert!(
            log.contains(&want),
            "missing {want:?}\n{log}\n--- workflow\n{wf}"
        );
    }
    for l in log.lines().filter(|l| l.contains("AFTER")) {
        assert!(!l.contains(&sentinel) && !l.contains(&token), "{l}");
    }
}
