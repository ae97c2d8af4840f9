//! Deploy windows and freezes: when an environment may be changed. The one owner of the
//! `windows:` block of an environment in `.github/gitops.yml`, of its grammar, and of the rule
//! [`Windows::check`] that `promote` (for the target environment) and `tag-deploy window` (in the
//! deploy and rollback templates, before `terraform apply`) enforce.
//!
//! ```yaml
//! windows:
//!   time-zone: Europe/Berlin            # an IANA name; every time below is local to it
//!   allow: ["Mon-Thu 09:00-16:00", "Sat 10:00-12:00"]
//!   freeze:
//!     - { from: "2026-12-20T00:00", to: "2027-01-04T00:00", reason: "year-end freeze" }
//! ```
//!
//! Semantics:
//! - **Allowed** = inside any `allow` window AND outside every freeze. No `allow` list: always
//!   allowed except during freezes (an empty list is refused: it would never allow anything).
//! - An `allow` entry is `DAYS HH:MM-HH:MM`; `DAYS` is a day (`Mon` .. `Sun`), a range
//!   (`Mon-Thu`; `Fri-Mon` wraps over the weekend) or a comma list of those (`Mon,Wed,Fri-Sat`).
//!   The end may be `24:00`. An end before the start **crosses midnight**: `Fri 23:00-01:00`
//!   opens Friday 23:00 and closes Saturday 01:00. Start = end is refused (empty or a whole day?
//!   write `00:00-24:00`).
//! - Windows are wall-clock times: an instant is inside when the local day and time shown by
//!   the time zone's clock are. On a spring-forward day a start inside the skipped hour opens
//!   the window when the clock jumps (Europe/Berlin `Sun 02:30-04:00` on 2026-03-29 opens at
//!   03:00 CEST); on a fall-back day the repeated hour counts both times it is shown.
//! - A freeze runs from the first instant the local clock shows `from` up to the first instant it
//!   shows `to` (`from` inclusive, `to` exclusive; a time in a skipped hour means the jump).
//! - The next window opening skips freezes and DST gaps: it is the first instant from now on
//!   that is allowed.
//!
//! The time-zone database is the host's (`/usr/share/zoneinfo`), with a copy bundled in the
//! binary when the host has none: the same name resolves the same way on every runner.

use jiff::civil::{Date, DateTime, Weekday};
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::Timestamp;
use serde::Deserialize;

use crate::exit::Result;
use crate::runner::single_line;

/// The input naming an emergency override (promote and tag-deploy use the same name).
pub const OVERRIDE_INPUT: &str = "override-window-reason";

/// The `windows:` block of one environment, as written (validated by [`Windows::new`]).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Config {
    /// IANA time zone name, e.g. `Europe/Berlin`; every time in the block is local to it.
    pub time_zone: String,
    /// Allowed windows (`Mon-Thu 09:00-16:00`); absent: any time outside freezes.
    #[serde(default)]
    pub allow: Option<Vec<String>>,
    /// Freeze periods.
    #[serde(default)]
    pub freeze: Vec<FreezeConfig>,
}

/// One freeze period, as written.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FreezeConfig {
    /// Local start, `YYYY-MM-DDTHH:MM` (inclusive).
    pub from: String,
    /// Local end, `YYYY-MM-DDTHH:MM` (exclusive).
    pub to: String,
    /// Why (shown in refusals): 1-120 characters, one line.
    pub reason: String,
}

/// A `windows:` block that does not validate: which key, and the rule it breaks (never the
/// value: a file may hold what was pasted in the wrong place).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// The key below `windows`, e.g. `allow[1]` or `freeze[0].to`.
    pub key: String,
    /// What it must be.
    pub rule: &'static str,
}

const MAX_ALLOW: usize = 20;
const MAX_FREEZES: usize = 50;
const MAX_REASON: usize = 120;
const DAY: u16 = 24 * 60;

/// One allowed window: on `days` (Monday = 0), from `start` to `end` minutes of the day.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Allow {
    days: [bool; 7],
    start: u16,
    end: u16,
    text: String,
}

