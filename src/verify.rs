//! Verification after a deploy: the checks an environment declares under `verify:` in
//! `.github/gitops.yml`, their validation, and the pure decision [`decide`] that turns what was
//! observed so far into passed / failed / pending. `tag-deploy verify` only observes (HTTP
//! probes through `net`, CloudWatch alarms through `aws`, commit statuses through `github`)
//! and asks [`decide`] after every round.
//!
//! ```yaml
//! environments:
//!   - name: prod
//!     branch: prod
//!     verify:
//!       window: 5m            # how long the checks run after the apply (at most 1h)
//!       interval: 10s         # pause between rounds (default 10s)
//!       auto-rollback: true   # a failed verification rolls back to `previous` (default false)
//!       http:
//!         - name: health
//!           url: https://app.example.com/health   # or url-from-output / url-from-variable
//!           status: 200       # default 200
//!           body: "ok"        # optional: the body must contain this text
//!           successes: 3      # consecutive successes needed (default 3)
//!           timeout: 5s       # per request (default 5s)
//!       alarms:               # CloudWatch: must stay out of ALARM for the whole window
//!         names: [app-5xx]
//!         tag: { key: service, value: app }
//!       github:               # commit statuses / check runs on the deployed sha, green
//!         contexts: [smoke-tests]
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use crate::validate::{self, DurationRule};

/// The `verify:` block of one environment, as written (validated by [`Checks::new`]).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Config {
    /// How long the checks run after the apply.
    pub window: String,
    /// Pause between rounds.
    #[serde(default)]
    pub interval: Option<String>,
    /// Roll back to `previous` automatically when the verification fails.
    #[serde(default)]
    pub auto_rollback: bool,
    /// HTTP probes.
    #[serde(default)]
    pub http: Vec<HttpConfig>,
    /// CloudWatch alarms.
    #[serde(default)]
    pub alarms: Option<AlarmsConfig>,
    /// GitHub commit statuses / check runs.
    #[serde(default)]
    pub github: Option<GithubConfig>,
}

/// One HTTP probe, as written.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct HttpConfig {
    /// Name shown in reports and trailers.
    pub name: String,
    /// A literal http(s) URL.
    #[serde(default)]
    pub url: Option<String>,
    /// The name of a Terraform output holding the URL (`terraform-outputs` input).
    #[serde(default)]
    pub url_from_output: Option<String>,
    /// The name of a variable holding the URL (`variables` input).
    #[serde(default)]
    pub url_from_variable: Option<String>,
    /// Expected status.
    #[serde(default)]
    pub status: Option<u16>,
    /// Text the body must contain.
    #[serde(default)]
    pub body: Option<String>,
    /// Consecutive successes needed.
    #[serde(default)]
    pub successes: Option<u32>,
    /// Per-request timeout.
    #[serde(default)]
    pub timeout: Option<String>,
}

/// The alarms, as written.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct AlarmsConfig {
    /// Alarm names.
    #[serde(default)]
    pub names: Vec<String>,
    /// Every alarm carrying this tag.
    #[serde(default)]
    pub tag: Option<TagConfig>,
}

/// A tag selector.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TagConfig {
    /// Tag key.
    pub key: String,
    /// Tag value.
    pub value: String,
}

/// The GitHub checks, as written.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GithubConfig {
    /// Commit-status contexts or check-run names that must be green on the deployed sha.
    pub contexts: Vec<String>,
}

/// A `verify:` block that does not validate: the key and the rule (never the value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// The key below `verify`, e.g. `http[1].url`.
    pub key: String,
    /// What it must be.
    pub rule: &'static str,
}

fn invalid(key: impl Into<String>, rule: &'static str) -> Invalid {
    Invalid {
        key: key.into(),
        rule,
    }
}

/// Where a probe's URL comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlSource {
    /// Written in the file.
    Literal(url::Url),
    /// A Terraform output of that name.
    Output(String),
    /// A variable of that name.
    Variable(String),
}

/// A validated HTTP probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpProbe {
    /// Name.
    pub name: String,
    /// The URL's source.
    pub url: UrlSource,
    /// Expected status.
    pub status: u16,
    /// Text the body must contain.
    pub body: Option<String>,
    /// Consecutive successes needed.
    pub successes: u32,
    /// Per-request timeout.
    pub timeout: Duration,
}

