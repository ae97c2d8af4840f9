//! The docker client configuration (`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`):
//! reading basic credentials for a registry, and writing a login entry (`ecr-push login`).
//! Credential helpers (`credsStore`, `credHelpers`) are not run.

use std::path::PathBuf;

use base64::Engine;

use crate::exit::{Failure, Result};
use crate::secret::Secret;

/// The config file path for an environment lookup.
pub fn path(env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    if let Some(d) = env("DOCKER_CONFIG") {
        return Some(PathBuf::from(d).join("config.json"));
    }
    env("HOME").map(|h| PathBuf::from(h).join(".docker/config.json"))
}

/// Basic credentials for `host` from the docker config, if any.
pub fn credentials(
    env: &dyn Fn(&str) -> Option<String>,
    host: &str,
) -> Result<Option<(String, Secret)>> {
    let Some(p) = path(env) else { return Ok(None) };
    let text = match std::fs::read(&p) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(Failure::runtime(format!(
                "cannot read {}: {e}",
                p.display()
            )))
        }
    };
    let v: serde_json::Value = serde_json::from_slice(&text)
        .map_err(|_| Failure::runtime(format!("{} is not valid JSON", p.display())))?;
    let Some(auths) = v.get("auths").and_then(|a| a.as_object()) else {
        return Ok(None);
    };
    let keys = [
        host.to_string(),
        format!("https://{host}"),
        format!("http://{host}"),
        format!("https://{host}/v1/"),
        format!("https://{host}/v2/"),
    ];
    let Some(entry) = keys.iter().find_map(|k| auths.get(k)) else {
        return Ok(None);
    };
    if let Some(a) = entry
        .get("auth")
        .and_then(|a| a.as_str())
        .filter(|a| !a.is_empty())
    {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(a.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| {
                Failure::runtime(format!(
                    "the docker config entry for {host} is not base64 `user:password`"
                ))
            })?;
        let (u, pw) = raw.split_once(':').ok_or_else(|| {
            Failure::runtime(format!("the docker config entry for {host} has no `:`"))
        })?;
        return Ok(Some((u.to_string(), Secret::new(pw))));
    }
    match (
        entry.get("username").and_then(|u| u.as_str()),
        entry.get("password").and_then(|u| u.as_str()),
    ) {
        (Some(u), Some(pw)) => Ok(Some((u.to_string(), Secret::new(pw)))),
        _ => Ok(None),
    }
}

/// Add or replace the entry for `host` (other entries kept), file mode 0600. Returns the path.
pub fn write_login(
    env: &dyn Fn(&str) -> Option<String>,
    host: &str,
    b64: &Secret,
) -> Result<PathBuf> {
    let p = path(env).ok_or_else(|| Failure::runtime("neither DOCKER_CONFIG nor HOME is set"))?;
    let mut v: serde_json::Value = match std::fs::read(&p) {
        Ok(t) => serde_json::from_slice(&t).map_err(|_| {
            Failure::runtime(format!(
                "{} is not valid JSON: not touching it",
                p.display()
            ))
        })?,
        Err(_) => serde_json::json!({}),
    };
    if !v.is_object() {
        return Err(Failure::runtime(format!(
            "{} is not a JSON object",
            p.display()
        )));
    }
    let auths = v
        .as_object_mut()
        .expect("object")
        .entry("auths")
        .or_insert_with(|| serde_json::json!({}));
    if !auths.is_object() {
        *auths = serde_json::json!({});
    }
    auths.as_object_mut().expect("object").insert(
        host.to_string(),
        serde_json::json!({ "auth": b64.expose() }),
    );
    if let Some(dir) = p.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = p.with_extension("json.tmp");
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(&serde_json::to_vec_pretty(&v).expect("json"))?;
    }
    std::fs::rename(&tmp, &p)?;
    Ok(p)
}