impl Allow {
    fn crosses_midnight(&self) -> bool {
        self.end <= self.start
    }

    /// Whether the local wall-clock `dt` is inside this window.
    fn contains(&self, dt: DateTime) -> bool {
        let w = day_index(dt.weekday());
        let m = dt.hour() as u16 * 60 + dt.minute() as u16;
        if self.crosses_midnight() {
            (self.days[w] && m >= self.start) || (self.days[(w + 6) % 7] && m < self.end)
        } else {
            self.days[w] && m >= self.start && m < self.end
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Freeze {
    from: DateTime,
    begins: Timestamp,
    ends: Timestamp,
    reason: String,
}

/// A validated `windows:` block, ready to answer [`Windows::check`].
#[derive(Debug, Clone, PartialEq)]
pub struct Windows {
    zone: String,
    tz: TimeZone,
    allow: Option<Vec<Allow>>,
    freezes: Vec<Freeze>,
}

/// Why an environment may not be changed now, and when it may.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shut {
    /// The freeze in force (its local start and reason), or `None`: outside every window.
    pub frozen: Option<(DateTime, String)>,
    /// Outside windows: when the last window closed (local), if within the last week.
    pub closed_since: Option<DateTime>,
    /// The allow list (validated text), for the message.
    pub allow: Vec<String>,
    /// The next allowed instant (local); `None`: none found (the search is bounded; fails
    /// closed).
    pub next: Option<DateTime>,
    /// The time zone name.
    pub zone: String,
}

impl std::fmt::Display for Shut {
    /// One line: which gate, since when, when it opens (the caller says how to override).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let z = &self.zone;
        match &self.frozen {
            Some((from, reason)) => write!(
                f,
                "is frozen since {} {z} ({})",
                from.strftime("%Y-%m-%d %H:%M"),
                single_line(reason)
            )?,
            None => {
                write!(
                    f,
                    "is outside its deploy windows ({}, {z})",
                    self.allow.join(", ")
                )?;
                if let Some(s) = self.closed_since {
                    write!(f, " since {} {z}", s.strftime("%a %Y-%m-%d %H:%M"))?;
                }
            }
        }
        match self.next {
            Some(n) => write!(
                f,
                "; next window opens {} {z}",
                n.strftime("%a %Y-%m-%d %H:%M")
            ),
            None => write!(f, "; no window opening was found ahead"),
        }
    }
}

impl Windows {
    /// Validate a `windows:` block: the time zone is known, each `allow` entry follows the
    /// grammar, each freeze has `from` < `to` and a one-line reason.
    pub fn new(c: &Config) -> std::result::Result<Windows, Invalid> {
        let bad = |key: String, rule: &'static str| Invalid { key, rule };
        let tz = TimeZone::get(&c.time_zone).map_err(|_| {
            bad(
                "time-zone".into(),
                "is not a known IANA time zone name (like `Europe/Berlin` or `UTC`)",
            )
        })?;
        let allow = match &c.allow {
            None => None,
            Some(list) if list.is_empty() => {
                return Err(bad(
                    "allow".into(),
                    "is empty (it would never allow a deploy); leave it out to allow any time outside freezes",
                ))
            }
            Some(list) if list.len() > MAX_ALLOW => {
                return Err(bad("allow".into(), "has more than 20 entries"))
            }
            Some(list) => Some(
                list.iter()
                    .enumerate()
                    .map(|(i, s)| {
                        parse_allow(s).ok_or_else(|| {
                            bad(
                                format!("allow[{i}]"),
                                "is not a window like `Mon-Thu 09:00-16:00` (days Mon..Sun as a day, a range or a comma list; HH:MM-HH:MM, end up to 24:00, an end before the start crosses midnight, start and end differ)",
                            )
                        })
                    })
                    .collect::<std::result::Result<Vec<_>, _>>()?,
            ),
        };
        if c.freeze.len() > MAX_FREEZES {
            return Err(bad("freeze".into(), "has more than 50 entries"));
        }
        let mut freezes = Vec::new();
        for (i, fc) in c.freeze.iter().enumerate() {
            let stamp = "is not a local date and time like `2026-12-20T00:00`";
            let from =
                parse_local(&fc.from).ok_or_else(|| bad(format!("freeze[{i}].from"), stamp))?;
            let to = parse_local(&fc.to).ok_or_else(|| bad(format!("freeze[{i}].to"), stamp))?;
            let (begins, ends) = (first_reaching(&tz, from), first_reaching(&tz, to));
            if begins >= ends {
                return Err(bad(
                    format!("freeze[{i}]"),
                    "ends before it begins (`from` must be before `to`)",
                ));
            }
            let r = fc.reason.trim();
            if r.is_empty() || r.chars().count() > MAX_REASON || r.chars().any(char::is_control) {
                return Err(bad(
                    format!("freeze[{i}].reason"),
                    "must be one line of 1-120 characters",
                ));
            }
            freezes.push(Freeze {
                from,
                begins,
                ends,
                reason: r.to_string(),
            });
        }
        Ok(Windows {
            zone: c.time_zone.clone(),
            tz,
            allow,
            freezes,
        })
    }

