//! The reference path of the plan reader: pass one ([`super::prescan`]) streams the file on a
//! second core while pass two deserializes the whole document with serde seeds. It owns every
//! refusal and its wording; the fast path must give exactly its answer.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use super::prescan::prescan;
use super::{actions_of, finish, mapped, take_change, Builder, Limits, PendingOutput, Release};
use crate::plan::raw::{ChangeRaw, Raw, RcRaw};
use crate::plan::{PlanError, Summary};

/// The reference reader: pass one streams the file while pass two parses the mapping.
pub(super) fn reference(
    file: &File,
    map: &mapped::Map,
    start: usize,
    limits: &Limits,
    size: u64,
) -> Result<Summary, PlanError> {
    let bytes = map.bytes();
    // Pass one (streamed checks) runs on a second core while pass two parses. Pass two is safe
    // on any input (serde_json validates what it reads and has its own recursion limit); when
    // pass one refuses the file, its reason wins and pass two's result is dropped.
    let (pre, parsed) = std::thread::scope(|sc| {
        let h = sc.spawn(|| prescan(&mut &*file, limits));
        let parsed = parse_slice(&bytes[start..], Some(map));
        (h.join(), parsed)
    });
    match pre {
        Ok(r) => r?,
        Err(_) => return Err(PlanError::Io("the reader thread failed".into())),
    };
    let mut summary = parsed?;
    summary.bytes = size;
    Ok(summary)
}

pub(super) fn parse_slice(bytes: &[u8], map: Option<&mapped::Map>) -> Result<Summary, PlanError> {
    let b = Builder::new(map);
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let r = TopSeed(&b).deserialize(&mut de).and_then(|()| de.end());
    if let Err(e) = r {
        if let Some(f) = b.fail.borrow_mut().take() {
            return Err(f);
        }
        let msg = e.to_string();
        if msg.contains("recursion limit exceeded") {
            return Err(PlanError::TooDeep {
                limit: 128,
                offset: 0,
            });
        }
        if msg.starts_with("trailing characters") {
            return Err(PlanError::TrailingGarbage {
                line: e.line(),
                column: e.column(),
            });
        }
        if msg.starts_with("invalid type") && e.line() == 1 && e.column() <= 1 {
            return Err(PlanError::NotAnObject);
        }
        return Err(PlanError::Syntax(sanitize_serde(&msg)));
    }
    finish(b)
}

/// serde messages quote offending values (`invalid type: string "..."`): drop the quoted parts so
/// that no byte of the document (which may be a secret) reaches the log.
fn sanitize_serde(msg: &str) -> String {
    let mut out = String::new();
    let mut in_q = false;
    for c in msg.chars() {
        if c == '"' {
            in_q = !in_q;
            if in_q {
                out.push_str("(value)");
            }
            continue;
        }
        if !in_q {
            out.push(c);
        }
    }
    crate::runner::single_line(&out)
}

struct TopSeed<'b, 'm>(&'b Builder<'m>);

impl<'de> DeserializeSeed<'de> for TopSeed<'_, '_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for TopSeed<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a Terraform plan JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let b = self.0;
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            if !b.seen_keys.borrow_mut().insert(key.to_string()) {
                return Err(b.refuse(PlanError::DuplicateKey(key.into_owned())));
            }
            map.next_value_seed(KeySeed {
                b,
                key: key.as_ref(),
            })?;
        }
        Ok(())
    }
}

/// The value of one top-level key.
pub(super) struct KeySeed<'b, 'm, 'k> {
    pub(super) b: &'b Builder<'m>,
    pub(super) key: &'k str,
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_, '_, '_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        let b = self.b;
        match self.key {
            "format_version" => {
                let raw: &RawValue = Deserialize::deserialize(d)?;
                let v = match serde_json::from_str::<Value>(raw.get()) {
                    Ok(Value::String(s)) => s,
                    _ => return Err(b.refuse::<D::Error>(PlanError::FormatVersionNotString)),
                };
                check_version(&v).map_err(|e| b.refuse::<D::Error>(e))?;
                b.format_seen.set(true);
                b.summary.borrow_mut().format_version = v;
            }
            "terraform_version" => {
                let v: Value = Deserialize::deserialize(d)?;
                if let Value::String(s) = v {
                    b.summary.borrow_mut().terraform_version = s;
                }
            }
            "errored" => {
                let v: Option<bool> = Deserialize::deserialize(d)?;
                b.summary.borrow_mut().errored = v.unwrap_or(false);
            }
            "applyable" => {
                let v: Option<bool> = Deserialize::deserialize(d)?;
                b.summary.borrow_mut().applyable = v;
            }
            "resource_changes" => ChangesSeed { b, drift: false }.deserialize(d)?,
            "resource_drift" => ChangesSeed { b, drift: true }.deserialize(d)?,
            "output_changes" => OutputsSeed(b).deserialize(d)?,
            "variables" => {
                let v: Option<BTreeMap<String, VarRaw<'de>>> = Deserialize::deserialize(d)?;
                let mut vars = b.variables.borrow_mut();
                for (k, var) in v.unwrap_or_default() {
                    if let Some(raw) = var.value {
                        vars.insert(k, raw.get().to_string());
                    }
                }
            }
            "configuration" => {
                let c: Option<ConfigRaw> = Deserialize::deserialize(d)?;
                let (root, providers) = match c {
                    Some(c) => (c.root_module, c.provider_config.unwrap_or_default()),
                    None => (None, BTreeMap::new()),
                };
                b.summary.borrow_mut().engine = crate::plan::Engine::from_provider_names(
                    providers.values().filter_map(|p| p.full_name.as_deref()),
                );
                if let Some(root) = root {
                    let mut sv = b.sensitive_vars.borrow_mut();
                    for (k, v) in root.variables.unwrap_or_default() {
                        if v.sensitive {
                            sv.insert(k);
                        }
                    }
                    let mut so = b.sensitive_outputs_cfg.borrow_mut();
                    for (k, v) in root.outputs.unwrap_or_default() {
                        if v.sensitive {
                            so.insert(k);
                        }
                    }
                }
            }
            "relevant_attributes" => {
                let v: Option<Vec<RelAttr>> = Deserialize::deserialize(d)?;
                b.summary.borrow_mut().relevant = Some(
                    v.unwrap_or_default()
                        .into_iter()
                        .map(|r| r.resource)
                        .collect(),
                );
            }
            _ => Skip {
                rel: &b.rel,
                depth: 1,
            }
            .deserialize(d)?,
        }
        Ok(())
    }
}