/// Validated alarm selection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alarms {
    /// Alarm names.
    pub names: Vec<String>,
    /// Tag selector `(key, value)`.
    pub tag: Option<(String, String)>,
}

/// A validated `verify:` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checks {
    /// How long the checks run.
    pub window: Duration,
    /// Pause between rounds.
    pub interval: Duration,
    /// Roll back automatically on failure.
    pub auto_rollback: bool,
    /// HTTP probes.
    pub http: Vec<HttpProbe>,
    /// Alarms, if any.
    pub alarms: Option<Alarms>,
    /// GitHub contexts that must be green.
    pub github: Vec<String>,
}

const WINDOW: DurationRule = DurationRule {
    min_secs: 1,
    max_secs: 3600,
    days: false,
    rule: "like `30s` or `5m` (1s to 1h)",
};
const INTERVAL: DurationRule = DurationRule {
    min_secs: 1,
    max_secs: 600,
    days: false,
    rule: "like `10s` (1s to 10m)",
};
const TIMEOUT: DurationRule = DurationRule {
    min_secs: 1,
    max_secs: 120,
    days: false,
    rule: "like `5s` (1s to 2m)",
};
const MAX_PROBES: usize = 20;
const MAX_NAMES: usize = 100;

/// A check name, a context, an alarm name, an output or variable name: 1-255 printable
/// characters, one line.
fn name_ok(v: &str, max: usize) -> bool {
    !v.trim().is_empty() && v.chars().count() <= max && !v.chars().any(char::is_control)
}

/// Validate a probe URL: http(s), a host, no credentials, no forbidden address literal.
pub fn probe_url(v: &str) -> std::result::Result<url::Url, &'static str> {
    if v.len() > 2000 || v.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("is not a URL (at most 2000 characters, no whitespace)");
    }
    let u = url::Url::parse(v).map_err(|_| "is not a URL")?;
    if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() {
        return Err("is not an http(s) URL with a host");
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err("must not carry credentials");
    }
    if let Some(why) = crate::net::forbidden_host(&u) {
        return Err(why);
    }
    Ok(u)
}

