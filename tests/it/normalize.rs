//! The normalizer: conversions, offsets back into the buyer's text, idempotence.

use proptest::prelude::*;

use crate::support::understanding;

fn norm(s: &str) -> String {
    understanding().catalog.normalizer.normalize(s).text
}

/// Each conversion step, one case per row.
#[test]
fn conversions() {
    let cases = [
        ("我買的雞腿都臭了", "我买的鸡腿都臭了"), // traditional → simplified (OpenCC T2s)
        ("衣服很乾淨", "衣服很干净"),             // phrase-level conversion
        ("我很著急", "我很着急"),                 // project override table
        ("要ＸＬ码，１２３", "要xl码,123"),       // full-width → half-width, lower case
        ("快快快快点发货", "快快点发货"),         // elongation cut to two
        ("谢谢", "谢谢"),                         // a legitimate double stays
        ("怎么还没到！！！？？", "怎么还没到!?"), // punctuation runs collapse
        ("发 错 了", "发错了"),                   // spaces between Chinese characters go
        ("size  XL  ok", "size xl ok"),           // one space between ASCII words stays
        ("臭了😡😡🙏", "臭了"),                   // emoji kept out of the text
        ("「米白」和“卡其”", "米白和卡其"),       // quotes and brackets dropped
        ("电话13800001234", "电话13800001234"),   // digits never collapse
        ("到了。。。好吧～～", "到了.好吧~"),
    ];
    for (input, expected) in cases {
        assert_eq!(norm(input), expected, "input {input:?}");
    }
}

/// Emoji, exclamations and elongation are recorded as tone.
#[test]
fn tone_is_kept() {
    let n = understanding().catalog.normalizer.normalize("快快快快点！！😡🙏");
    assert_eq!(n.tone.exclamations, 2);
    assert!(n.tone.elongated);
    assert_eq!(n.tone.emoji, vec!["😡🙏".to_owned()]);
}

/// A span in the normalized text maps back to the buyer's own characters.
#[test]
fn offsets_point_into_the_original() {
    let raw = "亲😡 我買的雞腿　都臭了！！";
    let n = understanding().catalog.normalizer.normalize(raw);
    let start = n.text.find("鸡腿").unwrap();
    let (s, e) = n.original_span(start, start + "鸡腿".len());
    let orig: String = raw.chars().skip(s).take(e - s).collect();
    assert_eq!(orig, "雞腿");
    let start = n.text.find("臭了").unwrap();
    let (s, e) = n.original_span(start, n.text.len());
    let orig: String = raw.chars().skip(s).take(e - s).collect();
    assert_eq!(orig, "臭了！！");
}

/// An elongated run maps back to the whole run.
#[test]
fn offsets_cover_elongations() {
    let raw = "快快快快点";
    let n = understanding().catalog.normalizer.normalize(raw);
    assert_eq!(n.text, "快快点");
    assert_eq!(n.original_span(0, n.text.len()), (0, 5));
}

fn buyerish() -> impl Strategy<Value = String> {
    // A mix of the characters buyers type: simplified and traditional Chinese, full-width and
    // ASCII letters and digits, punctuation of both widths, spaces, emoji, repeats.
    let pieces = prop::sample::select(vec![
        "我",
        "買",
        "买",
        "的",
        "雞",
        "腿",
        "臭",
        "了",
        "發",
        "貨",
        "快",
        "快快快",
        "乾淨",
        "著急",
        "頭髮",
        "ＸＬ",
        "XL",
        "xl",
        "１２３",
        "123",
        "13800001234",
        "，",
        ",",
        "。",
        "！",
        "!!",
        "？",
        "~",
        "～～",
        " ",
        "　",
        "  ",
        "😡",
        "🙏",
        "❤️",
        "「",
        "」",
        "“",
        "”",
        "薴",
        "苧",
        "a",
        "B",
        "…",
        "、",
        "-",
        "*",
    ]);
    prop::collection::vec(pieces, 0..24).prop_map(|v| v.concat())
}

proptest! {
    /// Normalizing twice gives the same text as normalizing once.
    #[test]
    fn idempotent(s in buyerish()) {
        let once = norm(&s);
        prop_assert_eq!(norm(&once), once);
    }

    /// Idempotent on arbitrary Unicode too, not just buyer-like text.
    #[test]
    fn idempotent_any(s in "\\PC{0,40}") {
        let once = norm(&s);
        prop_assert_eq!(norm(&once), once);
    }

    /// The offset map has one in-bounds, ordered range per output character.
    #[test]
    fn offset_map_is_well_formed(s in buyerish()) {
        let n = understanding().catalog.normalizer.normalize(&s);
        let len = s.chars().count() as u32;
        prop_assert_eq!(n.origin.len(), n.text.chars().count());
        let mut prev = 0;
        for &(a, b) in &n.origin {
            prop_assert!(a <= b && b <= len);
            prop_assert!(a >= prev);
            prev = a;
        }
    }
}
