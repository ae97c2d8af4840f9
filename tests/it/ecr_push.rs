//! ecr-push against the real CNCF distribution registry (with and without htpasswd), two
//! registries for copies, moto for the ECR API, and a fault-injecting proxy that also counts
//! every request (re-runs with zero uploads, refusals with zero requests).

use crate::support::faultproxy::{Fault, FaultProxy};
use crate::support::moto::Moto;
use crate::support::oci;
use crate::support::registry::Registry;
use crate::support::{Run, Sandbox};
use base64::Engine;

const ECR_HOST: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com";

fn curl_get(url: &str, accept: &str) -> Vec<u8> {
    let o = std::process::Command::new("curl")
        .args(["-sSf", "-L", "-H", &format!("Accept: {accept}"), url])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "GET {url}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o.stdout
}

const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

/// Pull a tag back and check its manifest digest, and every blob byte for byte against `layout`.
fn pull_and_compare(
    host: &str,
    repo: &str,
    tag: &str,
    expect_digest: &str,
    layout: Option<&oci::Layout>,
) {
    let m = curl_get(&format!("http://{host}/v2/{repo}/manifests/{tag}"), ACCEPT);
    assert_eq!(
        oci::digest(&m),
        expect_digest,
        "manifest digest of {repo}:{tag}"
    );
    if let Some(l) = layout {
        for b in &l.blobs {
            let got = curl_get(&format!("http://{host}/v2/{repo}/blobs/{b}"), "*/*");
            let want = std::fs::read(l.dir.join("blobs/sha256").join(&b[7..])).unwrap();
            assert!(got == want, "blob {b} differs");
        }
    }
}

fn push(s: &Sandbox, source: &str, dest: &str, extra: &[&str]) -> Run {
    let mut args = vec![
        "push",
        "--source",
        source,
        "--destination",
        dest,
        "--plain-http",
    ];
    args.extend_from_slice(extra);
    s.run("ecr-push", &args)
}

fn uploads(p: &FaultProxy) -> usize {
    p.count("POST", "/blobs/uploads/")
        + p.count("PUT", "/blobs/uploads/")
        + p.count("PATCH", "/blobs/uploads/")
}

#[test]
fn ecr_push_oci_layout_round_trip_then_rerun_uploads_nothing() {
    let reg = Registry::start();
    let proxy = FaultProxy::start(reg.port);
    let s = Sandbox::actions();
    let l = oci::single(
        &s.path().join("layout"),
        1,
        &[40_000, 3_000_000, 10],
        "latest",
    );
    let dest = format!("{}/team/app:v1", proxy.host());
    let r = push(
        &s,
        &format!("{}:latest", l.dir.display()),
        &dest,
        &["--tag", "sha-abc,extra"],
    );
    r.expect_code(0);
    let out = s.outputs();
    assert_eq!(out["digest"], l.digest);
    assert_eq!(
        out["image"],
        format!("{}/team/app@{}", proxy.host(), l.digest)
    );
    assert_eq!(out["tags"], "v1,sha-abc,extra");
    assert_eq!(out["registry"], proxy.host());
    for t in ["v1", "sha-abc", "extra"] {
        pull_and_compare(&reg.host(), "team/app", t, &l.digest, Some(&l));
    }
    // Manifest pushed after every blob: the first manifest PUT comes after the last blob PUT.
    let reqs = proxy.requests();
    let last_blob = reqs
        .iter()
        .rposition(|r| r.starts_with("PUT") && r.contains("/blobs/uploads/"))
        .unwrap();
    let first_manifest = reqs
        .iter()
        .position(|r| r.starts_with("PUT") && r.contains("/manifests/"))
        .unwrap();
    assert!(last_blob < first_manifest, "{reqs:#?}");
    // Re-run: every tag already at our digest -> success, no upload, no manifest PUT.
    proxy.clear();
    let s2 = Sandbox::actions();
    let r = push(
        &s2,
        &format!("oci:{}:latest", l.dir.display()),
        &dest,
        &["--tag", "sha-abc", "--tag", "extra"],
    );
    r.expect_code(0);
    assert!(r.stdout.contains("nothing to upload"), "{}", r.stdout);
    assert_eq!(uploads(&proxy), 0, "{:#?}", proxy.requests());
    assert_eq!(proxy.count("PUT", "/manifests/"), 0);
    assert_eq!(s2.outputs()["digest"], l.digest);
}