impl Checks {
    /// Validate a `verify:` block.
    pub fn new(c: &Config) -> std::result::Result<Checks, Invalid> {
        let dur = |key: &str, v: &str, r: &DurationRule| {
            validate::duration(key, v, r).map_err(|_| invalid(key, r.rule))
        };
        let window = dur("window", &c.window, &WINDOW)?;
        let interval = match &c.interval {
            Some(v) => dur("interval", v, &INTERVAL)?,
            None => Duration::from_secs(10),
        };
        if c.http.len() > MAX_PROBES {
            return Err(invalid("http", "lists more than 20 probes"));
        }
        let mut http = Vec::new();
        for (i, p) in c.http.iter().enumerate() {
            let key = |k: &str| format!("http[{i}].{k}");
            if !name_ok(&p.name, 64) {
                return Err(invalid(
                    key("name"),
                    "is not a name (1-64 characters, one line)",
                ));
            }
            if c.http[..i].iter().any(|o| o.name == p.name) {
                return Err(invalid(key("name"), "is used by another probe"));
            }
            let url = match (&p.url, &p.url_from_output, &p.url_from_variable) {
                (Some(u), None, None) => {
                    UrlSource::Literal(probe_url(u).map_err(|r| invalid(key("url"), r))?)
                }
                (None, Some(o), None) => {
                    if !ident_ok(o) {
                        return Err(invalid(
                            key("url-from-output"),
                            "is not a Terraform output name (letters, digits, `_`, `-`)",
                        ));
                    }
                    UrlSource::Output(o.clone())
                }
                (None, None, Some(v)) => {
                    if !ident_ok(v) {
                        return Err(invalid(
                            key("url-from-variable"),
                            "is not a variable name (letters, digits, `_`, `-`)",
                        ));
                    }
                    UrlSource::Variable(v.clone())
                }
                _ => {
                    return Err(invalid(
                        key("url"),
                        "needs exactly one of `url`, `url-from-output`, `url-from-variable`",
                    ))
                }
            };
            let status = p.status.unwrap_or(200);
            if !(100..=599).contains(&status) {
                return Err(invalid(key("status"), "is not an HTTP status (100-599)"));
            }
            if let Some(b) = &p.body {
                if !name_ok(b, 200) {
                    return Err(invalid(
                        key("body"),
                        "is not a text to find (1-200 characters, one line)",
                    ));
                }
            }
            let successes = p.successes.unwrap_or(3);
            if !(1..=100).contains(&successes) {
                return Err(invalid(key("successes"), "is not a count from 1 to 100"));
            }
            let timeout = match &p.timeout {
                Some(v) => dur(&key("timeout"), v, &TIMEOUT)?,
                None => Duration::from_secs(5),
            };
            http.push(HttpProbe {
                name: p.name.clone(),
                url,
                status,
                body: p.body.clone(),
                successes,
                timeout,
            });
        }
        let alarms = match &c.alarms {
            None => None,
            Some(a) => {
                if a.names.is_empty() && a.tag.is_none() {
                    return Err(invalid("alarms", "needs `names` or `tag`"));
                }
                if a.names.len() > MAX_NAMES {
                    return Err(invalid("alarms.names", "lists more than 100 alarms"));
                }
                for (i, n) in a.names.iter().enumerate() {
                    if !name_ok(n, 255) {
                        return Err(invalid(
                            format!("alarms.names[{i}]"),
                            "is not an alarm name (1-255 characters, one line)",
                        ));
                    }
                }
                let tag = match &a.tag {
                    None => None,
                    Some(t) => {
                        if !name_ok(&t.key, 128) {
                            return Err(invalid(
                                "alarms.tag.key",
                                "is not a tag key (1-128 characters)",
                            ));
                        }
                        if !name_ok(&t.value, 256) {
                            return Err(invalid(
                                "alarms.tag.value",
                                "is not a tag value (1-256 characters)",
                            ));
                        }
                        Some((t.key.clone(), t.value.clone()))
                    }
                };
                Some(Alarms {
                    names: a.names.clone(),
                    tag,
                })
            }
        };
        let github = match &c.github {
            None => Vec::new(),
            Some(g) => {
                if g.contexts.is_empty() {
                    return Err(invalid("github.contexts", "is empty"));
                }
                if g.contexts.len() > MAX_NAMES {
                    return Err(invalid("github.contexts", "lists more than 100 contexts"));
                }
                for (i, n) in g.contexts.iter().enumerate() {
                    if !name_ok(n, 255) {
                        return Err(invalid(
                            format!("github.contexts[{i}]"),
                            "is not a context name (1-255 characters, one line)",
                        ));
                    }
                }
                g.contexts.clone()
            }
        };
        if http.is_empty() && alarms.is_none() && github.is_empty() {
            return Err(invalid(
                "verify",
                "declares no check (`http`, `alarms` or `github`)",
            ));
        }
        Ok(Checks {
            window,
            interval,
            auto_rollback: c.auto_rollback,
            http,
            alarms,
            github,
        })
    }

    /// The URL of every probe, from the file, the Terraform outputs or the variables: a
    /// missing, non-string or unusable value is refused, naming the probe (`http[i]...`).
    pub fn urls(
        &self,
        outputs: Option<&BTreeMap<String, String>>,
        vars: &BTreeMap<String, String>,
    ) -> std::result::Result<Vec<url::Url>, Invalid> {
        let mut out = Vec::new();
        for (i, p) in self.http.iter().enumerate() {
            let u = match &p.url {
                UrlSource::Literal(u) => u.clone(),
                UrlSource::Output(o) => {
                    let key = format!("http[{i}].url-from-output");
                    let Some(outputs) = outputs else {
                        return Err(invalid(key, "needs the `terraform-outputs` input"));
                    };
                    let v = outputs.get(o).ok_or_else(|| {
                        invalid(key.clone(), "names no string output of `terraform-outputs`")
                    })?;
                    probe_url(v).map_err(|r| invalid(key, r))?
                }
                UrlSource::Variable(n) => {
                    let key = format!("http[{i}].url-from-variable");
                    let v = vars.get(n).ok_or_else(|| {
                        invalid(key.clone(), "names no variable of the `variables` input")
                    })?;
                    probe_url(v).map_err(|r| invalid(key, r))?
                }
            };
            out.push(u);
        }
        Ok(out)
    }
}

