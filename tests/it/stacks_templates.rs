//! The stacks jobs of the workflow templates (#14), checked on their structure: layers run in
//! dependency order (a layer's plan needs the layer before it applied), every stack's apply
//! verifies against its own plan's digest from this run, each stack is recorded and
//! `deploy/<env>/current` moves only in the final job, with every changed stack; permissions are
//! the least each job needs; without `stacks:` the one-root jobs run as before.

use std::collections::BTreeMap;

use serde_yaml_ng::{Mapping, Value};

fn template(name: &str) -> Value {
    let text = std::fs::read_to_string(
        crate::support::root()
            .join("workflows-templates")
            .join(name),
    )
    .unwrap();
    serde_yaml_ng::from_str(&text).unwrap()
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

fn needs(job: &Value) -> Vec<String> {
    match &job["needs"] {
        Value::String(n) => vec![n.clone()],
        Value::Sequence(l) => l
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        _ => vec![],
    }
}

fn perms(job: &Value) -> BTreeMap<String, String> {
    job["permissions"]
        .as_mapping()
        .into_iter()
        .flatten()
        .map(|(k, v)| {
            (
                k.as_str().unwrap().to_string(),
                v.as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn p(list: &[(&str, &str)]) -> BTreeMap<String, String> {
    list.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn uses(step: &Value, action: &str) -> bool {
    s(step, "uses").starts_with(&format!("gitops-actions/gitops-actions/actions/{action}@"))
}

fn step(job: &Value, pred: impl Fn(&Value) -> bool) -> Vec<&Value> {
    job["steps"]
        .as_sequence()
        .into_iter()
        .flatten()
        .filter(|s| pred(s))
        .collect()
}

/// The layer jobs (`plan-<k>`, `apply-<k>`) and how many layers the workflow runs.
fn layers(jobs: &Mapping) -> usize {
    (0..)
        .take_while(|k| jobs.contains_key(format!("plan-{k}").as_str()))
        .count()
}

/// Problems of a template's layer structure (deploy.yml).
fn layer_problems(wf: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let jobs = wf["jobs"].as_mapping().unwrap();
    let n = layers(jobs);
    if n == 0 {
        return vec!["no layer jobs".into()];
    }
    let detect = &jobs["stacks"];
    let changed = step(detect, |st| uses(st, "stacks"));
    let Some(changed) = changed.first() else {
        return vec!["the stacks job does not run the stacks action".into()];
    };
    if s(&changed["with"], "command") != "changed"
        || s(&changed["with"], "max-layers") != n.to_string()
    {
        out.push(format!(
            "the stacks job must run `changed` with max-layers {n} (the layer jobs the workflow has)"
        ));
    }
    let mut layer_texts = Vec::new();
    for k in 0..n {
        let plan = &jobs[format!("plan-{k}").as_str()];
        let apply = &jobs[format!("apply-{k}").as_str()];
        if apply.is_null() {
            out.push(format!("plan-{k} has no apply-{k}"));
            continue;
        }
        let want_matrix = format!("${{{{ fromJSON(needs.stacks.outputs['layer-{k}']) }}}}");
        for (name, job) in [("plan", plan), ("apply", apply)] {
            let st = &job["strategy"];
            if s(st, "matrix") != want_matrix {
                out.push(format!("{name}-{k} does not run layer {k}'s matrix"));
            }
            if st["fail-fast"].as_bool() != Some(false) {
                out.push(format!("{name}-{k} must not fail fast"));
            }
            if !s(st, "max-parallel").contains("vars.STACKS_MAX_PARALLEL") {
                out.push(format!("{name}-{k}: max-parallel is not configurable"));
            }
        }
        if s(&detect["outputs"], &format!("layer-{k}")).is_empty() {
            out.push(format!("the stacks job does not pass layer-{k} on"));
        }
        // Order: layer k plans only after layer k-1 applied, and applies after its own plans.
        let pn = needs(plan);
        if k > 0 && !pn.contains(&format!("apply-{}", k - 1)) {
            out.push(format!("plan-{k} does not wait for apply-{}", k - 1));
        }
        if k > 0 && s(plan, "if").contains("always()") {
            out.push(format!("plan-{k} runs even when layer {} failed", k - 1));
        }
        if !s(plan, "if").contains(&format!("layers > {k}")) {
            out.push(format!(
                "plan-{k} is not skipped when there are {k} layers or fewer"
            ));
        }
        if !needs(apply).contains(&format!("plan-{k}")) {
            out.push(format!("apply-{k} does not wait for plan-{k}"));
        }
        // The apply verifies this run's plan status of its stack and records the stack.
        let verify = step(apply, |st| {
            uses(st, "plan-gate") && s(&st["with"], "command") == "verify"
        });
        let record = step(apply, |st| {
            uses(st, "tag-deploy") && s(&st["with"], "command") == "record"
        });
        match (verify.first(), record.first()) {
            (Some(v), Some(r)) => {
                let vw = &v["with"];
                if s(vw, "digest-from-status") != "true" || s(vw, "stack") != "${{ matrix.stack }}"
                {
                    out.push(format!("apply-{k} does not verify its stack's plan status"));
                }
                let rw = &r["with"];
                if s(rw, "stack") != "${{ matrix.stack }}" {
                    out.push(format!("apply-{k} does not record its stack"));
                }
                if s(rw, "plan-digest")
                    != format!("${{{{ steps.{}.outputs.plan-digest }}}}", s(v, "id"))
                {
                    out.push(format!(
                        "apply-{k} records another digest than the verified one"
                    ));
                }
                if !s(rw, "stacks").is_empty() {
                    out.push(format!("apply-{k} records the environment"));
                }
            }
            _ => out.push(format!("apply-{k} must verify and record its stack")),
        }
        if !s(&apply["concurrency"], "group").contains("${{ matrix.stack }}")
            || apply["concurrency"]["cancel-in-progress"].as_bool() != Some(false)
        {
            out.push(format!(
                "apply-{k}: one never-cancelled concurrency group per stack"
            ));
        }
        // Every layer is the same pair of jobs, only its number differs.
        let text = serde_yaml_ng::to_string(&(plan, apply))
            .unwrap()
            .replace(&format!("layer-{k}"), "layer-K")
            .replace(&format!("layer {k}"), "layer K")
            .replace(&format!("layers > {k}"), "layers > K")
            .replace(&format!("plan-{k}"), "plan-K")
            .replace(&format!("apply-{k}"), "apply-K");
        let text = match k {
            0 => text,
            _ => text.replace(&format!("apply-{}", k - 1), "apply-PREV"),
        };
        layer_texts.push(text);
    }
    for (k, t) in layer_texts.iter().enumerate().skip(2) {
        if t != &layer_texts[1] {
            out.push(format!(
                "layer {k}'s jobs differ from layer 1's beyond their number"
            ));
        }
    }
    // current moves in one job only, after every layer, with every changed stack.
    let record = &jobs["stacks-record"];
    let rn = needs(record);
    for k in 0..n {
        if !rn.contains(&format!("apply-{k}")) {
            out.push(format!("stacks-record does not wait for apply-{k}"));
        }
    }
    let rec = step(record, |st| {
        uses(st, "tag-deploy") && s(&st["with"], "command") == "record"
    });
    if rec.len() != 1 || s(&rec[0]["with"], "stacks") != "${{ needs.stacks.outputs.stacks }}" {
        out.push("stacks-record must record the environment with every changed stack".into());
    }
    out
}

#[test]
fn e2e_deploy_template_applies_stacks_layer_by_layer_and_records_current_last() {
    let wf = template("deploy.yml");
    assert_eq!(layer_problems(&wf), Vec::<String>::new());
    let jobs = wf["jobs"].as_mapping().unwrap();
    assert_eq!(layers(jobs), 3);
    // The one-root jobs run only without `stacks:`, the stacks jobs only with it.
    assert!(s(&jobs["plan"], "if").contains("needs.stacks.outputs.mode == 'single'"));
    assert_eq!(needs(&jobs["deploy"]), ["plan"]);
    for j in ["stacks-start", "plan-0", "stacks-record"] {
        assert!(
            s(&jobs[j], "if").contains("needs.stacks.outputs.mode == 'stacks'"),
            "{j}"
        );
    }
    // Only a fully recorded deploy promotes.
    assert!(s(&jobs["promote"], "if").contains("needs.stacks-record.result == 'success'"));

    // Least privilege, job by job.
    let want = [
        ("stacks", p(&[("contents", "read")])),
        (
            "stacks-start",
            p(&[("contents", "read"), ("deployments", "write")]),
        ),
        (
            "plan-0",
            p(&[
                ("contents", "read"),
                ("id-token", "write"),
                ("statuses", "write"),
            ]),
        ),
        (
            "apply-0",
            p(&[
                ("contents", "write"),
                ("id-token", "write"),
                ("statuses", "read"),
            ]),
        ),
        (
            "stacks-record",
            p(&[
                ("contents", "write"),
                ("id-token", "write"),
                ("deployments", "write"),
                ("statuses", "read"),
            ]),
        ),
    ];
    for (job, w) in want {
        assert_eq!(perms(&jobs[job]), w, "{job}");
    }
    // Plans of stacks run in the read-only plan environment; applies and the record in the
    // protected one.
    assert!(s(&jobs["plan-1"], "environment").ends_with("-plan"));
    assert!(!s(&jobs["apply-1"], "environment").ends_with("-plan"));
    // A reviewed plan is required (`auto`) in the run's first layer; a later layer's plan
    // depends on what the layers before it applied, so it defaults to `false`.
    let reviewed = |job: &str| {
        let v = step(&jobs[job], |st| {
            uses(st, "plan-gate") && s(&st["with"], "command") == "verify"
        });
        s(&v[0]["with"], "require-reviewed-plan").to_string()
    };
    assert_eq!(
        reviewed("apply-0"),
        "${{ vars.REQUIRE_REVIEWED_PLAN || 'auto' }}"
    );
    for job in ["apply-1", "apply-2"] {
        assert_eq!(
            reviewed(job),
            "${{ vars.REQUIRE_REVIEWED_PLAN || 'false' }}",
            "{job}"
        );
    }
    assert!(!s(&jobs["stacks-record"], "environment").ends_with("-plan"));
}

// Each way an edit could break the order or the digest source is caught (the check is not
// vacuous).
#[test]
fn e2e_the_layer_check_catches_each_broken_edit() {
    let wf = template("deploy.yml");
    type Edit = fn(&mut Mapping);
    let edits: [(&str, Edit, &str); 6] = [
        (
            "plan-1 no longer waits for apply-0",
            |j| {
                j["plan-1"]["needs"] = serde_yaml_ng::from_str("[stacks, stacks-start]").unwrap();
            },
            "plan-1 does not wait for apply-0",
        ),
        (
            "apply-2 runs layer 1",
            |j| {
                j["apply-2"]["strategy"]["matrix"] =
                    Value::String("${{ fromJSON(needs.stacks.outputs['layer-1']) }}".into());
            },
            "apply-2 does not run layer 2's matrix",
        ),
        (
            "fail-fast",
            |j| {
                j["plan-0"]["strategy"]["fail-fast"] = Value::Bool(true);
            },
            "plan-0 must not fail fast",
        ),
        (
            "a digest given",
            |j| {
                let steps = j["apply-1"]["steps"].as_sequence_mut().unwrap();
                let v = steps
                    .iter_mut()
                    .find(|st| s(&st["with"], "command") == "verify")
                    .unwrap();
                v["with"]["digest-from-status"] = Value::String("false".into());
            },
            "apply-1 does not verify its stack's plan status",
        ),
        (
            "the record forgets the apply of layer 2",
            |j| {
                j["stacks-record"]["needs"] =
                    serde_yaml_ng::from_str("[stacks, stacks-start, apply-0, apply-1]").unwrap();
            },
            "stacks-record does not wait for apply-2",
        ),
        (
            "max-layers out of step",
            |j| {
                let steps = j["stacks"]["steps"].as_sequence_mut().unwrap();
                steps[1]["with"]["max-layers"] = Value::String("4".into());
            },
            "max-layers 3",
        ),
    ];
    for (what, edit, needle) in edits {
        let mut w = wf.clone();
        edit(w["jobs"].as_mapping_mut().unwrap());
        let got = layer_problems(&w);
        assert!(got.iter().any(|p| p.contains(needle)), "{what}: {got:?}");
    }
}

#[test]
fn e2e_rollback_template_rolls_stacks_back_in_order_and_refuses_removed_stacks() {
    let wf = template("rollback.yml");
    assert_eq!(layer_problems(&wf), Vec::<String>::new());
    let jobs = wf["jobs"].as_mapping().unwrap();
    let detect = &jobs["stacks"];
    let changed = step(detect, |st| uses(st, "stacks"))[0];
    // The stacks that differ between the target (head) and the current deploy (base).
    assert_eq!(
        s(&changed["with"], "head"),
        "${{ steps.target.outputs.sha }}"
    );
    assert_eq!(
        s(&changed["with"], "base"),
        "${{ steps.current.outputs.sha }}"
    );
    let refuse = step(detect, |st| {
        s(st, "if").contains("steps.changed.outputs.deleted != '[]'")
    });
    assert_eq!(refuse.len(), 1, "a target removing stacks is refused");
    assert!(s(refuse[0], "run").contains("exit 1"));
    for k in 0..layers(jobs) {
        let plan = &jobs[format!("plan-{k}").as_str()];
        let apply = &jobs[format!("apply-{k}").as_str()];
        let gate = step(plan, |st| uses(st, "plan-gate"));
        assert_eq!(
            s(&gate[0]["with"], "rollback"),
            "true",
            "plan-{k}: protect-stateful"
        );
        assert_eq!(
            s(&gate[0]["with"], "status-sha"),
            "${{ needs.stacks.outputs.sha }}"
        );
        let rec = step(apply, |st| {
            uses(st, "tag-deploy") && s(&st["with"], "command") == "record"
        });
        assert_eq!(s(&rec[0]["with"], "rollback"), "true", "apply-{k}");
        for job in [plan, apply] {
            assert!(
                step(job, |st| s(st, "run")
                    .contains("git checkout --detach \"$TARGET_SHA\""))
                .len()
                    == 1,
                "layer {k} runs the target commit"
            );
        }
    }
    let record = &jobs["stacks-record"];
    assert!(!step(record, |st| s(&st["with"], "command") == "hold").is_empty());
    assert_eq!(perms(&jobs["stacks"]), p(&[("contents", "read")]));
    assert_eq!(perms(&jobs["stacks-start"]), p(&[("contents", "read")]));
    assert!(s(&jobs["plan"], "if").contains("needs.stacks.outputs.mode == 'single'"));
}

#[test]
fn e2e_plan_template_plans_each_changed_stack_with_its_own_comment_and_summarises_them() {
    let wf = template("plan.yml");
    let jobs = wf["jobs"].as_mapping().unwrap();
    let changed = step(&jobs["stacks"], |st| uses(st, "stacks"))[0];
    assert_eq!(s(&changed["with"], "base"), "${{ steps.base.outputs.sha }}");
    // Plus what the target's next deploy applies beyond the merge base (a failed stack).
    assert_eq!(s(&changed["with"], "include-undeployed"), "true");
    assert_eq!(s(&changed["with"], "github-token"), "${{ github.token }}");
    let base = step(&jobs["stacks"], |st| s(st, "id") == "base")[0];
    assert!(s(base, "run").contains("git merge-base \"origin/${BASE_REF}\" HEAD"));
    let plan = &jobs["plan-stack"];
    assert_eq!(
        s(&plan["strategy"], "matrix"),
        "${{ fromJSON(needs.stacks.outputs.matrix) }}"
    );
    assert_eq!(plan["strategy"]["fail-fast"].as_bool(), Some(false));
    assert!(s(&plan["strategy"], "max-parallel").contains("vars.STACKS_MAX_PARALLEL"));
    let gate = step(plan, |st| uses(st, "plan-gate"))[0];
    // One comment per stack and environment: plan-gate keys it by both.
    assert_eq!(s(&gate["with"], "stack"), "${{ matrix.stack }}");
    assert_eq!(s(&gate["with"], "environment"), "${{ env.DEPLOY_ENV }}");
    assert!(!s(&gate["with"], "pr-number").is_empty());
    assert!(s(plan, "environment").ends_with("-plan"));
    assert_eq!(
        perms(plan),
        p(&[
            ("contents", "read"),
            ("id-token", "write"),
            ("pull-requests", "write")
        ])
    );
    assert_eq!(perms(&jobs["stacks"]), p(&[("contents", "read")]));
    let summary = &jobs["summary"];
    assert_eq!(needs(summary), ["stacks", "plan-stack"]);
    assert!(s(summary, "if").contains("!cancelled()"));
    assert!(perms(summary).is_empty());
    assert!(s(&jobs["plan"], "if").contains("needs.stacks.outputs.mode == 'single'"));
}