#[test]
fn ecr_push_multi_arch_index_round_trip_and_oci_archive() {
    let reg = Registry::start();
    let s = Sandbox::actions();
    let l = oci::multi(&s.path().join("multi"), 7, "multi");
    let r = push(
        &s,
        &l.dir.display().to_string(),
        &format!("{}/multi:v1", reg.host()),
        &[],
    );
    r.expect_code(0);
    assert_eq!(s.outputs()["digest"], l.digest);
    pull_and_compare(&reg.host(), "multi", "v1", &l.digest, Some(&l));
    let index: serde_json::Value = serde_json::from_slice(&curl_get(
        &format!("http://{}/v2/multi/manifests/v1", reg.host()),
        ACCEPT,
    ))
    .unwrap();
    for m in index["manifests"].as_array().unwrap() {
        let d = m["digest"].as_str().unwrap();
        let got = curl_get(
            &format!("http://{}/v2/multi/manifests/{d}", reg.host()),
            ACCEPT,
        );
        assert_eq!(oci::digest(&got), d);
    }
    // The same index as an OCI archive (a tar of the layout).
    let tar = s.path().join("multi.tar");
    oci::tar_dir(&l.dir, &tar);
    let s2 = Sandbox::actions();
    let r = push(
        &s2,
        &format!("oci-archive:{}:multi", tar.display()),
        &format!("{}/multi-archive:v1", reg.host()),
        &[],
    );
    r.expect_code(0);
    assert_eq!(s2.outputs()["digest"], l.digest);
    pull_and_compare(&reg.host(), "multi-archive", "v1", &l.digest, Some(&l));
    // skopeo (the peer) reads it back as the same index.
    let o = std::process::Command::new(crate::support::tool("skopeo"))
        .args([
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{}/multi-archive:v1", reg.host()),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(oci::digest(&o.stdout), l.digest);
}

#[test]
fn ecr_push_docker_archive_compresses_once_and_reuses_the_cache() {
    let reg = Registry::start();
    let proxy = FaultProxy::start(reg.port);
    let s = Sandbox::actions();
    let tar = s.path().join("image.tar");
    let diff_ids = oci::docker_archive(&tar, 3, &[200_000, 50_000], "app:dev");
    let cache = s.path().join("cache");
    let dest = format!("{}/docker/app:v1", proxy.host());
    let src = format!("docker-archive:{}", tar.display());
    let r = push(&s, &src, &dest, &["--cache-dir", cache.to_str().unwrap()]);
    r.expect_code(0);
    let digest = s.outputs()["digest"].clone();
    let m: serde_json::Value = serde_json::from_slice(&curl_get(
        &format!("http://{}/v2/docker/app/manifests/v1", reg.host()),
        ACCEPT,
    ))
    .unwrap();
    assert_eq!(
        m["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    // Each pushed layer is gzip whose content is exactly the uncompressed layer (diff_id).
    for (layer, diff) in m["layers"].as_array().unwrap().iter().zip(&diff_ids) {
        let gz = curl_get(
            &format!(
                "http://{}/v2/docker/app/blobs/{}",
                reg.host(),
                layer["digest"].as_str().unwrap()
            ),
            "*/*",
        );
        assert!(gz.len() < 200_000);
        let mut raw = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut raw).unwrap();
        assert_eq!(&oci::digest(&raw), diff);
    }
    // Cached: two compressed layers, re-used; a re-run with a new tag uploads no blob.
    let cached = std::fs::read_dir(&cache)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "gz")
        })
        .count();
    assert_eq!(cached, 2);
    proxy.clear();
    let s2 = Sandbox::actions();
    let r = push(
        &s2,
        &format!("{}:app:dev", tar.display()),
        &format!("{}/docker/app:v2", proxy.host()),
        &["--cache-dir", cache.to_str().unwrap()],
    );
    r.expect_code(0);
    assert_eq!(s2.outputs()["digest"], digest, "same bytes, same digest");
    assert_eq!(uploads(&proxy), 0, "{:#?}", proxy.requests());
    assert_eq!(proxy.count("PUT", "/manifests/v2"), 1);
}

#[test]
fn ecr_push_with_htpasswd_auth_from_docker_config_or_env_never_leaks_the_password() {
    let pass = "s3cret-Registry-Pass!";
    let reg = Registry::start_with_auth("ci", pass);
    let s = Sandbox::actions();
    let l = oci::single(&s.path().join("layout"), 11, &[1000], "latest");
    // No credentials: a clear runtime failure.
    let r = push(
        &s,
        &l.dir.display().to_string(),
        &format!("{}/auth/app:v1", reg.host()),
        &[],
    );
    r.expect_code(3);
    assert!(r.all().contains("requires a login"), "{}", r.all());
    // Credentials from the environment (the action's inputs).
    let mut s = Sandbox::actions();
    s.set("GITOPS_REGISTRY_USERNAME", "ci")
        .set("GITOPS_REGISTRY_PASSWORD", pass);
    let r = push(
        &s,
        &l.dir.display().to_string(),
        &format!("{}/auth/app:v1", reg.host()),
        &[],
    );
    r.expect_code(0);
    assert!(r.stdout.contains(&format!("::add-mask::{pass}")));
    s.assert_no_leak(&r, &[pass], &[]);
    // From the docker config; a wrong password is refused with a runtime failure.
    let s = Sandbox::actions();
    let home = s.env["HOME"].clone();
    std::fs::create_dir_all(format!("{home}/.docker")).unwrap();
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("ci:{pass}"));
    std::fs::write(
        format!("{home}/.docker/config.json"),
        format!(r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#, reg.host()),
    )
    .unwrap();
    let r = push(
        &s,
        &l.dir.display().to_string(),
        &format!("{}/auth/app:v2", reg.host()),
        &[],
    );
    r.expect_code(0);
    s.assert_no_leak(&r, &[pass], &[]);
    let mut s = Sandbox::actions();
    s.set("GITOPS_REGISTRY_USERNAME", "ci")
        .set("GITOPS_REGISTRY_PASSWORD", "wrong-password-123");
    let r = push(
        &s,
        &l.dir.display().to_string(),
        &format!("{}/auth/app:v3", reg.host()),
        &[],
    );
    r.expect_code(3);
    s.assert_no_leak(&r, &["wrong-password-123"], &[]);
}