    /// The time zone name.
    pub fn zone(&self) -> &str {
        &self.zone
    }

    /// `None` when a change is allowed at `now`; else why not and when it will be.
    pub fn check(&self, now: Timestamp) -> Option<Shut> {
        if self.allowed(now) {
            return None;
        }
        let local = |t: Timestamp| self.tz.to_datetime(t);
        let frozen = self.freeze_at(now).map(|f| (f.from, f.reason.clone()));
        let closed_since = match frozen {
            Some(_) => None,
            None => self.last_close(now).map(local),
        };
        Some(Shut {
            frozen,
            closed_since,
            allow: self
                .allow
                .iter()
                .flatten()
                .map(|a| a.text.clone())
                .collect(),
            next: self.next_opening(now).map(local),
            zone: self.zone.clone(),
        })
    }

    fn in_window(&self, t: Timestamp) -> bool {
        let dt = self.tz.to_datetime(t);
        match &self.allow {
            None => true,
            Some(list) => list.iter().any(|a| a.contains(dt)),
        }
    }

    fn freeze_at(&self, t: Timestamp) -> Option<&Freeze> {
        self.freezes.iter().find(|f| f.begins <= t && t < f.ends)
    }

    fn allowed(&self, t: Timestamp) -> bool {
        self.freeze_at(t).is_none() && self.in_window(t)
    }

    /// The first allowed instant at or after `now`: jump past the freeze in force, or to the
    /// next window start, until allowed. Each step moves past a freeze or to the next start (at
    /// most a week on), so the bound of 10,000 steps is not the answer in practice.
    fn next_opening(&self, now: Timestamp) -> Option<Timestamp> {
        let mut t = now;
        for _ in 0..10_000 {
            if let Some(f) = self.freeze_at(t) {
                t = f.ends;
            } else if self.in_window(t) {
                return Some(t);
            } else {
                t = self.next_start_after(t)?;
            }
        }
        None
    }

    /// The earliest instant after `t` at which some window starts (every instant the local
    /// clock shows a start: two in a fall-back hour, the jump in a spring-forward gap).
    fn next_start_after(&self, t: Timestamp) -> Option<Timestamp> {
        let today = self.tz.to_datetime(t).date();
        let list = self.allow.as_ref()?;
        (0..9)
            .filter_map(|d| today.checked_add(jiff::Span::new().days(d)).ok())
            .flat_map(|day| {
                list.iter()
                    .filter(move |a| a.days[day_index(day.weekday())])
                    .flat_map(move |a| self.instants(at_minute(day, a.start)))
            })
            .filter(|s| *s > t)
            .min()
    }

