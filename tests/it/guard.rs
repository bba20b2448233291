//! The guard: never argue, never leak, never break the rules, on any outgoing text.

use shouhou::{
    domain::guard::{Guard, GuardContext, Protected, Verdict},
    eval::{evaluate_guard, parse_replies},
};

use crate::support::{root, understanding};

fn guard() -> &'static Guard {
    static G: std::sync::OnceLock<Guard> = std::sync::OnceLock::new();
    G.get_or_init(|| Guard::load(&root().join("templates/guard.toml"), &understanding().catalog.normalizer).unwrap())
}

fn check(text: &str, ctx: &GuardContext) -> Verdict {
    guard().check(text, ctx, &understanding().catalog.normalizer)
}

fn orderer() -> GuardContext {
    GuardContext { recipient_is_orderer: true, return_qualifies: true, ..Default::default() }
}

fn stranger() -> GuardContext {
    GuardContext {
        recipient_is_orderer: false,
        return_qualifies: true,
        protected: Protected {
            names: vec!["王秀英".into()],
            phones: vec!["13912345678".into()],
            addresses: vec!["测试省示例市幸福区光明路88号".into()],
        },
        ..Default::default()
    }
}

/// The seeds' counter-example is blocked, with its span, the reason and a softer wording.
#[test]
fn the_seed_counter_example_is_blocked() {
    let text = "我们发出都是有放冰袋不会坏的哦！";
    let v = check(text, &orderer());
    assert_eq!(v.verdict, "block");
    let f = v.findings.iter().find(|f| f.rule == "argue.rebuttal").expect("a rebuttal finding");
    let spanned: String = text.chars().skip(f.span[0]).take(f.span[1] - f.span[0]).collect();
    assert!(text.contains(&spanned) && !spanned.is_empty());
    assert!(f.suggestion.as_deref().is_some_and(|s| !s.is_empty()));
    // The suggested wording itself passes.
    assert!(check(f.suggestion.as_deref().unwrap(), &orderer()).passed());
}

#[test]
fn sincere_apologies_that_mention_rules_pass() {
    for text in [
        "非常抱歉，平台规定修改地址需要下单账号联系，这也是为了保护您的信息安全，麻烦您用下单账号联系我们哦",
        "这不是您的问题，是我们的疏忽，真的很抱歉",
        "不会让您白等的，处理好第一时间告诉您",
    ] {
        let v = check(text, &orderer());
        assert!(v.passed(), "{text}: {:?}", v.findings);
    }
}

#[test]
fn leaks_to_a_non_ordering_account_are_blocked() {
    let cases = [
        ("您家人的手机尾号是5678对吧", "leak.order_phone"),
        ("收件人是秀英，没错的", "leak.receiver_name"),
        ("地址写的是光明路那边", "leak.order_address"),
        ("电话13800001234", "leak.phone"),
        ("身份证号110101199001011234", "leak.id_number"),
        ("寄到测试省示例市某区某路9号了", "leak.address"),
    ];
    for (text, rule) in cases {
        let v = check(text, &stranger());
        assert!(v.findings.iter().any(|f| f.rule == rule), "{text}: expected {rule}, got {:?}", v.findings);
        assert_eq!(v.verdict, "block");
    }
    // The same order data to the ordering account is fine.
    assert!(check("您的手机尾号是5678，地址是光明路88号，收件人王秀英", &orderer()).passed());
}

#[test]
fn internal_data_is_never_sent() {
    let v = check("这个进价都要30块了", &orderer());
    assert!(v.findings.iter().any(|f| f.rule == "leak.internal"));
}

#[test]
fn refusals_the_rules_forbid() {
    assert!(!check("不好意思，我们店不开发票的", &orderer()).passed());
    assert!(!check("不支持7天无理由退货哦", &orderer()).passed());
    // For an order of excluded items (fresh food), explaining the exclusion is allowed.
    let excluded = GuardContext { return_qualifies: false, ..orderer() };
    assert!(check("生鲜类商品不支持7天无理由退货哦，有任何问题拍照给我们，一定给您处理", &excluded).passed());
}

#[test]
fn promises_faster_than_the_sla_are_blocked() {
    let ctx = GuardContext { min_promise_hours: Some(24), ..orderer() };
    assert!(!check("退款2小时内到账", &ctx).passed());
    assert!(!check("马上到账的亲", &ctx).passed());
    assert!(check("退款24小时内处理好", &ctx).passed());
}

/// CI gate on the replies corpus the rules were tuned on: recall ≥ 0.95, false positives ≤ 2%.
#[test]
fn replies_corpus() {
    let src = std::fs::read_to_string(root().join("tests/fixtures/replies.tsv")).unwrap();
    let samples = parse_replies(&src).unwrap();
    assert!(samples.len() >= 150);
    let argue = samples.iter().filter(|s| s.argue).count();
    assert!(argue * 10 >= samples.len() * 4 && argue * 10 <= samples.len() * 6, "about half each");
    let r = evaluate_guard(guard(), &understanding().catalog.normalizer, &samples);
    eprintln!("guard on replies.tsv: recall {:.3}, false positives {}/{}", r.recall, r.blocked_ok, r.ok);
    assert!(r.recall >= 0.95, "{}", r.to_text());
    assert!(r.false_positive_rate <= 0.02, "{}", r.to_text());
}

/// The blind holdout of replies (never tuned against): printed for the record; the floor only
/// catches a collapse.
#[test]
fn replies_holdout_is_reported() {
    let src = std::fs::read_to_string(root().join("tests/fixtures/replies_holdout.tsv")).unwrap();
    let r = evaluate_guard(guard(), &understanding().catalog.normalizer, &parse_replies(&src).unwrap());
    eprintln!("guard on replies_holdout.tsv: recall {:.3}, false positives {}/{}", r.recall, r.blocked_ok, r.ok);
    assert!(r.recall >= 0.4 && r.false_positive_rate <= 0.1, "{}", r.to_text());
}
