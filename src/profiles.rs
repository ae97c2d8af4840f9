//! Named AWS profiles in job-private files (oidc-login's `aws-profile`), and reading the
//! credentials an earlier step left (`role-chaining: true`, `use-existing-credentials`).
//!
//! What it owns:
//! - **Where** profiles are written ([`ProfileFiles::locate`]): `$RUNNER_TEMP/gitops-aws/config`
//!   and `.../credentials`, or the files `AWS_CONFIG_FILE` / `AWS_SHARED_CREDENTIALS_FILE` already
//!   name when those lie under `RUNNER_TEMP`. Never the runner user's `~/.aws`: a self-hosted
//!   runner keeps its home between jobs, `RUNNER_TEMP` is emptied after each one. Anything else is
//!   exit 2, before any request.
//! - **How** they are written ([`ProfileFiles::write`]): the other sections of both files are kept
//!   byte for byte (comments too); the new files are created `0600` in a `0700` directory and
//!   renamed over the old ones, so a reader never sees half a file and a second call adds a profile
//!   without losing the first.
//! - **The INI vocabulary** (pure functions, tested below): section headers (`[name]` in the
//!   credentials file, `[profile name]` / `[default]` in the config file), finding and replacing a
//!   section.
//! - **Where existing credentials come from** ([`existing_credentials`]): the SDKs' order —
//!   `AWS_ACCESS_KEY_ID` + `AWS_SECRET_ACCESS_KEY` (+ `AWS_SESSION_TOKEN`), else the `AWS_PROFILE`
//!   section of the shared credentials file.

use std::io::Write;
use std::path::{Component, Path, PathBuf};

use crate::exit::{Failure, Result};
use crate::runner::{single_line, Runner};
use crate::secret::Secret;

/// A profile name as configure-aws-credentials accepts it (no whitespace, square brackets or
/// slashes), which also keeps it one INI header: 1-64 characters, none of `#;=` or controls.
pub fn profile_name(field: &str, v: &str) -> Result<()> {
    let bad_char = |c: char| c.is_whitespace() || c.is_control() || "[]/\\#;=".contains(c);
    if v.is_empty() || v.chars().count() > 64 || v.chars().any(bad_char) {
        return Err(Failure::usage(
            field,
            format!(
                "`{}` is not a profile name (1-64 characters; no whitespace, square brackets, slashes or `#;=`)",
                single_line(v)
            ),
        ));
    }
    Ok(())
}

/// The section header of `name` in the credentials file.
pub fn credentials_header(name: &str) -> String {
    format!("[{name}]")
}

/// The section header of `name` in the config file (`[default]` has no `profile ` prefix).
pub fn config_header(name: &str) -> String {
    if name == "default" {
        "[default]".into()
    } else {
        format!("[profile {name}]")
    }
}

/// Is this line a section header, and of which section (the text between the brackets, trimmed)?
fn header_of(line: &str) -> Option<&str> {
    let t = line.trim();
    t.strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .map(str::trim)
}

/// Normalise a header for comparison: `[profile  x]` and `[ profile x ]` name the same section.
fn same_header(line: &str, header: &str) -> bool {
    let norm = |h: &str| h.split_whitespace().collect::<Vec<_>>().join(" ");
    match (header_of(line), header_of(header)) {
        (Some(a), Some(b)) => norm(a) == norm(b),
        _ => false,
    }
}

/// The `key = value` pairs of a section, or `None` if the text has no such section.
pub fn section(text: &str, header: &str) -> Option<Vec<(String, String)>> {
    let mut lines = text.lines();
    lines.find(|l| same_header(l, header))?;
    Some(
        lines
            .take_while(|l| header_of(l).is_none())
            .filter(|l| !l.trim_start().starts_with(['#', ';']))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect(),
    )
}

/// `text` with the section `header` replaced by `body` (appended if absent). Every other line is
/// kept as it was; a duplicate of the section further down is dropped too.
pub fn upsert(text: &str, header: &str, body: &[(&str, &str)]) -> String {
    let mut out = String::new();
    let mut skipping = false;
    for line in text.lines() {
        if header_of(line).is_some() {
            skipping = same_header(line, header);
        }
        if !skipping {
            out.push_str(line);
            out.push('\n');
        }
    }
    if !out.is_empty() && !out.ends_with("\n\n") {
        out.push('\n');
    }
    out.push_str(header);
    out.push('\n');
    for (k, v) in body {
        out.push_str(&format!("{k} = {v}\n"));
    }
    out
}