    /// The latest window close at or before `now` within the last eight days.
    fn last_close(&self, now: Timestamp) -> Option<Timestamp> {
        let today = self.tz.to_datetime(now).date();
        let list = self.allow.as_ref()?;
        (-8..=0)
            .filter_map(|d| today.checked_add(jiff::Span::new().days(d)).ok())
            .flat_map(|day| {
                list.iter()
                    .filter(move |a| a.days[day_index(day.weekday())])
                    .filter_map(move |a| {
                        let end_day = if a.crosses_midnight() {
                            day.tomorrow().ok()?
                        } else {
                            day
                        };
                        Some(first_reaching(&self.tz, at_minute(end_day, a.end)))
                    })
            })
            .filter(|s| *s <= now)
            .max()
    }

    /// Every instant whose local time is `dt`; for a time the clock skips, the jump.
    fn instants(&self, dt: DateTime) -> Vec<Timestamp> {
        match self.tz.to_ambiguous_timestamp(dt).offset() {
            AmbiguousOffset::Unambiguous { offset } => {
                offset.to_timestamp(dt).ok().into_iter().collect()
            }
            AmbiguousOffset::Fold { before, after } => [before, after]
                .iter()
                .filter_map(|o| o.to_timestamp(dt).ok())
                .collect(),
            AmbiguousOffset::Gap { .. } => vec![first_reaching(&self.tz, dt)],
        }
    }
}

/// The first instant at which the local clock of `tz` shows `dt` or later: the earlier one in
/// a fall-back hour, the jump itself when `dt` is in a skipped hour.
fn first_reaching(tz: &TimeZone, dt: DateTime) -> Timestamp {
    let amb = tz.to_ambiguous_timestamp(dt);
    match amb.offset() {
        AmbiguousOffset::Gap { after, .. } => {
            // With the later offset the instant is before the jump; the jump is the next
            // transition from there.
            after
                .to_timestamp(dt)
                .ok()
                .and_then(|t| tz.following(t).next())
                .map(|tr| tr.timestamp())
                .unwrap_or_else(|| amb.compatible().unwrap_or(Timestamp::MAX))
        }
        _ => amb.earlier().unwrap_or(Timestamp::MAX),
    }
}

fn at_minute(day: Date, minute: u16) -> DateTime {
    if minute >= DAY {
        let next = day.tomorrow().unwrap_or(day);
        return next.at(0, 0, 0, 0);
    }
    day.at((minute / 60) as i8, (minute % 60) as i8, 0, 0)
}

fn day_index(w: Weekday) -> usize {
    w.to_monday_zero_offset() as usize
}

const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

/// `DAYS HH:MM-HH:MM` (see the module docs); `None` when it does not follow the grammar.
fn parse_allow(s: &str) -> Option<Allow> {
    let (days_text, hours) = s.split_once(' ')?;
    let mut days = [false; 7];
    for part in days_text.split(',') {
        let day = |d: &str| DAYS.iter().position(|n| *n == d);
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (day(a)?, day(b)?);
                let mut i = a;
                loop {
                    days[i] = true;
                    if i == b {
                        break;
                    }
                    i = (i + 1) % 7;
                }
            }
            None => days[day(part)?] = true,
        }
    }
    let (start, end) = hours.split_once('-')?;
    let (start, end) = (parse_hhmm(start)?, parse_hhmm(end)?);
    if start >= DAY || start == end {
        return None;
    }
    Some(Allow {
        days,
        start,
        end,
        text: s.to_string(),
    })
}

/// `HH:MM`, 00:00 to 24:00, as minutes of the day.
fn parse_hhmm(s: &str) -> Option<u16> {
    let b = s.as_bytes();
    if b.len() != 5
        || b[2] != b':'
        || !s[..2]
            .bytes()
            .chain(s[3..].bytes())
            .all(|c| c.is_ascii_digit())
    {
        return None;
    }
    let (h, m): (u16, u16) = (s[..2].parse().ok()?, s[3..].parse().ok()?);
    let total = h * 60 + m;
    (m < 60 && total <= DAY).then_some(total)
}