#[test]
fn ecr_push_copy_streams_across_registries_and_mounts_within_one() {
    let a = Registry::start();
    let b = Registry::start();
    let pa = FaultProxy::start(a.port);
    let pb = FaultProxy::start(b.port);
    let s = Sandbox::actions();
    let l = oci::multi(&s.path().join("multi"), 21, "m");
    push(
        &s,
        &l.dir.display().to_string(),
        &format!("{}/src/app:dev", pa.host()),
        &[],
    )
    .expect_code(0);
    // Cross-registry, by digest: bytes stream through, the index arrives whole.
    let s2 = Sandbox::actions();
    let src = format!("{}/src/app@{}", pa.host(), l.digest);
    let r = s2.run(
        "ecr-push",
        &[
            "copy",
            "--source",
            &src,
            "--destination",
            &format!("{}/prod/app:v1", pb.host()),
            "--plain-http",
        ],
    );
    r.expect_code(0);
    assert_eq!(s2.outputs()["digest"], l.digest);
    pull_and_compare(&b.host(), "prod/app", "v1", &l.digest, Some(&l));
    assert_eq!(
        pb.count("PUT", "/blobs/uploads/"),
        l.blobs
            .iter()
            .collect::<std::collections::BTreeSet<_>>()
            .len()
    );
    // A tag source is resolved to its digest and reported.
    let s3 = Sandbox::actions();
    let r = s3.run(
        "ecr-push",
        &[
            "copy",
            "--source",
            &format!("{}/src/app:dev", pa.host()),
            "--destination",
            &format!("{}/prod/app:v2", pb.host()),
            "--plain-http",
        ],
    );
    r.expect_code(0);
    assert!(
        r.stdout.contains(&format!("resolved to {}", l.digest)),
        "{}",
        r.stdout
    );
    assert_eq!(
        pb.count("PUT", "/blobs/uploads/"),
        l.blobs
            .iter()
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        "nothing uploaded twice"
    );
    // Same registry, another repository: every blob is mounted, none uploaded.
    pa.clear();
    let s4 = Sandbox::actions();
    let r = s4.run(
        "ecr-push",
        &[
            "copy",
            "--source",
            &src,
            "--destination",
            &format!("{}/staging/app:v1", pa.host()),
            "--plain-http",
        ],
    );
    r.expect_code(0);
    assert!(r.stdout.contains("mounted 5"), "{}", r.stdout);
    assert_eq!(
        pa.count("PUT", "/blobs/uploads/"),
        0,
        "{:#?}",
        pa.requests()
    );
    assert_eq!(pa.count("GET", "/blobs/"), 0);
    pull_and_compare(&a.host(), "staging/app", "v1", &l.digest, Some(&l));
}

#[test]
fn ecr_push_immutable_tag_at_another_digest_is_refused_naming_both() {
    let reg = Registry::start();
    let proxy = FaultProxy::start(reg.port);
    let s = Sandbox::actions();
    let one = oci::single(&s.path().join("one"), 31, &[1000], "latest");
    let two = oci::single(&s.path().join("two"), 32, &[1000], "latest");
    let dest = format!("{}/imm/app:v1", proxy.host());
    push(
        &s,
        &one.dir.display().to_string(),
        &dest,
        &["--immutable-tags"],
    )
    .expect_code(0);
    proxy.clear();
    let s2 = Sandbox::actions();
    let r = push(
        &s2,
        &two.dir.display().to_string(),
        &dest,
        &["--immutable-tags"],
    );
    r.expect_code(1);
    assert!(
        r.all().contains(&one.digest) && r.all().contains(&two.digest),
        "{}",
        r.all()
    );
    assert_eq!(uploads(&proxy), 0);
    assert_eq!(proxy.count("PUT", "/manifests/"), 0);
    assert!(s2.outputs().is_empty());
    pull_and_compare(&reg.host(), "imm/app", "v1", &one.digest, None);
    // Same digest again: success (idempotent re-run).
    push(
        &Sandbox::actions(),
        &one.dir.display().to_string(),
        &dest,
        &["--immutable-tags"],
    )
    .expect_code(0);
}

