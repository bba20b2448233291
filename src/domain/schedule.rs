//! Call policy: when a buyer may be phoned (seed 001: only 10:00–18:00 buyer-local time, at
//! most 2–3 attempts per case, never repeatedly in a day or at night).
//!
//! Pure: the time is an argument. The policy checks one proposed call time against the case's
//! attempt history and computes the next allowed time, DST-correct in the buyer's zone.
//!
//! The attempt cap is a [`Budget`]: so many actions, optionally only within a span after an
//! anchor. Calls use it without a span (3 per case); a chat channel's reply limit uses it with
//! one (WeCom Kf: 5 replies within 48 h after each buyer message, the anchor).

use jiff::{
    SignedDuration, Timestamp, Zoned,
    civil::{Date, Time},
    tz::TimeZone,
};
use serde::Serialize;

/// The widest window any shop may use: 10:00 to 18:00 buyer-local.
pub const WINDOW_START: Time = Time::constant(10, 0, 0, 0);
/// End of the widest window (exclusive).
pub const WINDOW_END: Time = Time::constant(18, 0, 0, 0);
/// The most attempts any shop may allow per case.
pub const MAX_ATTEMPTS_CAP: u32 = 3;

/// A shop's call policy. Build it with [`CallPolicy::new`], which refuses to widen the window
/// or raise the attempts past the seeds' limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallPolicy {
    window_start: Time,
    window_end: Time,
    attempts: Budget,
    per_day: u32,
    min_gap: SignedDuration,
}

/// So many actions, optionally only within a span after an anchor: the one limit type shared by
/// call attempts (no span; the case is the anchor) and chat replies (the latest buyer message
/// is the anchor; a new one renews the budget).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    max: u32,
    within: Option<SignedDuration>,
}

/// A budget that allows nothing or has a non-positive span.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BudgetError {
    /// Zero actions.
    #[error("a budget must allow at least one action")]
    Zero,
    /// A span of zero or less.
    #[error("a budget's span must be positive")]
    Span,
}

/// Where a budget stands at one time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BudgetCheck {
    /// Whether one more action is allowed now.
    pub allowed: bool,
    /// How many more are allowed now (0 when expired).
    pub remaining: u32,
    /// Why not, when not.
    pub spent: Option<Spent>,
    /// When the span closes, if it has one and an anchor.
    #[serde(skip)]
    pub closes_at: Option<Timestamp>,
}

/// Why a budget allows nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Spent {
    /// Every action has been used.
    Exhausted,
    /// The span after the anchor is over.
    Expired,
    /// A span-bound budget without an anchor (no buyer message yet).
    NoAnchor,
}

impl Budget {
    /// `max` actions, within `within` of the anchor when given.
    ///
    /// # Errors
    /// Zero actions or a non-positive span.
    pub fn new(max: u32, within: Option<SignedDuration>) -> Result<Self, BudgetError> {
        if max == 0 {
            return Err(BudgetError::Zero);
        }
        if within.is_some_and(|w| !w.is_positive()) {
            return Err(BudgetError::Span);
        }
        Ok(Self { max, within })
    }

    /// The most actions.
    #[must_use]
    pub fn max(&self) -> u32 {
        self.max
    }

    /// The span after the anchor, if any.
    #[must_use]
    pub fn within(&self) -> Option<SignedDuration> {
        self.within
    }

    /// Why the budget allows nothing, in words for people (API errors, the console's detail line,
    /// the audit): says how many within what span, and that a new anchor renews it.
    #[must_use]
    pub fn explain(&self, why: Spent) -> String {
        let span = self.within.map_or_else(String::new, |w| format!(" within {} h", w.as_hours()));
        match why {
            Spent::Exhausted => format!(
                "the channel's reply budget is spent: {} replies{span} after the buyer's latest message; it renews when the buyer writes again",
                self.max
            ),
            Spent::Expired => format!(
                "the channel allows replies only{span} after the buyer's latest message, and that time is over; it renews when the buyer writes again"
            ),
            Spent::NoAnchor => "the channel allows replies only after a buyer message, and none is recorded".into(),
        }
    }