/// `YYYY-MM-DDTHH:MM`, a local date and time (no seconds, no offset).
fn parse_local(s: &str) -> Option<DateTime> {
    let b = s.as_bytes();
    let shape = b.len() == 16
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b.iter()
            .enumerate()
            .all(|(i, c)| [4, 7, 10, 13].contains(&i) || c.is_ascii_digit());
    if !shape {
        return None;
    }
    let n = |r: std::ops::Range<usize>| s[r].parse::<i16>().ok();
    let date = Date::new(n(0..4)?, n(5..7)? as i8, n(8..10)? as i8).ok()?;
    let (h, m) = (n(11..13)?, n(14..16)?);
    if h > 23 || m > 59 {
        return None;
    }
    Some(date.at(h as i8, m as i8, 0, 0))
}

/// What a deploy or promotion may do now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate<'a> {
    /// Inside a window (or no windows configured).
    Open,
    /// Shut, but an override reason was given: go ahead and log it.
    Overridden(Shut, &'a str),
    /// Shut: refuse (exit 1) with the message.
    Shut(Shut),
}

/// The window rule: `windows` at `now`, with the override reason if one was given.
pub fn gate<'a>(
    windows: Option<&Windows>,
    now: Timestamp,
    override_reason: Option<&'a str>,
) -> Gate<'a> {
    match (windows.and_then(|w| w.check(now)), override_reason) {
        (None, _) => Gate::Open,
        (Some(shut), Some(reason)) => Gate::Overridden(shut, reason),
        (Some(shut), None) => Gate::Shut(shut),
    }
}

/// Validate an override reason (exit 2): one line, 1-200 characters.
pub fn check_override(v: Option<&str>) -> Result<Option<String>> {
    crate::validate::recorded_reason(OVERRIDE_INPUT, v)
}

