//! The borrowed shapes of a plan's raw values: one `resource_changes` entry ([`RcRaw`]), its
//! `change` object ([`ChangeRaw`]), a value's raw JSON text ([`Raw`]) and an object's members
//! ([`Members`]). Both readers of `plan::load` produce them, and `plan::digest` and
//! `plan::values` read them; this module depends on neither, so none of them depends on another
//! through it.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

/// One `resource_changes` / `resource_drift` entry, borrowed from the document.
#[derive(Deserialize)]
pub(crate) struct RcRaw<'a> {
    #[serde(borrow, default)]
    pub address: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub module_address: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub mode: Option<Cow<'a, str>>,
    #[serde(borrow, default, rename = "type")]
    pub rtype: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub provider_name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub deposed: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub previous_address: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub action_reason: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub change: ChangeRaw<'a>,
}

/// A `change` object, borrowed.
#[derive(Deserialize)]
pub(crate) struct ChangeRaw<'a> {
    #[serde(borrow)]
    pub actions: Vec<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub before: Option<Raw<'a>>,
    #[serde(borrow, default)]
    pub after: Option<Raw<'a>>,
    #[serde(borrow, default)]
    pub after_unknown: Option<Raw<'a>>,
    #[serde(borrow, default)]
    pub before_sensitive: Option<Raw<'a>>,
    #[serde(borrow, default)]
    pub after_sensitive: Option<Raw<'a>>,
    #[serde(borrow, default)]
    pub replace_paths: Option<Raw<'a>>,
    #[serde(borrow, default)]
    pub importing: Option<Raw<'a>>,
}

impl<'a> ChangeRaw<'a> {
    /// The raw values the digest covers, in its order.
    pub(crate) fn raws(&self) -> [Option<&'a [u8]>; 7] {
        [
            self.before,
            self.after,
            self.after_unknown,
            self.before_sensitive,
            self.after_sensitive,
            self.replace_paths,
            self.importing,
        ]
        .map(|r| r.map(|r| r.0))
    }

    /// The raw value that ends last in the document.
    pub(crate) fn last_raw(&self) -> Option<&'a [u8]> {
        self.raws()
            .into_iter()
            .flatten()
            .max_by_key(|s| s.as_ptr() as usize)
    }
}

/// The raw JSON text of a value in the document, not parsed. From serde it is valid JSON; from
/// the fast path's own entry reader it is checked (with the rest of the section) before any
/// result that depends on it is used.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Raw<'a>(pub(crate) &'a [u8]);

impl<'de: 'a, 'a> Deserialize<'de> for Raw<'a> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let r: &'de RawValue = Deserialize::deserialize(d)?;
        Ok(Raw(r.get().as_bytes()))
    }
}

/// The members of a JSON object in document order, values raw.
pub(crate) struct Members<'a>(pub Vec<(Cow<'a, str>, &'a [u8])>);

/// An object key, borrowed from the document when it has no escapes.
#[derive(Deserialize)]
struct Key<'a>(#[serde(borrow)] Cow<'a, str>);

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members<'de>, A::Error> {
                let mut m = Vec::new();
                while let Some(Key(k)) = map.next_key()? {
                    let Raw(v) = map.next_value()?;
                    m.push((k, v));
                }
                Ok(Members(m))
            }
        }
        d.deserialize_map(V)
    }
}