    /// Where the budget stands at `at` after `used` actions since `anchor`. Without a span the
    /// anchor and the time do not matter.
    #[must_use]
    pub fn check(&self, used: u32, anchor: Option<Timestamp>, at: Timestamp) -> BudgetCheck {
        let closes_at = self.within.zip(anchor).and_then(|(w, a)| a.checked_add(w).ok());
        let spent = match (self.within, anchor) {
            (Some(_), None) => Some(Spent::NoAnchor),
            (Some(_), Some(_)) if closes_at.is_none_or(|c| at >= c) => Some(Spent::Expired),
            _ if used >= self.max => Some(Spent::Exhausted),
            _ => None,
        };
        let remaining = if spent.is_some() { 0 } else { self.max - used };
        BudgetCheck { allowed: spent.is_none(), remaining, spent, closes_at }
    }
}

/// A policy that would break the seeds' limits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// The window is wider than 10:00–18:00, or empty.
    #[error("call window {start}-{end} must lie within 10:00-18:00 and not be empty")]
    Window { start: Time, end: Time },
    /// Attempts outside 1..=3.
    #[error("max attempts {0} must be between 1 and 3")]
    Attempts(u32),
    /// Calls per day outside 1..=2.
    #[error("calls per day {0} must be 1 or 2")]
    PerDay(u32),
    /// Negative gap.
    #[error("minimum gap between calls must not be negative")]
    Gap,
}

impl Default for CallPolicy {
    fn default() -> Self {
        Self {
            window_start: WINDOW_START,
            window_end: WINDOW_END,
            attempts: Budget { max: MAX_ATTEMPTS_CAP, within: None },
            per_day: 2,
            min_gap: SignedDuration::from_hours(2),
        }
    }
}

impl CallPolicy {
    /// A policy inside the seeds' limits.
    ///
    /// # Errors
    /// A window wider than 10:00–18:00 or empty, attempts outside 1..=3, per-day outside 1..=2,
    /// a negative gap.
    pub fn new(
        window_start: Time,
        window_end: Time,
        max_attempts: u32,
        per_day: u32,
        min_gap: SignedDuration,
    ) -> Result<Self, PolicyError> {
        if window_start < WINDOW_START || window_end > WINDOW_END || window_start >= window_end {
            return Err(PolicyError::Window { start: window_start, end: window_end });
        }
        if !(1..=MAX_ATTEMPTS_CAP).contains(&max_attempts) {
            return Err(PolicyError::Attempts(max_attempts));
        }
        if !(1..=2).contains(&per_day) {
            return Err(PolicyError::PerDay(per_day));
        }
        if min_gap.is_negative() {
            return Err(PolicyError::Gap);
        }
        let attempts = Budget::new(max_attempts, None).map_err(|_| PolicyError::Attempts(max_attempts))?;
        Ok(Self { window_start, window_end, attempts, per_day, min_gap })
    }

    /// The most attempts per case.
    #[must_use]
    pub fn max_attempts(&self) -> u32 {
        self.attempts.max()
    }

    /// The attempt cap as a [`Budget`] (no span).
    #[must_use]
    pub fn attempts(&self) -> Budget {
        self.attempts
    }

    /// The window as `HH:MM-HH:MM` (buyer-local).
    #[must_use]
    pub fn window_text(&self) -> String {
        format!("{}-{}", self.window_start.strftime("%H:%M"), self.window_end.strftime("%H:%M"))
    }

    /// Whether a call may start at `at` (in the buyer's zone `tz`), given the previous attempts
    /// of the case, and when the next allowed time is.
    #[must_use]
    pub fn check(&self, at: Timestamp, tz: &TimeZone, history: &History) -> CallDecision {
        if !self.attempts.check(history.count, None, at).allowed {
            return CallDecision { allowed: false, reason: Reason::MaxAttempts, next_allowed_at: None };
        }
        let reason = self.first_violation(at, tz, history);
        let next = self.next_allowed(at, tz, history);
        match reason {
            None => CallDecision { allowed: true, reason: Reason::Ok, next_allowed_at: Some(at.to_zoned(tz.clone())) },
            Some(r) => CallDecision { allowed: false, reason: r, next_allowed_at: next },
        }
    }