/// Now, read once by a binary.
pub fn now() -> Timestamp {
    Timestamp::now()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn windows(zone: &str, allow: Option<&[&str]>, freeze: &[(&str, &str)]) -> Windows {
        Windows::new(&Config {
            time_zone: zone.into(),
            allow: allow.map(|a| a.iter().map(|s| s.to_string()).collect()),
            freeze: freeze
                .iter()
                .map(|(f, t)| FreezeConfig {
                    from: f.to_string(),
                    to: t.to_string(),
                    reason: "year-end freeze".into(),
                })
                .collect(),
        })
        .unwrap()
    }

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    /// (what, windows, now as an RFC 3339 instant, the expected message or `None` = allowed)
    #[test]
    fn the_window_table() {
        let berlin_office = || windows("Europe/Berlin", Some(&["Mon-Thu 09:00-16:00"]), &[]);
        let year_end = || {
            windows(
                "Europe/Berlin",
                Some(&["Mon-Thu 09:00-16:00"]),
                &[("2026-12-20T00:00", "2027-01-04T00:00")],
            )
        };
        let cases: Vec<(&str, Windows, &str, Option<&str>)> = vec![
            ("inside", berlin_office(), "2026-12-01T10:00:00+01:00", None),
            ("the start is inside", berlin_office(), "2026-12-01T09:00:00+01:00", None),
            (
                "the end is outside; the next day opens",
                berlin_office(),
                "2026-12-01T16:00:00+01:00",
                Some("is outside its deploy windows (Mon-Thu 09:00-16:00, Europe/Berlin) since Tue 2026-12-01 16:00 Europe/Berlin; next window opens Wed 2026-12-02 09:00 Europe/Berlin"),
            ),
            (
                "a weekend waits for Monday",
                berlin_office(),
                "2026-12-05T12:00:00+01:00",
                Some("since Thu 2026-12-03 16:00 Europe/Berlin; next window opens Mon 2026-12-07 09:00 Europe/Berlin"),
            ),
            (
                "a freeze over the year end names its start and the first window after it",
                year_end(),
                "2026-12-31T10:00:00+01:00",
                Some("is frozen since 2026-12-20 00:00 Europe/Berlin (year-end freeze); next window opens Mon 2027-01-04 09:00 Europe/Berlin"),
            ),
            ("the freeze end is exclusive", year_end(), "2027-01-04T09:00:00+01:00", None),
            (
                "the freeze start is inclusive",
                year_end(),
                "2026-12-20T00:00:00+01:00",
                Some("is frozen since 2026-12-20 00:00"),
            ),
            (
                "no allow list: only freezes; the next opening is the freeze end",
                windows("Europe/Berlin", None, &[("2026-12-20T00:00", "2027-01-04T00:00")]),
                "2027-01-01T00:00:00+01:00",
                Some("next window opens Mon 2027-01-04 00:00 Europe/Berlin"),
            ),
            ("no allow list, no freeze", windows("UTC", None, &[]), "2026-12-01T03:00:00Z", None),
            (
                "overlapping freezes are skipped together",
                windows("UTC", None, &[("2026-01-01T00:00", "2026-01-10T00:00"), ("2026-01-09T00:00", "2026-01-20T12:00")]),
                "2026-01-05T00:00:00Z",
                Some("next window opens Tue 2026-01-20 12:00 UTC"),
            ),
            // Europe/Berlin springs forward on Sun 2026-03-29: 02:00 CET -> 03:00 CEST.
            (
                "spring forward: a start in the skipped hour opens at the jump",
                windows("Europe/Berlin", Some(&["Sun 02:30-04:00"]), &[]),
                "2026-03-29T00:30:00Z",
                Some("next window opens Sun 2026-03-29 03:00 Europe/Berlin"),
            ),
            (
                "spring forward: just after the jump is inside",
                windows("Europe/Berlin", Some(&["Sun 02:30-04:00"]), &[]),
                "2026-03-29T01:00:00Z",
                None,
            ),
            (
                "spring forward: a window wholly in the skipped hour waits a week",
                windows("Europe/Berlin", Some(&["Sun 02:00-02:45"]), &[]),
                "2026-03-29T00:30:00Z",
                Some("next window opens Sun 2026-04-05 02:00 Europe/Berlin"),
            ),
            (
                "fall back (2026-10-25): the first 02:30 CEST opens",
                windows("Europe/Berlin", Some(&["Sun 02:30-04:00"]), &[]),
                "2026-10-25T00:00:00Z",
                Some("next window opens Sun 2026-10-25 02:30 Europe/Berlin"),
            ),
            (
                "fall back: the repeated 02:00 CET is before the window again",
                windows("Europe/Berlin", Some(&["Sun 02:30-04:00"]), &[]),
                "2026-10-25T01:10:00Z",
                Some("next window opens Sun 2026-10-25 02:30 Europe/Berlin"),
            ),
            (
                "fall back: the repeated 02:30 CET is inside",
                windows("Europe/Berlin", Some(&["Sun 02:30-02:45"]), &[]),
                "2026-10-25T01:35:00Z",
                None,
            ),
            // America/New_York: springs forward Sun 2026-03-08 02:00 EST -> 03:00 EDT, falls back
            // Sun 2026-11-01 02:00 EDT -> 01:00 EST.
            (
                "New York spring forward: 09:00 local is 13:00Z, no longer 14:00Z",
                windows("America/New_York", Some(&["Mon-Fri 09:00-17:00"]), &[]),
                "2026-03-09T13:30:00Z",
                None,
            ),
            (
                "New York: the Friday before spring forward, after hours",
                windows("America/New_York", Some(&["Mon-Fri 09:00-17:00"]), &[]),
                "2026-03-06T23:00:00Z",
                Some("since Fri 2026-03-06 17:00 America/New_York; next window opens Mon 2026-03-09 09:00 America/New_York"),
            ),
            (
                "New York fall back: the repeated 01:30 is inside a 01:00-02:00 window",
                windows("America/New_York", Some(&["Sun 01:00-02:00"]), &[]),
                "2026-11-01T06:30:00Z",
                None,
            ),
            (
                "New York: a 02:30 freeze start on spring-forward day begins at the jump",
                windows("America/New_York", None, &[("2026-03-08T02:30", "2026-03-09T00:00")]),
                "2026-03-08T07:00:00Z",
                Some("is frozen since 2026-03-08 02:30 America/New_York (year-end freeze); next window opens Mon 2026-03-09 00:00"),
            ),
            (
                "New York: just before the jump the freeze has not begun",
                windows("America/New_York", None, &[("2026-03-08T02:30", "2026-03-09T00:00")]),
                "2026-03-08T06:59:00Z",
                None,
            ),
            (
                "crossing midnight: inside after midnight",
                windows("UTC", Some(&["Fri 23:00-01:00"]), &[]),
                "2026-12-05T00:30:00Z",
                None,
            ),
            (
                "crossing midnight: closed at 01:00 the next day",
                windows("UTC", Some(&["Fri 23:00-01:00"]), &[]),
                "2026-12-05T01:00:00Z",
                Some("since Sat 2026-12-05 01:00 UTC; next window opens Fri 2026-12-11 23:00 UTC"),
            ),
            (
                "crossing midnight over the year end, into a freeze that starts at midnight",
                windows("UTC", Some(&["Thu 23:00-01:00"]), &[("2027-01-01T00:00", "2027-01-02T00:00")]),
                "2026-12-31T23:30:00Z",
                None,
            ),
            (
                "crossing midnight over the year end: the freeze shuts the second half",
                windows("UTC", Some(&["Thu 23:00-01:00"]), &[("2027-01-01T00:00", "2027-01-02T00:00")]),
                "2027-01-01T00:30:00Z",
                Some("is frozen since 2027-01-01 00:00 UTC (year-end freeze); next window opens Thu 2027-01-07 23:00 UTC"),
            ),
            (
                "several entries, a comma list and a wrapping range",
                windows("UTC", Some(&["Mon,Wed 09:00-10:00", "Sat-Sun 10:00-24:00"]), &[]),
                "2026-12-01T09:30:00Z",
                Some("next window opens Wed 2026-12-02 09:00 UTC"),
            ),
            (
                "an end of 24:00",
                windows("UTC", Some(&["Sat-Sun 10:00-24:00"]), &[]),
                "2026-12-06T23:59:00Z",
                None,
            ),
        ];
        for (what, w, now, want) in cases {
            let got = w.check(at(now));
            match (want, got) {
                (None, None) => {}
                (Some(needle), Some(shut)) => {
                    let line = shut.to_string();
                    assert!(line.contains(needle), "{what}: {line}");
                    assert!(!line.contains('\n'), "{what}");
                }
                (want, got) => panic!("{what}: want {want:?}, got {got:?}"),
            }
        }
    }

    #[test]
    fn a_long_freeze_opens_at_its_end_and_the_next_window_after_it() {
        let w = windows("UTC", None, &[("2000-01-01T00:00", "2100-01-01T00:00")]);
        let shut = w.check(at("2026-06-01T00:00:00Z")).unwrap();
        assert_eq!(shut.next, Some("2100-01-01T00:00".parse().unwrap()));
        let w = windows(
            "Europe/Berlin",
            Some(&["Tue 10:00-11:00"]),
            &[("2026-01-01T00:00", "2060-01-01T00:00")],
        );
        let shut = w.check(at("2026-06-01T00:00:00Z")).unwrap();
        assert!(
            shut.to_string()
                .ends_with("next window opens Tue 2060-01-06 10:00 Europe/Berlin"),
            "{shut}"
        );
    }

    #[test]
    fn refusals_name_the_entry() {
        let ok = || Config {
            time_zone: "Europe/Berlin".into(),
            allow: None,
            freeze: vec![],
        };
        fn freeze(from: &str, to: &str, reason: &str) -> FreezeConfig {
            FreezeConfig {
                from: from.into(),
                to: to.into(),
                reason: reason.into(),
            }
        }
        type Edit = Box<dyn Fn(&mut Config)>;
        let cases: Vec<(Edit, &str)> = vec![
            (
                Box::new(|c| c.time_zone = "Europe/Berlinn".into()),
                "time-zone",
            ),
            (Box::new(|c| c.time_zone = "+01:00".into()), "time-zone"),
            (
                Box::new(|c| c.time_zone = "../zoneinfo/UTC".into()),
                "time-zone",
            ),
            (
                Box::new(|c| c.time_zone = "/etc/localtime".into()),
                "time-zone",
            ),
            (Box::new(|c| c.time_zone = "".into()), "time-zone"),
            (Box::new(|c| c.allow = Some(vec![])), "allow"),
            (
                Box::new(|c| {
                    c.allow = Some(vec!["Mon-Thu 09:00-16:00".into(), "Mo 09:00-10:00".into()])
                }),
                "allow[1]",
            ),
            (
                Box::new(|c| c.allow = Some(vec!["Mon 9:00-16:00".into()])),
                "allow[0]",
            ),
            (
                Box::new(|c| c.allow = Some(vec!["Mon 09:00-09:00".into()])),
                "allow[0]",
            ),
            (
                Box::new(|c| c.allow = Some(vec!["Mon 24:00-10:00".into()])),
                "allow[0]",
            ),
            (
                Box::new(|c| c.allow = Some(vec!["Mon 09:60-10:00".into()])),
                "allow[0]",
            ),
            (
                Box::new(|c| c.allow = Some(vec!["Mon  09:00-10:00".into()])),
                "allow[0]",
            ),
            (
                Box::new(|c| c.allow = Some(vec!["mon 09:00-10:00".into()])),
                "allow[0]",
            ),
            (
                Box::new(|c| c.allow = Some(vec!["Mon 09:00-10:00 ".into()])),
                "allow[0]",
            ),
            (
                Box::new(|c| c.freeze = vec![freeze("2026-12-20", "2027-01-04T00:00", "x")]),
                "freeze[0].from",
            ),
            (
                Box::new(|c| c.freeze = vec![freeze("2026-12-20T00:00", "2027-02-30T00:00", "x")]),
                "freeze[0].to",
            ),
            (
                Box::new(|c| c.freeze = vec![freeze("2026-12-20T00:00", "2026-12-20T00:00", "x")]),
                "freeze[0]",
            ),
            (
                Box::new(|c| c.freeze = vec![freeze("2027-01-04T00:00", "2026-12-20T00:00", "x")]),
                "freeze[0]",
            ),
            (
                Box::new(|c| c.freeze = vec![freeze("2026-12-20T00:00", "2027-01-04T00:00", " ")]),
                "freeze[0].reason",
            ),
            (
                Box::new(|c| {
                    c.freeze = vec![freeze("2026-12-20T00:00", "2027-01-04T00:00", "a\nb")]
                }),
                "freeze[0].reason",
            ),
        ];
        for (edit, key) in cases {
            let mut c = ok();
            edit(&mut c);
            let e = Windows::new(&c).unwrap_err();
            assert_eq!(e.key, key, "{c:?}");
        }
        // Valid shapes.
        for a in [
            "Sat 10:00-12:00",
            "Fri-Mon 22:00-02:00",
            "Mon,Wed,Fri-Sat 00:00-24:00",
            "Sun 23:00-00:30",
        ] {
            let mut c = ok();
            c.allow = Some(vec![a.into()]);
            Windows::new(&c).unwrap_or_else(|e| panic!("{a}: {e:?}"));
        }
    }

    #[test]
    fn override_reasons() {
        assert_eq!(check_override(None).unwrap(), None);
        assert_eq!(check_override(Some("  ")).unwrap(), None);
        assert_eq!(
            check_override(Some(" hotfix INC-1 ")).unwrap().as_deref(),
            Some("hotfix INC-1")
        );
        for bad in ["a\nb".to_string(), "x".repeat(201)] {
            let e = check_override(Some(&bad)).unwrap_err();
            assert_eq!(e.class, crate::exit::ExitClass::Usage);
            assert_eq!(e.field.as_deref(), Some(OVERRIDE_INPUT));
        }
    }
}
