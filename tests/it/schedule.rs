//! Call policy: the window, the attempts, the gap and the daily limit hold for every input.

use jiff::{SignedDuration, Timestamp, civil::Time, tz::TimeZone};
use proptest::prelude::*;
use shouhou::domain::schedule::{CallPolicy, History, Reason};

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn shanghai() -> TimeZone {
    TimeZone::get("Asia/Shanghai").unwrap()
}

#[test]
fn table() {
    let p = CallPolicy::default();
    let tz = shanghai();
    let none = History::default();
    let cases = [
        ("2026-11-22T09:59:59+08:00", &none, false, Reason::OutsideWindow, Some("2026-11-22T10:00:00+08:00")),
        ("2026-11-22T10:00:00+08:00", &none, true, Reason::Ok, Some("2026-11-22T10:00:00+08:00")),
        ("2026-11-22T17:59:00+08:00", &none, true, Reason::Ok, Some("2026-11-22T17:59:00+08:00")),
        ("2026-11-22T18:00:00+08:00", &none, false, Reason::OutsideWindow, Some("2026-11-23T10:00:00+08:00")),
        // A buyer-local check: 03:00 UTC is 11:00 in Shanghai.
        ("2026-11-22T03:00:00Z", &none, true, Reason::Ok, Some("2026-11-22T11:00:00+08:00")),
    ];
    for (at, h, allowed, reason, next) in cases {
        let d = p.check(ts(at), &tz, h);
        assert_eq!((d.allowed, d.reason), (allowed, reason), "at {at}");
        let got = d.next_allowed_at.map(|z| z.timestamp());
        assert_eq!(got, next.map(ts), "at {at}");
    }
}

#[test]
fn gap_daily_limit_and_attempts() {
    let p = CallPolicy::default();
    let tz = shanghai();
    let one = History::from_times(vec![ts("2026-11-22T10:00:00+08:00")]);
    let d = p.check(ts("2026-11-22T11:00:00+08:00"), &tz, &one);
    assert_eq!((d.allowed, d.reason), (false, Reason::TooSoon));
    assert_eq!(d.next_allowed_at.unwrap().timestamp(), ts("2026-11-22T12:00:00+08:00"));
    let two = History::from_times(vec![ts("2026-11-22T10:00:00+08:00"), ts("2026-11-22T13:00:00+08:00")]);
    let d = p.check(ts("2026-11-22T16:00:00+08:00"), &tz, &two);
    assert_eq!((d.allowed, d.reason), (false, Reason::DailyLimit));
    assert_eq!(d.next_allowed_at.unwrap().timestamp(), ts("2026-11-23T10:00:00+08:00"));
    let three = History::from_times(vec![
        ts("2026-11-20T10:00:00+08:00"),
        ts("2026-11-21T10:00:00+08:00"),
        ts("2026-11-22T10:00:00+08:00"),
    ]);
    let d = p.check(ts("2026-11-23T11:00:00+08:00"), &tz, &three);
    assert_eq!((d.allowed, d.reason, d.next_allowed_at), (false, Reason::MaxAttempts, None));
}

#[test]
fn a_shop_may_narrow_but_never_widen() {
    let t = |h| Time::new(h, 0, 0, 0).unwrap();
    assert!(CallPolicy::new(t(11), t(17), 2, 2, SignedDuration::from_hours(2)).is_ok());
    assert!(CallPolicy::new(t(9), t(18), 3, 2, SignedDuration::ZERO).is_err());
    assert!(CallPolicy::new(t(10), t(19), 3, 2, SignedDuration::ZERO).is_err());
    assert!(CallPolicy::new(t(10), t(18), 4, 2, SignedDuration::ZERO).is_err());
    assert!(CallPolicy::new(t(10), t(18), 3, 3, SignedDuration::ZERO).is_err());
}

/// DST: in New York on the spring-forward day, the window is still 10:00–18:00 local.
#[test]
fn dst_correct() {
    let tz = TimeZone::get("America/New_York").unwrap();
    let p = CallPolicy::default();
    let d = p.check(ts("2026-03-08T06:00:00Z"), &tz, &History::default()); // 01:00 EST
    assert_eq!(d.next_allowed_at.unwrap().timestamp(), ts("2026-03-08T10:00:00-04:00"));
    let d = p.check(ts("2026-11-01T05:30:00Z"), &tz, &History::default()); // 01:30 EDT, fall-back day
    assert_eq!(d.next_allowed_at.unwrap().timestamp(), ts("2026-11-01T10:00:00-05:00"));
}

fn zones() -> impl Strategy<Value = TimeZone> {
    prop::sample::select(vec![
        "Asia/Shanghai",
        "America/New_York",
        "Europe/London",
        "Australia/Lord_Howe",
        "Asia/Kolkata",
    ])
    .prop_map(|z| TimeZone::get(z).unwrap())
}

proptest! {
    /// Never allowed outside the window or past the attempts; the next allowed time is itself
    /// allowed, inside the window, and not before the asked time.
    #[test]
    fn never_outside_the_rules(
        at in 1_700_000_000i64..1_900_000_000,
        offsets in prop::collection::vec(1i64..400_000, 0..4),
        max in 2u32..=3,
        tz in zones(),
    ) {
        let p = CallPolicy::new(Time::new(10, 0, 0, 0).unwrap(), Time::new(18, 0, 0, 0).unwrap(), max, 2, SignedDuration::from_hours(2)).unwrap();
        let at = Timestamp::from_second(at).unwrap();
        let history = History::from_times(offsets.iter().map(|o| at.checked_sub(SignedDuration::from_secs(*o)).unwrap()).collect());
        let d = p.check(at, &tz, &history);
        let local = at.to_zoned(tz.clone()).time();
        if d.allowed {
            prop_assert!(local >= Time::new(10, 0, 0, 0).unwrap() && local < Time::new(18, 0, 0, 0).unwrap());
            prop_assert!(history.count < max);
        }
        if history.count >= max {
            prop_assert!(!d.allowed);
            prop_assert!(d.next_allowed_at.is_none());
        }
        if let Some(next) = d.next_allowed_at {
            prop_assert!(next.timestamp() >= at);
            let t = next.time();
            prop_assert!(t >= Time::new(10, 0, 0, 0).unwrap() && t < Time::new(18, 0, 0, 0).unwrap(), "next {next}");
            let again = p.check(next.timestamp(), &tz, &history);
            prop_assert!(again.allowed, "next_allowed_at {next} is not allowed: {:?}", again.reason);
        }
    }
}