#[test]
fn ecr_push_survives_429_503_reset_and_manifest_blob_unknown() {
    let reg = Registry::start();
    let proxy = FaultProxy::start(reg.port);
    proxy.add(
        "POST",
        "/blobs/uploads/",
        1,
        Fault::Status(429, vec![("Retry-After".into(), "2".into())], String::new()),
    );
    proxy.add(
        "PUT",
        "/blobs/uploads/",
        1,
        Fault::Status(503, vec![], "busy".into()),
    );
    proxy.add("PUT", "/blobs/uploads/", 1, Fault::Reset);
    proxy.add(
        "PUT",
        "/manifests/",
        1,
        Fault::Status(
            400,
            vec![("Content-Type".into(), "application/json".into())],
            r#"{"errors":[{"code":"MANIFEST_BLOB_UNKNOWN","message":"blob unknown to registry"}]}"#
                .into(),
        ),
    );
    let s = Sandbox::actions();
    let l = oci::single(&s.path().join("layout"), 41, &[500_000, 20_000], "latest");
    let r = push(
        &s,
        &l.dir.display().to_string(),
        &format!("{}/faults/app:v1", proxy.host()),
        &["--parallelism", "1", "--progress-interval", "1"],
    );
    r.expect_code(0);
    assert!(r.stdout.contains("after HTTP 429"), "{}", r.stdout);
    assert!(r.stdout.contains("after HTTP 503"), "{}", r.stdout);
    assert!(r.stdout.contains("blob of manifest"), "{}", r.stdout);
    // Retry-After: 2 keeps the push running past one progress interval: a single-line report.
    assert!(
        r.stdout
            .lines()
            .any(|l| l.starts_with("progress: ") && l.contains("blobs")),
        "{}",
        r.stdout
    );
    // Every failed session was restarted from its POST.
    assert!(
        proxy.count("POST", "/blobs/uploads/") >= 3 + 2,
        "{:#?}",
        proxy.requests()
    );
    assert_eq!(proxy.count("PUT", "/manifests/"), 2);
    pull_and_compare(&reg.host(), "faults/app", "v1", &l.digest, Some(&l));
}

#[test]
fn ecr_push_refuses_upload_location_on_metadata_address_or_other_host() {
    let reg = Registry::start();
    let s = Sandbox::actions();
    let l = oci::single(&s.path().join("layout"), 51, &[1000], "latest");
    for (loc, what) in [
        (
            "http://169.254.169.254/latest/meta-data/iam/",
            "link-local/metadata",
        ),
        ("http://127.0.0.2:9/v2/x/blobs/uploads/abc", "another host"),
    ] {
        let proxy = FaultProxy::start(reg.port);
        proxy.add("POST", "/blobs/uploads/", 10, Fault::Location(loc.into()));
        let s = Sandbox::actions();
        let r = push(
            &s,
            &l.dir.display().to_string(),
            &format!("{}/redir/app:v1", proxy.host()),
            &[],
        );
        r.expect_code(1);
        assert!(r.all().contains(what), "{}", r.all());
        assert_eq!(
            proxy.count("PUT", ""),
            0,
            "nothing was sent anywhere: {:#?}",
            proxy.requests()
        );
    }
}