    fn first_violation(&self, at: Timestamp, tz: &TimeZone, history: &History) -> Option<Reason> {
        let local = at.to_zoned(tz.clone());
        let t = local.time();
        if t < self.window_start || t >= self.window_end {
            return Some(Reason::OutsideWindow);
        }
        if let Some(last) = history.last {
            if at < last {
                return Some(Reason::BeforeLastAttempt);
            }
            if at.duration_since(last) < self.min_gap {
                return Some(Reason::TooSoon);
            }
        }
        if history.on_date(local.date(), tz) >= self.per_day {
            return Some(Reason::DailyLimit);
        }
        None
    }

    fn next_allowed(&self, at: Timestamp, tz: &TimeZone, history: &History) -> Option<Zoned> {
        let mut t = at;
        if let Some(last) = history.last {
            t = t.max(last.checked_add(self.min_gap).ok()?);
        }
        // A handful of days always suffices (at most `per_day` attempts are counted on a day);
        // the bound only guards against a pathological time zone.
        for _ in 0..400 {
            let local = t.to_zoned(tz.clone());
            let date = local.date();
            let start = at_local(date, self.window_start, tz)?;
            let end = at_local(date, self.window_end, tz)?;
            if t < start {
                t = start;
                continue;
            }
            if t >= end || history.on_date(date, tz) >= self.per_day {
                t = at_local(date.tomorrow().ok()?, self.window_start, tz)?;
                continue;
            }
            return Some(t.to_zoned(tz.clone()));
        }
        None
    }
}

/// The previous call attempts of a case.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    /// How many attempts so far.
    pub count: u32,
    /// When the latest one was.
    pub last: Option<Timestamp>,
    /// The known attempt times (may be fewer than `count` when only the last is known).
    pub times: Vec<Timestamp>,
}

impl History {
    /// A history from the full list of attempt times.
    #[must_use]
    pub fn from_times(mut times: Vec<Timestamp>) -> Self {
        times.sort();
        Self { count: times.len() as u32, last: times.last().copied(), times }
    }

    fn on_date(&self, date: Date, tz: &TimeZone) -> u32 {
        let mut known: Vec<Timestamp> = self.times.clone();
        if let Some(l) = self.last
            && !known.contains(&l)
        {
            known.push(l);
        }
        known.iter().filter(|t| t.to_zoned(tz.clone()).date() == date).count() as u32
    }
}

/// The civil time `time` on `date` in `tz`; in a DST gap the later valid instant.
fn at_local(date: Date, time: Time, tz: &TimeZone) -> Option<Timestamp> {
    tz.to_ambiguous_zoned(date.to_datetime(time)).later().ok().map(|z| z.timestamp())
}

/// Why a call is or is not allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// Inside the window, under every limit.
    Ok,
    /// Outside the buyer-local call window.
    OutsideWindow,
    /// Too soon after the previous attempt.
    TooSoon,
    /// The time is before the latest recorded attempt.
    BeforeLastAttempt,
    /// Already the most calls for that day.
    DailyLimit,
    /// The case has had its attempts.
    MaxAttempts,
}

/// The answer of `shouhou calls check`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallDecision {
    /// Whether a call may start at the asked time.
    pub allowed: bool,
    /// Why.
    pub reason: Reason,
    /// The earliest allowed time at or after the asked time; `null` when no call is allowed
    /// any more.
    #[serde(serialize_with = "ser_zoned")]
    pub next_allowed_at: Option<Zoned>,
}

#[allow(clippy::ref_option)]
fn ser_zoned<S: serde::Serializer>(z: &Option<Zoned>, s: S) -> Result<S::Ok, S::Error> {
    match z {
        Some(z) => s.serialize_str(&z.timestamp().display_with_offset(z.offset()).to_string()),
        None => s.serialize_none(),
    }
}