fn check_version(v: &str) -> Result<(), PlanError> {
    let parts: Vec<&str> = v.split('.').collect();
    let numeric = (2..=3).contains(&parts.len())
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 6 && p.bytes().all(|c| c.is_ascii_digit()));
    if !numeric || !(parts[0] == "0" || parts[0] == "1") {
        return Err(PlanError::UnsupportedVersion(v.to_string()));
    }
    Ok(())
}

#[derive(Deserialize)]
struct VarRaw<'a> {
    #[serde(borrow, default)]
    value: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct ConfigRaw {
    #[serde(default)]
    root_module: Option<ConfigModule>,
    /// Which registry the providers come from tells OpenTofu from Terraform.
    #[serde(default)]
    provider_config: Option<BTreeMap<String, ProviderConfig>>,
}

#[derive(Deserialize)]
struct ProviderConfig {
    #[serde(default)]
    full_name: Option<String>,
}

#[derive(Deserialize)]
struct ConfigModule {
    #[serde(default)]
    variables: Option<BTreeMap<String, ConfigSensitive>>,
    #[serde(default)]
    outputs: Option<BTreeMap<String, ConfigSensitive>>,
}

#[derive(Deserialize)]
struct ConfigSensitive {
    #[serde(default)]
    sensitive: bool,
}

#[derive(Deserialize)]
struct RelAttr {
    #[serde(default)]
    resource: String,
}

/// Skips a value, releasing consumed pages as it goes (big sections: `prior_state`,
/// `planned_values`, `configuration`, `checks`).
struct Skip<'r, 'm> {
    rel: &'r Release<'m>,
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for Skip<'_, '_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        if self.depth >= 7 || self.rel.map.is_none() {
            let raw: &RawValue = Deserialize::deserialize(d)?;
            self.rel.after(raw.get());
            Ok(())
        } else {
            d.deserialize_any(self)
        }
    }
}

impl<'de> Visitor<'de> for Skip<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_key::<IgnoredAny>()?.is_some() {
            map.next_value_seed(Skip {
                rel: self.rel,
                depth: self.depth + 1,
            })?;
        }
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq
            .next_element_seed(Skip {
                rel: self.rel,
                depth: self.depth + 1,
            })?
            .is_some()
        {}
        Ok(())
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<(), E> {
        self.rel.after(s);
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_none<E>(self) -> Result<(), E> {
        Ok(())
    }
}

struct ChangesSeed<'b, 'm> {
    b: &'b Builder<'m>,
    drift: bool,
}

impl<'de> DeserializeSeed<'de> for ChangesSeed<'_, '_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_option(self)
    }
}

impl<'de> Visitor<'de> for ChangesSeed<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of resource changes")
    }
    fn visit_none<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(rc) = seq.next_element::<RcRaw<'de>>()? {
            take_change(self.b, rc, self.drift, None).map_err(|e| self.b.refuse::<A::Error>(e))?;
        }
        Ok(())
    }
}

struct OutputsSeed<'b, 'm>(&'b Builder<'m>);

impl<'de> DeserializeSeed<'de> for OutputsSeed<'_, '_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        let m: Option<BTreeMap<String, ChangeRaw<'de>>> = Deserialize::deserialize(d)?;
        let b = self.0;
        for (name, ch) in m.unwrap_or_default() {
            let action = actions_of(&format!("output.{name}"), &ch.actions)
                .map_err(|e| b.refuse::<D::Error>(e))?;
            let own = |r: Option<Raw<'_>>| r.map(|r| String::from_utf8_lossy(r.0).into_owned());
            b.pending_outputs.borrow_mut().push(PendingOutput {
                name,
                action,
                before: own(ch.before),
                after: own(ch.after),
                after_unknown: own(ch.after_unknown),
                before_sensitive: own(ch.before_sensitive),
                after_sensitive: own(ch.after_sensitive),
            });
        }
        Ok(())
    }
}