/// Long-lived or temporary credentials found in the environment or a profile.
#[derive(Debug, Clone)]
pub struct FoundCredentials {
    /// Access key id.
    pub access_key_id: Secret,
    /// Secret access key.
    pub secret_access_key: Secret,
    /// Session token (empty for IAM user keys).
    pub session_token: Secret,
    /// Where they came from, for messages (`AWS_ACCESS_KEY_ID`, `profile x in <file>`).
    pub origin: String,
}

/// The credentials an earlier step left, in the SDKs' order: the `AWS_*` key variables, else the
/// `AWS_PROFILE` section of `AWS_SHARED_CREDENTIALS_FILE` (default `~/.aws/credentials`, read
/// only). `Ok(None)`: there are none. A named profile that is missing or lacks a key is exit 2.
pub fn existing_credentials(runner: &Runner) -> Result<Option<FoundCredentials>> {
    let var = |n: &str| runner.var(n).filter(|v| !v.is_empty());
    if let (Some(id), Some(key)) = (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
        return Ok(Some(FoundCredentials {
            access_key_id: Secret::new(id),
            secret_access_key: Secret::new(key),
            session_token: Secret::new(var("AWS_SESSION_TOKEN").unwrap_or("")),
            origin: "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY".into(),
        }));
    }
    let Some(profile) = var("AWS_PROFILE") else {
        return Ok(None);
    };
    profile_name("AWS_PROFILE", profile)?;
    let path = match var("AWS_SHARED_CREDENTIALS_FILE") {
        Some(p) => PathBuf::from(p),
        None => match var("HOME") {
            Some(h) => Path::new(h).join(".aws/credentials"),
            None => return Ok(None),
        },
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => {
            return Err(Failure::usage(
                "AWS_PROFILE",
                format!("cannot read {}: {e}", path.display()),
            ))
        }
    };
    let origin = format!("profile `{profile}` in {}", path.display());
    let Some(pairs) = section(&text, &credentials_header(profile)) else {
        return Err(Failure::usage(
            "AWS_PROFILE",
            format!("names {origin}, which does not exist (only keys in the shared credentials file are read)"),
        ));
    };
    let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    match (get("aws_access_key_id"), get("aws_secret_access_key")) {
        (Some(id), Some(key)) if !id.is_empty() && !key.is_empty() => Ok(Some(FoundCredentials {
            access_key_id: Secret::new(id),
            secret_access_key: Secret::new(key),
            session_token: Secret::new(get("aws_session_token").unwrap_or("")),
            origin,
        })),
        _ => Err(Failure::usage(
            "AWS_PROFILE",
            format!("names {origin}, which has no aws_access_key_id and aws_secret_access_key"),
        )),
    }
}

/// The two files a profile is written to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileFiles {
    /// `AWS_CONFIG_FILE`: the profile's region.
    pub config: PathBuf,
    /// `AWS_SHARED_CREDENTIALS_FILE`: its keys.
    pub credentials: PathBuf,
}

/// Is `p` lexically inside `dir` (absolute, no `..`)?
fn inside(p: &Path, dir: &Path) -> bool {
    p.is_absolute()
        && !p.components().any(|c| matches!(c, Component::ParentDir))
        && p.starts_with(dir)
        && p != dir
}

impl ProfileFiles {
    /// Where `aws-profile` writes: see the module doc. Exit 2 without `RUNNER_TEMP`, or when
    /// `AWS_CONFIG_FILE` / `AWS_SHARED_CREDENTIALS_FILE` point outside it.
    pub fn locate(runner: &Runner) -> Result<ProfileFiles> {
        let temp = runner
            .var("RUNNER_TEMP")
            .filter(|t| Path::new(t).is_absolute())
            .ok_or_else(|| {
                Failure::usage(
                    "aws-profile",
                    "needs the runner's job-private directory RUNNER_TEMP (an absolute path) to \
                     write the profile into; oidc-login never writes the runner user's ~/.aws",
                )
            })?;
        let temp = Path::new(temp);
        let dir = temp.join("gitops-aws");
        let pick = |var: &str, default: &str| -> Result<PathBuf> {
            match runner.var(var).filter(|v| !v.is_empty()) {
                None => Ok(dir.join(default)),
                Some(v) if inside(Path::new(v), temp) => Ok(PathBuf::from(v)),
                Some(v) => Err(Failure::usage(
                    "aws-profile",
                    format!(
                        "would be written to {var}={}, which is outside the job-private RUNNER_TEMP ({}); \
                         unset {var} or point it under RUNNER_TEMP",
                        single_line(v),
                        temp.display()
                    ),
                )),
            }
        };
        Ok(ProfileFiles {
            config: pick("AWS_CONFIG_FILE", "config")?,
            credentials: pick("AWS_SHARED_CREDENTIALS_FILE", "credentials")?,
        })
    }