fn ident_ok(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 128
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

// ------------------------------------------------------------------ observations

/// One HTTP probe's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// The expected status (and body).
    Ok,
    /// A failed attempt that may pass later: wrong status or body, timeout, TLS, connection.
    Bad(String),
    /// A safety rule refused the request (a redirect to another host, a forbidden address):
    /// the check fails at once.
    Refused(String),
}

/// The state of one CloudWatch alarm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlarmState {
    /// `OK`.
    Ok,
    /// `ALARM`.
    Alarm,
    /// `INSUFFICIENT_DATA` (not in ALARM).
    InsufficientData,
}

/// One round's view of the selected alarms.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlarmRound {
    /// The alarms found, with their state.
    pub alarms: Vec<(String, AlarmState)>,
    /// Named alarms that do not exist.
    pub missing: Vec<String>,
}

/// The state of one GitHub context on the deployed sha.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContextState {
    /// Green.
    Success,
    /// Still running, or not reported yet.
    Pending,
    /// Red (failure, error, cancelled, timed out...).
    Failure,
}

/// Everything observed so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observations {
    /// Answers of each probe (index = probe index), oldest first.
    pub http: Vec<Vec<Probe>>,
    /// Alarm rounds, oldest first.
    pub alarms: Vec<AlarmRound>,
    /// The latest state of each reported context (absent: not reported).
    pub github: Option<BTreeMap<String, ContextState>>,
}

/// The state of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckState {
    /// Passed, with a short account.
    Passed(String),
    /// Not decided yet, with what it waits for.
    Pending(String),
    /// Failed, with why.
    Failed(String),
}

/// The outcome of a verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every check passed.
    Passed,
    /// A check failed.
    Failed {
        /// The failing check (`http health`, `alarms`, `github`).
        check: String,
        /// Why.
        why: String,
    },
    /// Keep observing.
    Pending,
}

/// One named check's state, in declaration order: `http <name>`..., `alarms`, `github`.
/// `window_over`: the window has ended, so whatever is still pending has failed.
pub fn states(c: &Checks, o: &Observations, window_over: bool) -> Vec<(String, CheckState)> {
    let mut out = Vec::new();
    let empty = Vec::new();
    for (i, p) in c.http.iter().enumerate() {
        let seen = o.http.get(i).unwrap_or(&empty);
        out.push((
            format!("http {}", p.name),
            http_state(p, seen, c.window, window_over),
        ));
    }
    if let Some(a) = &c.alarms {
        out.push((
            "alarms".into(),
            alarm_state(a, &o.alarms, c.window, window_over),
        ));
    }
    if !c.github.is_empty() {
        out.push((
            "github".into(),
            github_state(&c.github, o.github.as_ref(), c.window, window_over),
        ));
    }
    out
}

/// The decision: the first failed check (declaration order) fails the verification; every
/// check passed passes it; otherwise it is pending.
pub fn decide(c: &Checks, o: &Observations, window_over: bool) -> Verdict {
    let all = states(c, o, window_over);
    for (name, s) in &all {
        if let CheckState::Failed(why) = s {
            return Verdict::Failed {
                check: name.clone(),
                why: why.clone(),
            };
        }
    }
    if all.iter().all(|(_, s)| matches!(s, CheckState::Passed(_))) {
        Verdict::Passed
    } else {
        Verdict::Pending
    }
}