#[test]
fn ecr_push_bad_inputs_are_refused_before_any_request() {
    let reg = Registry::start();
    let proxy = FaultProxy::start(reg.port);
    let s = Sandbox::actions();
    let l = oci::single(&s.path().join("layout"), 61, &[100], "latest");
    let src = l.dir.display().to_string();
    let h = proxy.host();
    let long_tag = format!("{h}/app:{}", "a".repeat(129));
    let bad_digest = format!("{h}/app@sha256:{}", "A".repeat(64));
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![
                "push".into(),
                "--source".into(),
                src.clone(),
                "--destination".into(),
                format!("{h}/App:v1"),
            ],
            "destination",
        ),
        (
            vec![
                "push".into(),
                "--source".into(),
                src.clone(),
                "--destination".into(),
                long_tag,
            ],
            "destination",
        ),
        (
            vec![
                "push".into(),
                "--source".into(),
                src.clone(),
                "--destination".into(),
                format!("{h}/app:.x"),
            ],
            "destination",
        ),
        (
            vec![
                "push".into(),
                "--source".into(),
                src.clone(),
                "--destination".into(),
                format!("user:pw@{h}/app:v1"),
            ],
            "destination",
        ),
        (
            vec![
                "push".into(),
                "--source".into(),
                src.clone(),
                "--destination".into(),
                format!("{ECR_HOST}.evil.com/app:v1"),
            ],
            "destination",
        ),
        (
            vec![
                "push".into(),
                "--source".into(),
                src.clone(),
                "--destination".into(),
                format!("{h}/app:v1"),
                "--tag=-bad".into(),
            ],
            "tag",
        ),
        (
            vec![
                "push".into(),
                "--source".into(),
                src.clone(),
                "--destination".into(),
                format!("{h}/app"),
            ],
            "destination",
        ),
        (
            vec![
                "push".into(),
                "--source".into(),
                "/nonexistent/layout".into(),
                "--destination".into(),
                format!("{h}/app:v1"),
            ],
            "source",
        ),
        (
            vec![
                "push".into(),
                "--source".into(),
                src.clone(),
                "--destination".into(),
                format!("{h}/app:v1"),
                "--parallelism".into(),
                "0".into(),
            ],
            "parallelism",
        ),
        (
            vec![
                "push".into(),
                "--source".into(),
                src.clone(),
                "--destination".into(),
                format!("{h}/app:v1"),
                "--timeout".into(),
                "1d".into(),
            ],
            "timeout",
        ),
        (
            vec![
                "push".into(),
                "--source".into(),
                src.clone(),
                "--destination".into(),
                "registry.example.com/app:v1".into(),
                "--plain-http".into(),
            ],
            "plain-http",
        ),
        (
            vec![
                "push".into(),
                "--source".into(),
                src.clone(),
                "--destination".into(),
                format!("{ECR_HOST}/app:v1"),
                "--registry-endpoint".into(),
                "http://169.254.169.254/".into(),
            ],
            "registry-endpoint",
        ),
        (
            vec![
                "push".into(),
                "--source".into(),
                src.clone(),
                "--destination".into(),
                format!("{ECR_HOST}/app:v1"),
                "--expected-account".into(),
                "210987654321".into(),
            ],
            "destination",
        ),
        (
            vec![
                "copy".into(),
                "--source".into(),
                bad_digest,
                "--destination".into(),
                format!("{h}/app:v1"),
            ],
            "source",
        ),
        (
            vec![
                "copy".into(),
                "--source".into(),
                format!("{h}/app"),
                "--destination".into(),
                format!("{h}/app:v1"),
            ],
            "source",
        ),
        (
            vec!["login".into(), "--registry".into(), h.clone()],
            "registry",
        ),
    ];
    // `mount-from` names repositories of the destination registry, nothing else.
    let mut cases = cases;
    for bad in [
        format!("{h}/base"),
        "Team/Base".into(),
        "base:v1".into(),
        "ok,../up".into(),
        (0..17)
            .map(|i| format!("r{i}"))
            .collect::<Vec<_>>()
            .join(","),
    ] {
        let mut args: Vec<String> = ["push", "--plain-http", "--source", &src, "--destination"]
            .map(String::from)
            .to_vec();
        args.extend([format!("{h}/app:v1"), "--mount-from".into(), bad]);
        cases.push((args, "mount-from"));
    }
    for (args, field) in cases {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let r = s.run("ecr-push", &a);
        assert_eq!(r.code, 2, "{a:?}\n{}", r.all());
        assert!(
            r.all().contains(&format!("`{field}`")),
            "{a:?} should name {field}: {}",
            r.all()
        );
        assert!(!r.all().contains("\n::error::pwned"));
    }
    // A newline in a value cannot inject a workflow command.
    let r = s.run(
        "ecr-push",
        &[
            "push",
            "--source",
            &src,
            "--destination",
            &format!("{h}/app:v1\n::error::pwned"),
        ],
    );
    r.expect_code(2);
    assert!(
        !r.stdout.lines().any(|l| l.starts_with("::error::pwned")),
        "{}",
        r.stdout
    );
    assert!(proxy.requests().is_empty(), "{:#?}", proxy.requests());
}

