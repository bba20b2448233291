//! The guard: never argue, never leak, never send the buyer away, never promise beyond authority
//! or the calendar, on any outgoing text.

use proptest::prelude::*;
use shouhou::{
    domain::{
        fold::Work,
        guard::{DIVERT, EditorAuthority, Guard, GuardContext, KINDS, Protected, Verdict},
        money::Money,
    },
    eval::{evaluate_guard, parse_replies},
};

use crate::support::{assistant, root, understanding};

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

fn receiver() -> Protected {
    Protected {
        names: vec!["王小明".into()],
        phones: vec!["13912345678".into()],
        addresses: vec!["浙江省杭州市西湖区文三路88号3栋201室".into()],
    }
}

fn stranger() -> GuardContext {
    GuardContext { recipient_is_orderer: false, return_qualifies: true, protected: receiver(), ..Default::default() }
}

fn spanned(text: &str, span: [usize; 2]) -> String {
    text.chars().skip(span[0]).take(span[1] - span[0]).collect()
}

fn rules(v: &Verdict) -> Vec<&str> {
    v.findings.iter().map(|f| f.rule.as_str()).collect()
}

/// The seeds' counter-example is blocked, with its span, the kind, the Chinese explanation and a
/// softer wording that itself passes.
#[test]
fn the_seed_counter_example_is_blocked() {
    let text = "我们发出都是有放冰袋不会坏的哦！";
    let v = check(text, &orderer());
    assert_eq!(v.verdict, "block");
    let f = v.findings.iter().find(|f| f.rule == "argue.rebuttal").expect("a rebuttal finding");
    assert_eq!(spanned(text, f.span), "不会坏");
    assert_eq!(f.layer, "rules");
    assert!(f.explain.as_deref().is_some_and(|s| !s.is_empty()));
    assert!(check(f.suggestion.as_deref().unwrap(), &orderer()).passed());
}

