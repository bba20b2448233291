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

/// A callback promise ("we will call you back within 4 hours") across the day in Shanghai: kept
/// as worded while the window opens in time, otherwise moved to the next window and worded by it.
#[test]
fn callback_promises_across_the_day() {
    use shouhou::domain::schedule::CallbackWhen;
    let p = CallPolicy::default();
    let tz = shanghai();
    let at = |hm: &str| ts(&format!("2026-12-02T{hm}:00+08:00"));
    let local = |t: Timestamp| t.to_zoned(tz.clone()).strftime("%d %H:%M").to_string();
    let cases = [
        ("03:30", CallbackWhen::TodayAfter { hour: 10 }, "02 14:00"),
        ("05:59", CallbackWhen::TodayAfter { hour: 10 }, "02 14:00"),
        ("06:00", CallbackWhen::WithinHours { hours: 4 }, "02 10:00"),
        ("07:00", CallbackWhen::WithinHours { hours: 4 }, "02 11:00"),
        ("11:00", CallbackWhen::WithinHours { hours: 4 }, "02 15:00"),
        ("17:30", CallbackWhen::WithinHours { hours: 4 }, "02 18:00"),
        ("18:00", CallbackWhen::Tomorrow { hour: 10 }, "03 14:00"),
        ("23:59", CallbackWhen::Tomorrow { hour: 10 }, "03 14:00"),
    ];
    for (hm, when, due) in cases {
        let plan = p.callback(at(hm), &tz, 4);
        assert_eq!((hm, &plan.when, local(plan.due_at).as_str()), (hm, &when, due));
    }
}

/// Across DST changes the promise follows the buyer's wall clock: New York's spring-forward and
/// fall-back nights.
#[test]
fn callback_promises_across_dst() {
    use shouhou::domain::schedule::CallbackWhen;
    let tz = TimeZone::get("America/New_York").unwrap();
    let p = CallPolicy::default();
    // 01:30 EST on 2026-03-08; at 02:00 clocks jump to 03:00 EDT.
    let plan = p.callback(ts("2026-03-08T06:30:00Z"), &tz, 4);
    assert_eq!(plan.when, CallbackWhen::TodayAfter { hour: 10 });
    assert_eq!(plan.due_at, ts("2026-03-08T14:00:00-04:00"));
    // 23:00 EDT on 2026-10-31; the night has an extra hour.
    let plan = p.callback(ts("2026-11-01T03:00:00Z"), &tz, 4);
    assert_eq!(plan.when, CallbackWhen::Tomorrow { hour: 10 });
    assert_eq!(plan.due_at, ts("2026-11-01T14:00:00-05:00"));
    // An afternoon-only window words tomorrow by its hour, and a later date by its date.
    let late =
        CallPolicy::new(Time::new(14, 0, 0, 0).unwrap(), Time::new(18, 0, 0, 0).unwrap(), 3, 2, SignedDuration::ZERO)
            .unwrap();
    assert_eq!(
        late.callback(ts("2026-12-02T20:00:00+08:00"), &shanghai(), 4).when,
        CallbackWhen::Tomorrow { hour: 14 }
    );
}

proptest! {
    /// Wherever the buyer is, a callback promise falls due inside the call window, never before
    /// it is made, and a promise kept as worded is due within its hours.
    #[test]
    fn callback_due_inside_the_window(at in 1_700_000_000i64..1_900_000_000, hours in 1u32..30, tz in zones()) {
        use shouhou::domain::schedule::CallbackWhen;
        let p = CallPolicy::default();
        let now = Timestamp::from_second(at).unwrap();
        let plan = p.callback(now, &tz, hours);
        let t = plan.due_at.to_zoned(tz.clone()).time();
        prop_assert!(plan.due_at >= now);
        prop_assert!(t >= Time::new(10, 0, 0, 0).unwrap() && t <= Time::new(18, 0, 0, 0).unwrap(), "{t}");
        if let CallbackWhen::WithinHours { hours: h } = plan.when {
            prop_assert_eq!(h, hours);
            prop_assert!(plan.due_at <= now.checked_add(SignedDuration::from_hours(i64::from(hours))).unwrap());
        }
    }
}