fn moto_env(s: &mut Sandbox, moto: &Moto) {
    s.set("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
        .set(
            "AWS_SECRET_ACCESS_KEY",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        )
        .set("AWS_REGION", "us-east-1")
        .set("AWS_ENDPOINT_URL_ECR", moto.endpoint())
        .set("AWS_MAX_ATTEMPTS", "1");
}

#[test]
fn ecr_push_to_ecr_via_moto_creates_an_immutable_repository_and_masks_the_token() {
    let moto = Moto::start();
    let reg = Registry::start();
    let proxy = FaultProxy::start(reg.port);
    let mut s = Sandbox::actions();
    moto_env(&mut s, &moto);
    let one = oci::single(&s.path().join("one"), 71, &[2000, 100], "latest");
    let two = oci::single(&s.path().join("two"), 72, &[2000], "latest");
    let endpoint = format!("http://{}", proxy.host());
    let dest = format!("{ECR_HOST}/team/api:v1");
    // Missing repository without create-repository: a clear failure, nothing sent to the registry.
    let r = s.run(
        "ecr-push",
        &[
            "push",
            "--source",
            &one.dir.display().to_string(),
            "--destination",
            &dest,
            "--registry-endpoint",
            &endpoint,
        ],
    );
    r.expect_code(3);
    assert!(r.all().contains("does not exist"), "{}", r.all());
    assert!(proxy.requests().is_empty());
    // Created (immutable, scan on push), pushed with the ECR token as basic auth.
    let r = s.run(
        "ecr-push",
        &[
            "push",
            "--source",
            &one.dir.display().to_string(),
            "--destination",
            &dest,
            "--registry-endpoint",
            &endpoint,
            "--create-repository",
            "--expected-account",
            "123456789012",
            "--expected-region",
            "us-east-1",
        ],
    );
    r.expect_code(0);
    assert!(
        r.stdout.contains("created ECR repository team/api"),
        "{}",
        r.stdout
    );
    let out = s.outputs();
    assert_eq!(out["image"], format!("{ECR_HOST}/team/api@{}", one.digest));
    assert_eq!(out["registry"], ECR_HOST);
    pull_and_compare(&reg.host(), "team/api", "v1", &one.digest, Some(&one));
    let token_b64 = base64::engine::general_purpose::STANDARD.encode("AWS:123456789012-auth-token");
    assert!(
        r.stdout.contains(&format!("::add-mask::{token_b64}")),
        "{}",
        r.stdout
    );
    s.assert_no_leak(&r, &["123456789012-auth-token", &token_b64], &[]);
    // The repository is immutable: another image under v1 is refused, naming both digests.
    proxy.clear();
    let r = s.run(
        "ecr-push",
        &[
            "push",
            "--source",
            &two.dir.display().to_string(),
            "--destination",
            &dest,
            "--registry-endpoint",
            &endpoint,
        ],
    );
    r.expect_code(1);
    assert!(
        r.all().contains(&one.digest) && r.all().contains(&two.digest),
        "{}",
        r.all()
    );
    assert_eq!(uploads(&proxy), 0);
}

#[test]
fn ecr_push_login_writes_a_docker_config_entry_with_the_password_masked() {
    let moto = Moto::start();
    let mut s = Sandbox::actions();
    moto_env(&mut s, &moto);
    let home = s.env["HOME"].clone();
    std::fs::create_dir_all(format!("{home}/.docker")).unwrap();
    std::fs::write(
        format!("{home}/.docker/config.json"),
        r#"{"auths":{"other.example.com":{"auth":"eDp5"}},"credsStore":""}"#,
    )
    .unwrap();
    let r = s.run("ecr-push", &["login", "--registry", ECR_HOST]);
    r.expect_code(0);
    assert_eq!(s.outputs()["registry"], ECR_HOST);
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(format!("{home}/.docker/config.json")).unwrap())
            .unwrap();
    let token_b64 = base64::engine::general_purpose::STANDARD.encode("AWS:123456789012-auth-token");
    assert_eq!(cfg["auths"][ECR_HOST]["auth"], token_b64.as_str());
    assert_eq!(
        cfg["auths"]["other.example.com"]["auth"], "eDp5",
        "other entries kept"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(format!("{home}/.docker/config.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "config is private");
    s.assert_no_leak(&r, &["123456789012-auth-token", &token_b64], &[]);
}

// #21 item 14: `--format json` inside Actions: stdout is exactly one JSON object (the outputs),
// the password masks (raw and base64) are on stderr where the runner still reads them.
#[test]
fn ecr_push_json_format_is_one_document_on_stdout_inside_actions() {
    let moto = Moto::start();
    let mut s = Sandbox::actions();
    moto_env(&mut s, &moto);
    let home = s.env["HOME"].clone();
    std::fs::create_dir_all(format!("{home}/.docker")).unwrap();
    let r = s.run(
        "ecr-push",
        &["login", "--registry", ECR_HOST, "--format", "json"],
    );
    r.expect_code(0);
    assert_eq!(r.stdout.lines().count(), 1, "{}", r.stdout);
    let doc: serde_json::Value = serde_json::from_str(&r.stdout).expect("one JSON document");
    assert_eq!(doc["registry"], ECR_HOST);
    for (k, v) in s.outputs() {
        assert_eq!(doc[&k], serde_json::json!(v), "output {k}");
    }
    let token_b64 = base64::engine::general_purpose::STANDARD.encode("AWS:123456789012-auth-token");
    for m in ["123456789012-auth-token", token_b64.as_str()] {
        assert!(
            r.stderr.contains(&format!("::add-mask::{m}")),
            "mask on stderr: {}",
            r.stderr
        );
    }
    s.assert_no_leak(&r, &["123456789012-auth-token", &token_b64], &[]);
}

#[test]
fn ecr_push_gives_up_at_the_deadline_instead_of_waiting_past_it() {
    let reg = Registry::start();
    let proxy = FaultProxy::start(reg.port);
    proxy.add(
        "POST",
        "/blobs/uploads/",
        100,
        Fault::Status(
            429,
            vec![("Retry-After".into(), "30".into())],
            String::new(),
        ),
    );
    let s = Sandbox::actions();
    let l = oci::single(&s.path().join("layout"), 81, &[1000], "latest");
    let r = push(
        &s,
        &l.dir.display().to_string(),
        &format!("{}/slow/app:v1", proxy.host()),
        &["--timeout", "5s"],
    );
    r.expect_code(3);
    assert!(r.all().contains("deadline"), "{}", r.all());
    assert_eq!(proxy.count("PUT", ""), 0, "no manifest without its blobs");
}

fn blob_put_bytes(p: &FaultProxy) -> usize {
    p.seen()
        .iter()
        .filter(|x| matches!(x.method.as_str(), "PUT" | "PATCH") && x.target.contains("/blobs/"))
        .map(|x| x.body_bytes)
        .sum()
}

fn layout_bytes(l: &oci::Layout) -> usize {
    l.blobs
        .iter()
        .map(|b| {
            std::fs::metadata(l.dir.join("blobs/sha256").join(&b[7..]))
                .unwrap()
                .len() as usize
        })
        .sum()
}

/// A registry behind a counting proxy, holding one image in `team/base`, pushed with a
/// blob-info cache in `cache`.
struct Based {
    reg: Registry,
    proxy: FaultProxy,
    _s: Sandbox,
    l: oci::Layout,
    src: String,
    cache: std::path::PathBuf,
}

impl Based {
    fn new(seed: u64, sizes: &[usize]) -> Based {
        let reg = Registry::start();
        let proxy = FaultProxy::start(reg.port);
        let s = Sandbox::actions();
        let l = oci::single(&s.path().join("layout"), seed, sizes, "latest");
        let src = l.dir.display().to_string();
        let cache = s.path().join("cache");
        let b = Based {
            reg,
            proxy,
            _s: s,
            l,
            src,
            cache,
        };
        b.push_cached("team/base").expect_code(0);
        b
    }

    fn cache_file(&self) -> std::path::PathBuf {
        self.cache.join("blob-info-v1.json")
    }

    /// Push the image to `repo` (from a fresh sandbox) with the shared cache, and `extra`.
    fn push_to(&self, repo: &str, extra: &[&str]) -> Run {
        push(
            &Sandbox::actions(),
            &self.src,
            &format!("{}/{repo}:v1", self.proxy.host()),
            extra,
        )
    }

    fn push_cached(&self, repo: &str) -> Run {
        self.push_to(repo, &["--cache-dir", self.cache.to_str().unwrap()])
    }
}

#[test]
fn ecr_push_mounts_layers_another_repository_holds_and_sends_none_of_their_bytes() {
    let b = Based::new(71, &[300_000, 200_000, 10]);
    let (proxy, l) = (&b.proxy, &b.l);
    assert_eq!(
        blob_put_bytes(proxy),
        layout_bytes(l),
        "first push sends every byte once"
    );
    let file = b.cache_file();
    let text = std::fs::read_to_string(&file).unwrap();
    for d in &l.blobs {
        assert!(text.contains(d.as_str()), "{text}");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    // A new repository of the same registry: every blob is mounted (the cache knew where it
    // went), not one blob byte is sent, and the image pulls back whole.
    proxy.clear();
    let r = b.push_cached("team/app");
    r.expect_code(0);
    assert!(
        r.stdout.contains(&format!(
            "blobs uploaded 0, already present 0, mounted {}",
            l.blobs.len()
        )),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("named by the blob-info cache"),
        "{}",
        r.stdout
    );
    assert_eq!(blob_put_bytes(proxy), 0, "{:#?}", proxy.seen());
    assert_eq!(proxy.count("PUT", "/blobs/uploads/"), 0);
    let mounts = proxy.mounts();
    assert_eq!(mounts.len(), l.blobs.len(), "{mounts:#?}");
    assert!(
        mounts.iter().all(|m| m.target.contains("from=team%2Fbase")),
        "{mounts:#?}"
    );
    pull_and_compare(&b.reg.host(), "team/app", "v1", &l.digest, Some(l));
    // Without a cache, `mount-from` names the repository: the same result.
    proxy.clear();
    let r = b.push_to("team/other", &["--mount-from", "team/none, team/base"]);
    r.expect_code(0);
    assert!(r.stdout.contains("named by `mount-from`"), "{}", r.stdout);
    assert_eq!(blob_put_bytes(proxy), 0, "{:#?}", proxy.seen());
    // team/none does not hold them: 202, that session is given back, team/base mounts them.
    assert_eq!(proxy.mounts().len(), 2 * l.blobs.len());
    assert_eq!(proxy.count("DELETE", "/blobs/uploads/"), l.blobs.len());
    pull_and_compare(&b.reg.host(), "team/other", "v1", &l.digest, Some(l));
    // Across registries nothing is mounted: the cache is keyed by the registry host.
    let other = Registry::start();
    let po = FaultProxy::start(other.port);
    push(
        &Sandbox::actions(),
        &b.src,
        &format!("{}/team/app:v1", po.host()),
        &["--cache-dir", b.cache.to_str().unwrap()],
    )
    .expect_code(0);
    assert!(po.mounts().is_empty(), "{:#?}", po.seen());
    assert_eq!(blob_put_bytes(&po), layout_bytes(l));
}

#[test]
fn ecr_push_stale_cache_entry_uploads_only_because_the_registry_answered_202() {
    let b = Based::new(81, &[250_000, 20]);
    let (proxy, l) = (&b.proxy, &b.l);
    // The cache now claims a repository that holds nothing (deleted, or another registry's
    // storage behind the same address): stale.
    let file = b.cache_file();
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, text.replace("\"team/base\"", "\"team/gone\"")).unwrap();
    proxy.clear();
    let r = b.push_cached("team/app");
    r.expect_code(0);
    assert!(
        r.stdout
            .contains("registry answered 202 (upload instead) to mounting")
            && r.stdout
                .contains("from team/gone (named by the blob-info cache, `blob-info-v1.json`")
            && r.stdout
                .contains("uploading it into the session the registry opened"),
        "{}",
        r.stdout
    );
    // Each blob once: into the session the 202 opened, no second POST.
    assert_eq!(proxy.mounts().len(), l.blobs.len());
    assert_eq!(plain_upload_posts(proxy), 0, "{:#?}", proxy.seen());
    assert_eq!(blob_put_bytes(proxy), layout_bytes(l));
    pull_and_compare(&b.reg.host(), "team/app", "v1", &l.digest, Some(l));
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        !text.contains("team/gone"),
        "stale entries are forgotten: {text}"
    );
    assert!(text.contains("team/app"), "{text}");
    // A cache file that is not one is ignored, said so, and rewritten.
    std::fs::write(&file, "{not json").unwrap();
    let r = b.push_cached("team/third");
    r.expect_code(0);
    assert!(
        r.stdout
            .contains("is not a blob-info cache (invalid JSON): ignored"),
        "{}",
        r.stdout
    );
    assert!(std::fs::read_to_string(&file)
        .unwrap()
        .contains("team/third"));
}

fn plain_upload_posts(p: &FaultProxy) -> usize {
    p.seen()
        .iter()
        .filter(|x| {
            x.method == "POST"
                && x.target.contains("/blobs/uploads/")
                && !x.target.contains("mount=")
        })
        .count()
}

#[test]
fn ecr_push_mount_refused_outside_the_protocol_fails_closed_and_uploads_nothing() {
    let b = Based::new(91, &[120_000, 30]);
    let proxy = &b.proxy;
    for (code, body, want) in [
        (
            404,
            r#"{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known to registry"}]}"#,
            "answered HTTP 404 Not Found to mounting",
        ),
        (
            403,
            r#"{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}"#,
            "refused our credentials",
        ),
    ] {
        proxy.clear();
        proxy.add(
            "POST",
            "mount=",
            100,
            Fault::Status(code, vec![], body.into()),
        );
        let r = b.push_to(&format!("team/app{code}"), &["--mount-from", "team/base"]);
        r.expect_code(3);
        assert!(r.all().contains(want), "{code}: {}", r.all());
        assert!(
            r.all()
                .contains("from team/base (named by `mount-from`; drop it there, or give these credentials pull on it)"),
            "{code}: {}",
            r.all()
        );
        if code == 404 {
            assert!(r.all().contains("not uploading on a guess"), "{}", r.all());
        }
        assert_eq!(blob_put_bytes(proxy), 0, "{code}: {:#?}", proxy.seen());
        assert_eq!(proxy.count("PUT", "/manifests/"), 0);
        assert_eq!(
            plain_upload_posts(proxy),
            0,
            "no upload session was opened: {:#?}",
            proxy.seen()
        );
        // `copy` within one registry mounts from its source: the same rule.
        proxy.clear();
        let r = Sandbox::actions().run(
            "ecr-push",
            &[
                "copy",
                "--source",
                &format!("{}/team/base@{}", proxy.host(), b.l.digest),
                "--destination",
                &format!("{}/team/copy{code}:v1", proxy.host()),
                "--plain-http",
            ],
        );
        r.expect_code(3);
        assert!(r.all().contains(want), "copy {code}: {}", r.all());
        assert!(
            r.all().contains("(named by the copy source;"),
            "{}",
            r.all()
        );
        assert_eq!(blob_put_bytes(proxy), 0, "copy {code}: {:#?}", proxy.seen());
        assert_eq!(proxy.count("GET", "/blobs/"), 0, "nothing streamed");
        assert_eq!(proxy.count("PUT", "/manifests/"), 0);
        proxy.reset_rules();
    }
}

#[test]
fn ecr_push_blob_changed_on_disk_is_never_committed() {
    let reg = Registry::start();
    let proxy = FaultProxy::start(reg.port);
    let s = Sandbox::actions();
    let l = oci::single(&s.path().join("layout"), 95, &[3_000_000, 40], "latest");
    // The big layer: same size, other bytes (flipped in its last chunk), then cut short.
    let big = l
        .blobs
        .iter()
        .map(|b| l.dir.join("blobs/sha256").join(&b[7..]))
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap();
    let mut bytes = std::fs::read(&big).unwrap();
    let n = bytes.len();
    bytes[n - 1] ^= 0xff;
    let cases = [
        (
            "changed",
            bytes.clone(),
            "changed or does not match its digest while it was read: nothing was pushed",
        ),
        (
            "short",
            bytes[..n - 10].to_vec(),
            "bytes on disk but 3000000 in its descriptor",
        ),
    ];
    for (what, body, want) in cases {
        std::fs::write(&big, &body).unwrap();
        proxy.clear();
        let r = push(
            &Sandbox::actions(),
            &l.dir.display().to_string(),
            &format!("{}/team/{what}:v1", proxy.host()),
            &[],
        );
        r.expect_code(3);
        assert!(r.all().contains(want), "{what}: {}", r.all());
        assert_eq!(proxy.count("PUT", "/manifests/"), 0, "{what}");
        let big_digest = format!("sha256:{}", big.file_name().unwrap().to_str().unwrap());
        let code_big = std::process::Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-I"])
            .arg(format!(
                "http://{}/v2/team/{what}/blobs/{big_digest}",
                reg.host()
            ))
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&code_big.stdout),
            "404",
            "{what}: the changed blob is not in the registry"
        );
    }
}