/// Issue 13's examples: the three arguing replies that passed are blocked, each with its kind;
/// asking how the food was stored, ice packs mentioned, is a question and passes.
#[test]
fn the_issue_examples() {
    for (text, kind) in [
        ("我们的产品质量是没有问题的。", "argue.rebuttal"),
        ("别人买的都没问题，就您这有问题。", "argue.rebuttal"),
        ("冷冻的东西放久了当然会坏。", "argue.blame_shift"),
    ] {
        let v = check(text, &orderer());
        assert!(rules(&v).contains(&kind), "{text}: {:?}", v.findings);
    }
    for text in [
        "实在不好意思给您添麻烦了,我看物流2天就到了,发出也有加冰袋,收到您是怎么存储的呢?",
        "给您添麻烦了，我们发货的时候都有放冰袋，想问一下您收到后是怎么保存的呢？",
        "不好意思亲，物流两天就到了，箱子里也放了冰袋，方便说下收到后是放冷冻还是冷藏吗？",
    ] {
        let v = check(text, &orderer());
        assert!(v.passed(), "{text}: {:?}", v.findings);
    }
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

/// Every kind has its wording in data, and a block always names a kind and a span.
#[test]
fn every_block_names_a_kind_and_a_span() {
    assert_eq!(guard().kinds().iter().map(|k| k.id.as_str()).collect::<Vec<_>>(), KINDS);
    for k in guard().kinds() {
        assert!(!k.explain.is_empty() && !k.suggestion.is_empty() && !k.name.is_empty(), "{}", k.id);
        assert!(check(&k.suggestion, &orderer()).passed(), "the softer wording of {} passes", k.id);
    }
    let src = std::fs::read_to_string(root().join("tests/fixtures/replies.tsv")).unwrap();
    for s in parse_replies(&src).unwrap().iter().filter(|s| s.label.is_some()) {
        let v = check(&s.text, &orderer());
        for f in &v.findings {
            let kind = f.rule.strip_prefix("argue.").or_else(|| f.rule.strip_prefix("divert.").map(|_| DIVERT));
            let kind = kind.unwrap_or_else(|| panic!("line {}: unexpected rule {}", s.line, f.rule));
            assert!(kind == DIVERT || KINDS.contains(&kind), "line {}: {kind}", s.line);
            assert!(f.span[0] < f.span[1] && f.span[1] <= s.text.chars().count(), "line {}: span {:?}", s.line, f.span);
        }
    }
}

/// Every positive 话术 of the seeds, verbatim, passes (they are the training data's `seed:` rows).
#[test]
fn no_seed_wording_is_blocked() {
    let src = std::fs::read_to_string(root().join("templates/guard/replies.tsv")).unwrap();
    let seeds: Vec<_> = parse_replies(&src)
        .unwrap()
        .into_iter()
        .filter(|s| s.source.starts_with("seed:") && s.label.is_none())
        .collect();
    assert!(seeds.len() >= 20, "{} seed rows", seeds.len());
    for s in &seeds {
        let v = check(&s.text, &orderer());
        assert!(v.passed(), "line {} ({}): {} {:?}", s.line, s.source, s.text, v.findings);
    }
}

/// The learned layer catches arguing the rules never saw, and says so.
#[test]
fn the_learned_layer_names_its_kind_and_span() {
    let text = "你這樣鬧下去對你沒好處";
    let v = check(text, &orderer());
    let f = v.findings.first().unwrap_or_else(|| panic!("blocked: {v:?}"));
    assert!(f.rule.starts_with("argue."), "{f:?}");
    assert!(!spanned(text, f.span).is_empty());
}

#[test]
fn leaks_to_a_non_ordering_account_are_blocked() {
    let cases = [
        ("您家人的手机尾号是5678对吧", "leak.order_phone"),
        ("收件人是小明，没错的", "leak.receiver_name"),
        ("地址写的是文三路那边", "leak.order_address"),
        ("电话13800001234", "leak.phone"),
        ("身份证号110101199001011234", "leak.id_number"),
        ("寄到测试省示例市某区某路9号了", "leak.address"),
    ];
    for (text, rule) in cases {
        let v = check(text, &stranger());
        assert!(rules(&v).contains(&rule), "{text}: expected {rule}, got {:?}", v.findings);
    }
    assert!(check("您的手机尾号是5678，地址是文三路88号，收件人王小明", &orderer()).passed());
}

/// The security review's disguises (M3): each is blocked to a non-orderer with the span of the
/// data in the original text, and passes to the orderer.
#[test]
fn disguised_receiver_data_is_blocked() {
    let zw = |s: &str| s.chars().map(|c| format!("{c}\u{200b}")).collect::<String>();
    let cases = [
        ("电话１３９１２３４５６７８".to_owned(), "leak.order_phone"),
        ("电话一三九一二三四五六七八".to_owned(), "leak.order_phone"),
        ("电话幺三九幺二三四五六七八".to_owned(), "leak.order_phone"),
        ("电话1 3 9 1 2 3 4 5 6 7 8".to_owned(), "leak.order_phone"),
        ("电话1-3-9-1-2-3-4-5-6-7-8".to_owned(), "leak.order_phone"),
        (format!("电话{}", zw("13912345678")), "leak.order_phone"),
        ("电话+86 139 1234 5678".to_owned(), "leak.phone"),
        ("收件人王 小 明".to_owned(), "leak.receiver_name"),
        (format!("收件人{}", zw("王小明")), "leak.receiver_name"),
        ("收件人王\u{00ad}小\u{202e}明".to_owned(), "leak.receiver_name"),
        ("地址浙江 省 杭州 市 西湖 区 文三 路 88 号".to_owned(), "leak.order_address"),
        (format!("地址{}", zw("浙江省杭州市西湖区文三路88号3栋201室")), "leak.order_address"),
        ("文三路８８号".to_owned(), "leak.order_address"),
    ];
    for (text, rule) in &cases {
        let v = check(text, &stranger());
        let f = v.findings.iter().find(|f| f.rule == *rule);
        let f = f.unwrap_or_else(|| panic!("{text:?}: expected {rule}, got {:?}", v.findings));
        // The span covers the disguised data in the original text, nothing before it.
        let s = spanned(text, f.span);
        assert!(!s.starts_with("电话") && !s.starts_with("收件人") && !s.starts_with("地址"), "{text:?}: {s:?}");
        assert!(check(text, &orderer()).passed(), "{text:?} to the orderer: {:?}", check(text, &orderer()).findings);
    }
}

/// Masking for part-time staff uses the same folding: the disguised data is masked, in place,
/// the text keeps its length.
#[test]
fn masking_uses_the_folding() {
    for text in [
        "电话１３９１２３４５６７８",
        "电话一三九一二三四五六七八",
        "收件人王 小 明",
        "住浙江省 杭州市 西湖区 文三路 88号",
    ] {
        let m = guard().mask(text, &receiver());
        assert_eq!(m.chars().count(), text.chars().count(), "{m}");
        assert_ne!(m, text);
        // What stays is what the console shows part-time staff (the first character of a name or
        // address, 3 + 4 digits of a phone): never the whole.
        let left = check(&m, &stranger());
        assert!(
            left.findings.iter().all(|f| f.rule != "leak.receiver_name" && f.rule != "leak.phone"),
            "{text} -> {m}"
        );
        let digits = guard().folder().fold(&m).chars.iter().filter(|c| c.is_ascii_digit()).count();
        assert!(digits <= 7, "{text} -> {m}");
    }
    assert_eq!(guard().mask("电话13912345678", &Protected::default()), "电话139****5678");
}

fn disguise(value: &str, how: &[u8]) -> String {
    const NUM: [char; 10] = ['零', '一', '二', '三', '四', '五', '六', '七', '八', '九'];
    const SEP: [&str; 8] = ["\u{200b}", " ", "-", "\u{00ad}", "\u{2060}", "\u{200e}", "\u{3000}", "."];
    let mut out = String::new();
    for (i, c) in value.chars().enumerate() {
        let h = how[i % how.len()];
        let c = match (h % 4, c.to_digit(10)) {
            (1, Some(d)) => char::from_u32(0xFF10 + d).unwrap(),
            (2, Some(d)) => NUM[d as usize],
            (3, Some(1)) => '幺',
            _ => c,
        };
        out.push(c);
        if !(h / 4).is_multiple_of(3) {
            out.push_str(SEP[(h as usize / 12) % SEP.len()]);
        }
    }
    out
}

fn phone() -> impl Strategy<Value = String> {
    ("1[3-9][0-9]{9}").prop_map(|s| s)
}

fn name() -> impl Strategy<Value = String> {
    let surnames = prop::sample::select(vec!['王', '李', '张', '刘', '陈', '杨', '赵', '黄', '周', '吴']);
    let given = prop::collection::vec(
        prop::sample::select(vec!['小', '明', '红', '伟', '芳', '强', '秀', '英', '华', '军']),
        1..=2,
    );
    (surnames, given).prop_map(|(s, g)| std::iter::once(s).chain(g).collect())
}

fn address() -> impl Strategy<Value = String> {
    let place = prop::collection::vec(
        prop::sample::select(vec!['测', '试', '示', '例', '幸', '福', '光', '明', '和', '平']),
        2..=3,
    );
    (place.clone(), place.clone(), place, 1u32..999).prop_map(|(p, c, r, n)| {
        format!(
            "{}省{}市{}路{n}号",
            p.iter().collect::<String>(),
            c.iter().collect::<String>(),
            r.iter().collect::<String>()
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]
    /// Random receivers written out with random disguises: none passes to a non-orderer, each is
    /// found as the order's data, and the orderer still receives what they may see.
    #[test]
    fn no_disguise_passes(
        ph in phone(), nm in name(), ad in address(),
        how in prop::collection::vec(any::<u8>(), 1..16),
        which in 0usize..3,
    ) {
        let protected = Protected { names: vec![nm.clone()], phones: vec![ph.clone()], addresses: vec![ad.clone()] };
        let (value, rule) = [(&ph, "leak.order_phone"), (&nm, "leak.receiver_name"), (&ad, "leak.order_address")][which];
        let text = format!("亲，信息是{}，请核对", disguise(value, &how));
        let ctx = GuardContext { recipient_is_orderer: false, protected: protected.clone(), ..GuardContext::default() };
        let v = check(&text, &ctx);
        prop_assert!(v.findings.iter().any(|f| f.rule == rule), "{:?}: {:?}", text, v.findings);
        let to_orderer = GuardContext { recipient_is_orderer: true, protected, ..GuardContext::default() };
        prop_assert!(check(&text, &to_orderer).findings.iter().all(|f| !f.rule.starts_with("leak.")));
    }
}

/// The folding and the leak scans are linear: 100 KB of the worst inputs (digits, the receiver's
/// name over and over, address markers, zero-width characters) cost a bounded number of steps
/// per character, counted, not timed.
#[test]
fn leak_checks_are_linear_on_100kb() {
    let folder = guard().folder();
    let p = receiver();
    let needles = folder.needles(&p.names, &p.phones, &p.addresses, 2);
    let n = 100_000;
    let inputs = [
        "1".repeat(n),
        "13912345678".repeat(n / 11),
        "王小王小明".repeat(n / 5),
        "省市区路号".repeat(n / 5),
        "1\u{200b}".repeat(n / 2),
        "一三九 ".repeat(n / 4),
        "文三路88号3栋".repeat(n / 8),
    ];
    for input in &inputs {
        let chars = input.chars().count() as u64;
        let mut small = Work::default();
        let half: String = input.chars().take(input.chars().count() / 2).collect();
        let _ = folder.find_counted(&half, &needles, &mut small);
        let mut work = Work::default();
        let hits = folder.find_counted(input, &needles, &mut work);
        assert!(work.0 <= 60 * chars, "{} steps for {chars} chars of {:?}…", work.0, &input[..8]);
        // Twice the input, about twice the work (not four times).
        assert!(work.0 <= 2 * small.0 + 2 * 60 * 16, "{} vs {} for {:?}…", work.0, small.0, &input[..8]);
        // Findings stay bounded in the verdict (merged runs, a cap per rule).
        let v = check(input, &stranger());
        assert!(v.findings.len() <= 200, "{} findings", v.findings.len());
        let _ = hits;
    }
}

#[test]
fn internal_data_is_never_sent() {
    let v = check("这个进价都要30块了", &orderer());
    assert!(rules(&v).contains(&"leak.internal"));
}

#[test]
fn refusals_of_a_right() {
    assert!(rules(&check("不好意思，我们店不开发票的", &orderer())).contains(&"argue.refuse_right"));
    assert!(rules(&check("不支持7天无理由退货哦", &orderer())).contains(&"argue.refuse_right"));
    // For an order of excluded items (fresh food), explaining the exclusion is allowed.
    let excluded = GuardContext { return_qualifies: false, ..orderer() };
    assert!(check("生鲜类商品不支持7天无理由退货哦，有任何问题拍照给我们，一定给您处理", &excluded).passed());
}

/// Off-platform diversion is blocked unless the channel allows it; refusing to divert passes.
#[test]
fn diversion_off_the_platform() {
    for text in [
        "加我微信 shouhou_test01，发我照片",
        "加下我们售后QQ 12345678 吧",
        "您打这个电话400-000-0000找我",
        "点这个链接 https://example.com/a 填一下",
    ] {
        let v = check(text, &orderer());
        assert!(rules(&v).contains(&"divert.off_platform"), "{text}: {:?}", v.findings);
        let allowed = GuardContext { divert_allowed: true, ..orderer() };
        assert!(check(text, &allowed).passed(), "{text} on an allowed channel: {:?}", check(text, &allowed).findings);
    }
    for text in ["亲，不需要加微信的，在这里沟通就可以", "收到您说要打12315，非常抱歉，主管马上联系您"]
    {
        assert!(check(text, &orderer()).passed(), "{text}: {:?}", check(text, &orderer()).findings);
    }
}

fn authority(role: &str, max_amount: &str, max_percent: u32, total: &str) -> GuardContext {
    GuardContext {
        authority: Some(EditorAuthority {
            role: role.into(),
            max_amount: Money::parse(max_amount).unwrap(),
            max_percent,
            order_total: Some(Money::parse(total).unwrap()),
        }),
        ..orderer()
    }
}

/// An edit offering more money than the editor may grant is blocked with the limit named; a
/// supervisor can send what is within theirs.
#[test]
fn authority_in_edits() {
    let text = "给您退款100元，您看可以吗";
    let v = check(text, &authority("agent", "20", 30, "39.90"));
    let f = v.findings.iter().find(|f| f.rule == "authority.exceeded").expect("blocked");
    assert!(f.message.contains("agent limit is 11.97") && f.message.contains("100 yuan"), "{}", f.message);
    assert!(spanned(text, f.span).ends_with("退款100元"), "{:?}", spanned(text, f.span));
    let within = "给您补偿30元红包，您看可以吗";
    assert!(rules(&check(within, &authority("agent", "20", 30, "39.90"))).contains(&"authority.exceeded"));
    assert!(check(within, &authority("supervisor", "300", 100, "39.90")).passed());
    assert!(check("给您补偿5元红包", &authority("agent", "20", 30, "39.90")).passed());
    assert!(rules(&check("给您退50%的货款", &authority("agent", "20", 30, "39.90"))).contains(&"authority.exceeded"));
    // Without an editor (the bot's own draft) the amount is not checked here.
    assert!(check(text, &orderer()).passed());
}

/// Through the assistant, as the API and console call it: the role's authority comes from
/// `[authority]` in shouhou.toml, the order total from the event.
#[test]
fn authority_from_the_config() {
    let ev = shouhou::domain::event::InboundEvent::parse(
        r#"{"message_id":"m1","conversation_id":"c1","sender":{"account_id":"buyer-1"},"text":"退款",
            "order":{"order_id":"1","buyer_account_id":"buyer-1","total":"39.90","items":[]}}"#,
    )
    .unwrap();
    let at = "2026-12-01T03:00:00Z".parse().unwrap(); // 11:00 in Shanghai
    let a = assistant();
    let v = a.check_edit("给您退款100元", Some(&ev), "agent", at);
    assert!(v.findings.iter().any(|f| f.rule == "authority.exceeded" && f.message.contains("11.97")), "{v:?}");
    assert!(a.check_edit("给您退款30元", Some(&ev), "supervisor", at).passed());
    assert!(!a.check_edit("给您退款30元", Some(&ev), "part_time", at).passed());
}

#[test]
fn promises_faster_than_the_sla_are_blocked() {
    let ctx = GuardContext { min_promise_hours: Some(24), ..orderer() };
    assert!(!check("退款2小时内到账", &ctx).passed());
    assert!(!check("马上到账的亲", &ctx).passed());
    assert!(check("退款24小时内处理好", &ctx).passed());
}

/// A callback promise the call window makes impossible is blocked: "4小时内会联系您" at 03:30
/// buyer-local (the window opens at 10:00), fine at 11:00, and "今天10点后" is fine at 03:30.
#[test]
fn callback_promises_respect_the_call_window() {
    let a = assistant();
    let night = "2026-12-01T19:30:00Z".parse().unwrap(); // 03:30 in Shanghai, Dec 2
    let day = "2026-12-02T03:00:00Z".parse().unwrap(); // 11:00
    let v = a.check_edit("给您添麻烦了，4小时内会联系您", None, "agent", night);
    assert!(rules(&v).contains(&"rule.callback_outside_window"), "{v:?}");
    assert!(a.check_edit("给您添麻烦了，4小时内会联系您", None, "agent", day).passed());
    assert!(a.check_edit("给您添麻烦了，今天10点后联系您", None, "agent", night).passed());
    assert!(a.check_edit("给您添麻烦了，8小时内会联系您", None, "agent", night).passed());
}

/// CI gate on the dev split of the corpus (never trained on): recall ≥ 0.95 overall and ≥ 0.85
/// per kind, false blocks ≤ 2%.
#[test]
fn replies_corpus() {
    let src = std::fs::read_to_string(root().join("tests/fixtures/replies.tsv")).unwrap();
    let samples = parse_replies(&src).unwrap();
    assert!(samples.len() >= 400);
    let r = evaluate_guard(guard(), &understanding().catalog.normalizer, &samples);
    eprintln!("guard on replies.tsv: recall {:.3}, false blocks {}/{}", r.recall, r.blocked_ok, r.ok);
    assert!(r.recall >= 0.95, "{}", r.to_text());
    assert!(r.false_positive_rate <= 0.02, "{}", r.to_text());
    for k in &r.per_kind {
        assert!(k.recall >= 0.85, "{}: {}", k.label, r.to_text());
    }
}

/// The session-1 blind holdout of replies (never tuned against): printed for the record; the
/// floor only catches a collapse.
#[test]
fn replies_holdout_is_reported() {
    let src = std::fs::read_to_string(root().join("tests/fixtures/replies_holdout.tsv")).unwrap();
    let r = evaluate_guard(guard(), &understanding().catalog.normalizer, &parse_replies(&src).unwrap());
    eprintln!("guard on replies_holdout.tsv: recall {:.3}, false blocks {}/{}", r.recall, r.blocked_ok, r.ok);
    assert!(r.recall >= 0.5 && r.false_positive_rate <= 0.1, "{}", r.to_text());
}

/// The learned layer is deterministic: loading twice gives the same verdicts.
#[test]
fn training_is_deterministic() {
    let again = Guard::load(&root().join("templates/guard.toml"), &understanding().catalog.normalizer).unwrap();
    let src = std::fs::read_to_string(root().join("tests/fixtures/replies.tsv")).unwrap();
    for s in parse_replies(&src).unwrap() {
        assert_eq!(again.check(&s.text, &orderer(), &understanding().catalog.normalizer), check(&s.text, &orderer()));
    }
}

/// Load errors name the file and the key.
#[test]
fn load_errors_name_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let base = std::fs::read_to_string(root().join("templates/guard.toml")).unwrap();
    std::fs::create_dir_all(dir.path().join("guard")).unwrap();
    std::fs::copy(root().join("templates/guard/replies.tsv"), dir.path().join("guard/replies.tsv")).unwrap();
    let path = dir.path().join("guard.toml");
    let load = |text: &str| {
        std::fs::write(&path, text).unwrap();
        match Guard::load(&path, &understanding().catalog.normalizer) {
            Ok(_) => panic!("should fail"),
            Err(e) => e.to_string(),
        }
    };
    let e = load(&base.replacen("[kinds.sarcasm]", "[kinds.sarcasmm]", 1));
    assert!(e.contains("guard.toml") && e.contains("kinds.sarcasm"), "{e}");
    let e = load(&base.replacen("kind = \"doubt\"", "kind = \"doubts\"", 1));
    assert!(e.contains("argue[1].kind") && e.contains("doubts"), "{e}");
    let e = load(&base.replacen("'(不会|不可能)", "'((不会|不可能)", 1));
    assert!(e.contains("argue[0].regexes[0]"), "{e}");
    std::fs::write(dir.path().join("guard/replies.tsv"), "ok\tx\t好的\nargue:nope\tx\t不行\n").unwrap();
    std::fs::write(&path, &base).unwrap();
    let e = Guard::load(&path, &understanding().catalog.normalizer).err().unwrap().to_string();
    assert!(e.contains("replies.tsv") && e.contains("line 2") && e.contains("nope"), "{e}");
}

/// The review's end-to-end case (M3), through the assistant as the edit endpoint calls it: an
/// edit with zero-width spaces, for an account that did not place the order, is blocked.
#[test]
fn a_zero_width_edit_to_another_account_is_blocked() {
    let ev = shouhou::domain::event::InboundEvent::parse(
        r#"{"message_id":"m2","conversation_id":"cv-other","sender":{"account_id":"other-acct"},"text":"在吗",
            "order":{"order_id":"1","buyer_account_id":"buyer-1","items":[],
                     "receiver":{"name":"王小明","phone":"13912345678","address":"浙江省杭州市西湖区文三路88号3栋201室"}}}"#,
    )
    .unwrap();
    let zw = |s: &str| s.chars().map(|c| format!("{c}\u{200b}")).collect::<String>();
    let text = format!(
        "亲，收件人{}，电话{}，地址{}",
        zw("王小明"),
        zw("13912345678"),
        zw("浙江省杭州市西湖区文三路88号3栋201室")
    );
    let v = assistant().check_edit(&text, Some(&ev), "agent", "2026-12-01T03:00:00Z".parse().unwrap());
    for rule in ["leak.receiver_name", "leak.order_phone", "leak.order_address"] {
        assert!(rules(&v).contains(&rule), "{rule}: {v:?}");
    }
}

/// The blind holdout of issue 13 (written before any tuning by someone who had not read the
/// rules; measured once when the rules and model were final): printed for the record; the floor
/// only catches a collapse.
#[test]
fn replies_blind_is_reported() {
    let src = std::fs::read_to_string(root().join("tests/fixtures/replies_blind.tsv")).unwrap();
    let r = evaluate_guard(guard(), &understanding().catalog.normalizer, &parse_replies(&src).unwrap());
    eprintln!("guard on replies_blind.tsv: recall {:.3}, false blocks {}/{}", r.recall, r.blocked_ok, r.ok);
    for k in &r.per_kind {
        eprintln!("  {} {:.3} ({} of {})", k.label, k.recall, k.blocked, k.replies);
    }
    assert!(r.recall >= 0.8 && r.false_positive_rate <= 0.05, "{}", r.to_text());
}