    /// Does either file already hold profile `name`?
    pub fn has(&self, name: &str) -> Result<bool> {
        Ok(
            section(&read(&self.credentials)?, &credentials_header(name)).is_some()
                || section(&read(&self.config)?, &config_header(name)).is_some(),
        )
    }

    /// Write profile `name` (keys to the credentials file, region to the config file), keeping
    /// every other profile. Each file is replaced atomically, mode 0600.
    pub fn write(&self, name: &str, creds: &FoundCredentials, region: &str) -> Result<()> {
        let mut keys = vec![
            ("aws_access_key_id", creds.access_key_id.expose()),
            ("aws_secret_access_key", creds.secret_access_key.expose()),
        ];
        if !creds.session_token.expose().is_empty() {
            keys.push(("aws_session_token", creds.session_token.expose()));
        }
        let text = upsert(&read(&self.credentials)?, &credentials_header(name), &keys);
        replace(&self.credentials, &text)?;
        let text = upsert(
            &read(&self.config)?,
            &config_header(name),
            &[("region", region)],
        );
        replace(&self.config, &text)
    }
}

fn read(p: &Path) -> Result<String> {
    match std::fs::read_to_string(p) {
        Ok(t) => Ok(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(Failure::runtime(format!(
            "cannot read {}: {e}",
            p.display()
        ))),
    }
}

/// Replace `path` with `text`: a new 0600 file beside it, synced, renamed over it.
fn replace(path: &Path, text: &str) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let fail = |what: &str, e: std::io::Error| {
        Failure::runtime(format!("cannot {what} {}: {e}", path.display()))
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| fail("create the directory of", e))?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("aws");
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| fail("write", e))?;
    let written = f
        .write_all(text.as_bytes())
        .and_then(|_| f.sync_all())
        .and_then(|_| std::fs::rename(&tmp, path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(fail("write", e));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn profile_names() {
        for ok in ["dev", "prod-eu_1", "default", "a.b@c", &"p".repeat(64)] {
            profile_name("aws-profile", ok).unwrap();
        }
        for bad in [
            "",
            "a b",
            "a\tb",
            "[x]",
            "a/b",
            "a\\b",
            "a#b",
            "a;b",
            "a=b",
            "a\nb",
            &"p".repeat(65),
        ] {
            let e = profile_name("aws-profile", bad).unwrap_err().to_string();
            assert!(e.contains("`aws-profile`"), "{bad:?}: {e}");
        }
        assert_eq!(config_header("default"), "[default]");
        assert_eq!(config_header("dev"), "[profile dev]");
        assert_eq!(credentials_header("dev"), "[dev]");
    }

    #[test]
    fn upsert_keeps_other_sections_and_replaces_its_own() {
        let text = "# mine\n[a]\nk = 1\n\n[ profile  b ]\nregion=x\n; note\n[c]\nk=3\n";
        let out = upsert(text, "[profile b]", &[("region", "y")]);
        assert_eq!(
            out,
            "# mine\n[a]\nk = 1\n\n[c]\nk=3\n\n[profile b]\nregion = y\n"
        );
        assert_eq!(
            section(&out, "[profile b]").unwrap(),
            [("region".to_string(), "y".to_string())]
        );
        assert_eq!(
            section(&out, "[a]").unwrap(),
            [("k".to_string(), "1".to_string())]
        );
        assert!(section(&out, "[b]").is_none());
        // Appending to nothing, and a duplicate section dropped with the first.
        assert_eq!(upsert("", "[x]", &[("k", "v")]), "[x]\nk = v\n");
        assert_eq!(
            upsert("[x]\nk=1\n[y]\n[x]\nk=2\n", "[x]", &[("k", "3")]),
            "[y]\n\n[x]\nk = 3\n"
        );
        // Comments inside a section are not values.
        assert_eq!(section("[x]\n# k = 1\nj = 2\n", "[x]").unwrap().len(), 1);
    }

    fn runner(vars: &[(&str, &str)]) -> Runner {
        let env: BTreeMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let sink = || -> crate::runner::Sink {
            std::sync::Arc::new(std::sync::Mutex::new(std::io::sink()))
        };
        Runner::new(env, sink(), sink())
    }

    #[test]
    fn files_stay_under_runner_temp() {
        let f = ProfileFiles::locate(&runner(&[("RUNNER_TEMP", "/rt")])).unwrap();
        assert_eq!(f.config, Path::new("/rt/gitops-aws/config"));
        assert_eq!(f.credentials, Path::new("/rt/gitops-aws/credentials"));
        let f = ProfileFiles::locate(&runner(&[
            ("RUNNER_TEMP", "/rt"),
            ("AWS_CONFIG_FILE", "/rt/x/config"),
        ]))
        .unwrap();
        assert_eq!(f.config, Path::new("/rt/x/config"));
        for vars in [
            vec![],
            vec![("RUNNER_TEMP", "rt")],
            vec![
                ("RUNNER_TEMP", "/rt"),
                ("AWS_CONFIG_FILE", "/home/u/.aws/config"),
            ],
            vec![
                ("RUNNER_TEMP", "/rt"),
                ("AWS_SHARED_CREDENTIALS_FILE", "/rt/../etc/x"),
            ],
            vec![
                ("RUNNER_TEMP", "/rt"),
                ("AWS_SHARED_CREDENTIALS_FILE", "/rtx/c"),
            ],
            vec![
                ("RUNNER_TEMP", "/rt"),
                ("AWS_SHARED_CREDENTIALS_FILE", "/rt"),
            ],
        ] {
            let e = ProfileFiles::locate(&runner(&vars)).unwrap_err();
            assert_eq!(e.class.code(), 2, "{vars:?}");
            assert!(e.to_string().contains("`aws-profile`"), "{vars:?}: {e}");
        }
    }

    #[test]
    fn write_adds_a_profile_atomically_with_mode_0600() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let files = ProfileFiles {
            config: d.path().join("g/config"),
            credentials: d.path().join("g/credentials"),
        };
        let creds = |id: &str, tok: &str| FoundCredentials {
            access_key_id: Secret::new(id),
            secret_access_key: Secret::new("s3cr3t"),
            session_token: Secret::new(tok),
            origin: "test".into(),
        };
        assert!(!files.has("a").unwrap());
        files
            .write("a", &creds("AKA", "tokA"), "eu-west-1")
            .unwrap();
        files.write("b", &creds("AKB", ""), "us-east-1").unwrap();
        assert!(files.has("a").unwrap() && files.has("b").unwrap());
        let c = std::fs::read_to_string(&files.credentials).unwrap();
        assert_eq!(
            c,
            "[a]\naws_access_key_id = AKA\naws_secret_access_key = s3cr3t\naws_session_token = tokA\n\n\
             [b]\naws_access_key_id = AKB\naws_secret_access_key = s3cr3t\n"
        );
        let g = std::fs::read_to_string(&files.config).unwrap();
        assert_eq!(
            g,
            "[profile a]\nregion = eu-west-1\n\n[profile b]\nregion = us-east-1\n"
        );
        for p in [&files.config, &files.credentials] {
            let mode = std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", p.display());
        }
        let dmode = std::fs::metadata(d.path().join("g"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(dmode, 0o700);
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(d.path().join("g")).unwrap().count(), 2);

        // Read back as a chaining source: AWS_PROFILE picks the section.
        let r = runner(&[
            ("AWS_PROFILE", "a"),
            (
                "AWS_SHARED_CREDENTIALS_FILE",
                files.credentials.to_str().unwrap(),
            ),
        ]);
        let found = existing_credentials(&r).unwrap().unwrap();
        assert_eq!(found.access_key_id.expose(), "AKA");
        assert_eq!(found.session_token.expose(), "tokA");
        // Environment keys come first; a named profile that does not exist is exit 2.
        let r = runner(&[
            ("AWS_ACCESS_KEY_ID", "ENVK"),
            ("AWS_SECRET_ACCESS_KEY", "ENVS"),
            ("AWS_PROFILE", "a"),
        ]);
        assert_eq!(
            existing_credentials(&r)
                .unwrap()
                .unwrap()
                .access_key_id
                .expose(),
            "ENVK"
        );
        let r = runner(&[
            ("AWS_PROFILE", "zz"),
            (
                "AWS_SHARED_CREDENTIALS_FILE",
                files.credentials.to_str().unwrap(),
            ),
        ]);
        assert_eq!(existing_credentials(&r).unwrap_err().class.code(), 2);
        assert!(existing_credentials(&runner(&[("AWS_ACCESS_KEY_ID", "x")]))
            .unwrap()
            .is_none());
    }
}
