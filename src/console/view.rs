//! What the pages show: times in the shop's zone, highlighted segments, the order card as a role
//! may see it, guard verdicts, and which drafts part-time staff may see.

use jiff::{Timestamp, tz::TimeZone};
use serde_json::{Value, json};

use super::Console;
use crate::domain::{
    mask::{mask_address, mask_name, mask_phone, may_see_receiver},
    role::Role,
};

/// Unix milliseconds as `YYYY-MM-DD HH:MM` in `tz`.
#[must_use]
pub fn fmt_ms(ms: i64, tz: &TimeZone) -> String {
    Timestamp::from_millisecond(ms)
        .map(|t| t.to_zoned(tz.clone()).strftime("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_default()
}

/// Splits `text` into segments; characters inside a span (character offsets, `[start, end)`)
/// carry that span's label. Overlaps keep the first span's label.
#[must_use]
pub fn segments(text: &str, spans: &[([usize; 2], String)]) -> Vec<Value> {
    let chars: Vec<char> = text.chars().collect();
    let mut label: Vec<Option<&str>> = vec![None; chars.len()];
    for ([a, b], l) in spans {
        for slot in label.iter_mut().take((*b).min(chars.len())).skip(*a) {
            if slot.is_none() {
                *slot = Some(l.as_str());
            }
        }
    }
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let j = (i..chars.len()).find(|&j| label[j] != label[i]).unwrap_or(chars.len());
        out.push(json!({"t": chars[i..j].iter().collect::<String>(), "hl": label[i]}));
        i = j;
    }
    out
}

/// Whether a draft is a FAQ-type item a part-time user may see: waiting for review (not
/// escalated), every intent among the shop's `routing.auto_intents`, and not yet handed on.
pub(super) fn faq_item(c: &Console, d: &Value, triaged: &[i64]) -> bool {
    crate::review::part_time_may_see(c.settings(), d, triaged)
}

/// Receiver data as the role may see it.
pub(super) fn order_card(order: Option<&crate::domain::event::Order>, role: Role) -> Value {
    let Some(o) = order else { return Value::Null };
    let open = may_see_receiver(role);
    let rc = o.receiver.clone().unwrap_or_default();
    let show = |v: Option<String>, mask: fn(&str) -> String| v.map(|v| if open { v } else { mask(&v) });
    json!({
        "order_id": o.order_id, "status": o.status, "total": o.total,
        "items": o.items.iter().map(|i| json!({"title": i.title, "sku": i.sku, "price": i.price, "quantity": i.quantity})).collect::<Vec<_>>(),
        "receiver": {"name": show(rc.name, mask_name), "phone": show(rc.phone, mask_phone), "address": show(rc.address, mask_address)},
        "masked": !open,
    })
}

pub(super) fn verdict_json(text: &str, v: &crate::domain::guard::Verdict) -> Value {
    let spans: Vec<([usize; 2], String)> = v.findings.iter().map(|f| (f.span, f.rule.clone())).collect();
    let findings = serde_json::to_value(&v.findings).unwrap_or_default();
    json!({"verdict": v.verdict, "findings": distinct(findings.as_array().cloned().unwrap_or_default()), "segments": segments(text, &spans)})
}

/// Findings to list: one per rule and wording (the guard reports overlapping matches of a
/// rule separately; the marks show them all, the list needs each reason once).
pub(super) fn distinct(findings: Vec<Value>) -> Vec<Value> {
    let mut seen = std::collections::HashSet::new();
    findings.into_iter().filter(|f| seen.insert((f["rule"].to_string(), f["suggestion"].to_string()))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A text, its spans, and the (text, label) segments expected.
    type Case<'a> = (&'a str, Vec<([usize; 2], String)>, Vec<(&'a str, Option<&'a str>)>);

    #[test]
    fn spans_cut_the_text_into_labelled_segments() {
        let span = |a: usize, b: usize, l: &str| ([a, b], l.to_owned());
        let table: Vec<Case<'_>> = vec![
            ("abcdef", vec![], vec![("abcdef", None)]),
            ("abcdef", vec![span(1, 3, "x")], vec![("a", None), ("bc", Some("x")), ("def", None)]),
            // Overlaps keep the first span's label.
            ("abcdef", vec![span(0, 4, "x"), span(2, 6, "y")], vec![("abcd", Some("x")), ("ef", Some("y"))]),
            // Spans past the end are cut at the end.
            ("abc", vec![span(2, 9, "x")], vec![("ab", None), ("c", Some("x"))]),
            ("", vec![span(0, 2, "x")], vec![]),
        ];
        for (text, spans, want) in table {
            let got: Vec<(String, Option<String>)> = segments(text, &spans)
                .into_iter()
                .map(|v| (v["t"].as_str().unwrap_or_default().to_owned(), v["hl"].as_str().map(str::to_owned)))
                .collect();
            let want: Vec<(String, Option<String>)> =
                want.into_iter().map(|(t, l)| (t.to_owned(), l.map(str::to_owned))).collect();
            assert_eq!(got, want, "{text:?}");
        }
    }
}