/// One line for the `Verification-Checks` trailer and the report: each check and its state.
pub fn summary(states: &[(String, CheckState)]) -> String {
    states
        .iter()
        .map(|(n, s)| match s {
            CheckState::Passed(d) => format!("{n}: passed ({d})"),
            CheckState::Pending(d) => format!("{n}: pending ({d})"),
            CheckState::Failed(d) => format!("{n}: failed ({d})"),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn secs(d: Duration) -> String {
    format!("{}s", d.as_secs())
}

fn http_state(p: &HttpProbe, seen: &[Probe], window: Duration, over: bool) -> CheckState {
    if let Some(Probe::Refused(why)) = seen.iter().find(|s| matches!(s, Probe::Refused(_))) {
        return CheckState::Failed(why.clone());
    }
    let run = seen.iter().rev().take_while(|s| **s == Probe::Ok).count() as u32;
    if run >= p.successes {
        return CheckState::Passed(format!("{run} in a row"));
    }
    let last = seen.iter().rev().find_map(|s| match s {
        Probe::Bad(w) => Some(w.as_str()),
        _ => None,
    });
    let waits = format!(
        "{run} of {} consecutive successes{}",
        p.successes,
        last.map(|l| format!("; last failure: {l}"))
            .unwrap_or_default()
    );
    if over {
        CheckState::Failed(format!(
            "no {} consecutive successes within {}: {waits}",
            p.successes,
            secs(window)
        ))
    } else {
        CheckState::Pending(waits)
    }
}

fn alarm_state(a: &Alarms, rounds: &[AlarmRound], window: Duration, over: bool) -> CheckState {
    for r in rounds {
        if let Some(m) = r.missing.first() {
            return CheckState::Failed(format!("alarm `{m}` does not exist"));
        }
        if let Some((n, _)) = r.alarms.iter().find(|(_, s)| *s == AlarmState::Alarm) {
            return CheckState::Failed(format!("alarm `{n}` is in ALARM"));
        }
        if r.alarms.is_empty() {
            return CheckState::Failed(match &a.tag {
                Some((k, v)) if a.names.is_empty() => format!("no alarm carries the tag {k}={v}"),
                _ => "no alarm matched".into(),
            });
        }
    }
    let n = rounds.last().map_or(0, |r| r.alarms.len());
    if over && !rounds.is_empty() {
        CheckState::Passed(format!("{n} alarm(s) out of ALARM for {}", secs(window)))
    } else if over {
        CheckState::Failed("no alarm state could be read within the window".into())
    } else {
        CheckState::Pending(format!(
            "{n} alarm(s) out of ALARM so far; watched for {}",
            secs(window)
        ))
    }
}

fn github_state(
    want: &[String],
    seen: Option<&BTreeMap<String, ContextState>>,
    window: Duration,
    over: bool,
) -> CheckState {
    let empty = BTreeMap::new();
    let seen = seen.unwrap_or(&empty);
    let mut waiting = Vec::new();
    for w in want {
        match seen.get(w) {
            Some(ContextState::Failure) => {
                return CheckState::Failed(format!("`{w}` is not green"));
            }
            Some(ContextState::Success) => {}
            Some(ContextState::Pending) => waiting.push(format!("`{w}` pending")),
            None => waiting.push(format!("`{w}` not reported")),
        }
    }
    if waiting.is_empty() {
        CheckState::Passed(format!("{} green", want.len()))
    } else if over {
        CheckState::Failed(format!("{} after {}", waiting.join(", "), secs(window)))
    } else {
        CheckState::Pending(waiting.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(yaml: &str) -> std::result::Result<Checks, Invalid> {
        let c: Config = serde_yaml_ng::from_str(yaml).unwrap();
        Checks::new(&c)
    }

    #[test]
    fn config_refusals_name_the_key() {
        let ok = "window: 30s\nhttp: [{name: h, url: 'http://127.0.0.1:8080/'}]\n";
        let c = cfg(ok).unwrap();
        assert_eq!(c.window, Duration::from_secs(30));
        assert_eq!(c.interval, Duration::from_secs(10));
        assert_eq!(c.http[0].successes, 3);
        assert_eq!(c.http[0].status, 200);
        let cases = [
            (
                "window: 2h\nhttp: [{name: h, url: 'http://a/'}]\n",
                "window",
            ),
            ("window: 5s\n", "verify"),
            ("window: 5s\nhttp: [{name: h}]\n", "http[0].url"),
            (
                "window: 5s\nhttp: [{name: h, url: 'http://a/', url-from-output: x}]\n",
                "http[0].url",
            ),
            (
                "window: 5s\nhttp: [{name: h, url: 'ftp://a/'}]\n",
                "http[0].url",
            ),
            (
                "window: 5s\nhttp: [{name: h, url: 'http://u:p@a/'}]\n",
                "http[0].url",
            ),
            (
                "window: 5s\nhttp: [{name: h, url: 'http://169.254.169.254/latest/'}]\n",
                "http[0].url",
            ),
            (
                "window: 5s\nhttp: [{name: h, url: 'http://[fd00:ec2::254]/'}]\n",
                "http[0].url",
            ),
            (
                "window: 5s\nhttp: [{name: h, url: 'http://a/'}, {name: h, url: 'http://b/'}]\n",
                "http[1].name",
            ),
            (
                "window: 5s\nhttp: [{name: h, url: 'http://a/', status: 700}]\n",
                "http[0].status",
            ),
            (
                "window: 5s\nhttp: [{name: h, url: 'http://a/', successes: 0}]\n",
                "http[0].successes",
            ),
            (
                "window: 5s\nhttp: [{name: h, url: 'http://a/', timeout: 10m}]\n",
                "http[0].timeout",
            ),
            (
                "window: 5s\nhttp: [{name: h, url-from-output: 'a b'}]\n",
                "http[0].url-from-output",
            ),
            ("window: 5s\nalarms: {}\n", "alarms"),
            ("window: 5s\nalarms: {names: ['']}\n", "alarms.names[0]"),
            ("window: 5s\ngithub: {contexts: []}\n", "github.contexts"),
            (
                "window: 5s\ninterval: 0s\ngithub: {contexts: [a]}\n",
                "interval",
            ),
        ];
        for (y, key) in cases {
            let e = cfg(y).unwrap_err();
            assert_eq!(e.key, key, "{y}");
        }
    }

    #[test]
    fn urls_come_from_outputs_and_variables() {
        let c = cfg("window: 5s\nhttp: [{name: a, url-from-output: app_url}, {name: b, url-from-variable: URL}]\n").unwrap();
        let outs = BTreeMap::from([("app_url".to_string(), "https://app.example/".to_string())]);
        let vars = BTreeMap::from([("URL".to_string(), "http://127.0.0.1:1/x".to_string())]);
        let u = c.urls(Some(&outs), &vars).unwrap();
        assert_eq!(u[0].as_str(), "https://app.example/");
        assert_eq!(u[1].as_str(), "http://127.0.0.1:1/x");
        assert_eq!(
            c.urls(None, &vars).unwrap_err().key,
            "http[0].url-from-output"
        );
        assert_eq!(
            c.urls(Some(&outs), &BTreeMap::new()).unwrap_err().key,
            "http[1].url-from-variable"
        );
        let bad = BTreeMap::from([("app_url".to_string(), "http://169.254.169.254/".to_string())]);
        assert_eq!(
            c.urls(Some(&bad), &vars).unwrap_err().key,
            "http[0].url-from-output"
        );
    }

    fn ok() -> Probe {
        Probe::Ok
    }
    fn bad(w: &str) -> Probe {
        Probe::Bad(w.into())
    }

    #[test]
    fn the_decision_table() {
        let http = cfg("window: 10s\nhttp: [{name: h, url: 'http://a/', successes: 2}]\n").unwrap();
        let alarms = cfg("window: 10s\nalarms: {names: [x, y]}\n").unwrap();
        let gh = cfg("window: 10s\ngithub: {contexts: [smoke, e2e]}\n").unwrap();
        let all = cfg("window: 10s\nhttp: [{name: h, url: 'http://a/', successes: 1}]\nalarms: {names: [x]}\ngithub: {contexts: [smoke]}\n").unwrap();
        let round = |v: &[(&str, AlarmState)], missing: &[&str]| AlarmRound {
            alarms: v.iter().map(|(n, s)| (n.to_string(), *s)).collect(),
            missing: missing.iter().map(|s| s.to_string()).collect(),
        };
        let ctx = |v: &[(&str, ContextState)]| {
            Some(
                v.iter()
                    .map(|(n, s)| (n.to_string(), *s))
                    .collect::<BTreeMap<_, _>>(),
            )
        };
        use AlarmState::*;
        use ContextState as C;
        let failed = |check: &str, why: &str| Verdict::Failed {
            check: check.into(),
            why: why.into(),
        };
        let rows: Vec<(&str, &Checks, Observations, bool, Verdict)> = vec![
            ("nothing seen yet", &http, Observations::default(), false, Verdict::Pending),
            ("two in a row", &http, Observations { http: vec![vec![bad("status 500"), ok(), ok()]], ..Default::default() }, false, Verdict::Passed),
            ("flapping, window open", &http, Observations { http: vec![vec![ok(), bad("status 500"), ok()]], ..Default::default() }, false, Verdict::Pending),
            ("flapping, window over", &http, Observations { http: vec![vec![ok(), bad("status 500"), ok()]], ..Default::default() }, true,
                failed("http h", "no 2 consecutive successes within 10s: 1 of 2 consecutive successes; last failure: status 500")),
            ("slow: timeouts until the end", &http, Observations { http: vec![vec![bad("timed out after 1s")]], ..Default::default() }, true,
                failed("http h", "no 2 consecutive successes within 10s: 0 of 2 consecutive successes; last failure: timed out after 1s")),
            ("a refused redirect fails at once", &http, Observations { http: vec![vec![ok(), Probe::Refused("redirect to another host".into())]], ..Default::default() }, false,
                failed("http h", "redirect to another host")),
            ("alarms OK, window open", &alarms, Observations { alarms: vec![round(&[("x", Ok), ("y", InsufficientData)], &[])], ..Default::default() }, false, Verdict::Pending),
            ("alarms OK for the window", &alarms, Observations { alarms: vec![round(&[("x", Ok), ("y", InsufficientData)], &[])], ..Default::default() }, true, Verdict::Passed),
            ("an alarm in ALARM once", &alarms, Observations { alarms: vec![round(&[("x", Ok), ("y", Alarm)], &[]), round(&[("x", Ok), ("y", Ok)], &[])], ..Default::default() }, false,
                failed("alarms", "alarm `y` is in ALARM")),
            ("a named alarm is missing", &alarms, Observations { alarms: vec![round(&[("x", Ok)], &["y"])], ..Default::default() }, false,
                failed("alarms", "alarm `y` does not exist")),
            ("no alarm state read", &alarms, Observations::default(), true, failed("alarms", "no alarm state could be read within the window")),
            ("github all green", &gh, Observations { github: ctx(&[("smoke", C::Success), ("e2e", C::Success), ("other", C::Failure)]), ..Default::default() }, false, Verdict::Passed),
            ("github one red", &gh, Observations { github: ctx(&[("smoke", C::Success), ("e2e", C::Failure)]), ..Default::default() }, false, failed("github", "`e2e` is not green")),
            ("github pending", &gh, Observations { github: ctx(&[("smoke", C::Pending)]), ..Default::default() }, false, Verdict::Pending),
            ("github pending at the end", &gh, Observations { github: ctx(&[("smoke", C::Pending)]), ..Default::default() }, true,
                failed("github", "`smoke` pending, `e2e` not reported after 10s")),
            ("all kinds pass", &all, Observations { http: vec![vec![ok()]], alarms: vec![round(&[("x", Ok)], &[])], github: ctx(&[("smoke", C::Success)]) }, true, Verdict::Passed),
            ("all kinds: alarms still watched", &all, Observations { http: vec![vec![ok()]], alarms: vec![round(&[("x", Ok)], &[])], github: ctx(&[("smoke", C::Success)]) }, false, Verdict::Pending),
            ("first failure in declaration order", &all, Observations { http: vec![vec![Probe::Refused("forbidden address".into())]], alarms: vec![round(&[("x", Alarm)], &[])], github: None }, false,
                failed("http h", "forbidden address")),
        ];
        for (name, c, o, over, want) in rows {
            assert_eq!(decide(c, &o, over), want, "{name}");
        }
    }

    #[test]
    fn summary_lists_every_check() {
        let c = cfg("window: 10s\nhttp: [{name: h, url: 'http://a/', successes: 1}]\ngithub: {contexts: [smoke]}\n").unwrap();
        let o = Observations {
            http: vec![vec![Probe::Ok]],
            ..Default::default()
        };
        assert_eq!(
            summary(&states(&c, &o, false)),
            "http h: passed (1 in a row); github: pending (`smoke` not reported)"
        );
    }
}
