//! Drafting: the seeds' flows end to end, as golden conversations (insta snapshots of the
//! replay transcript) plus the behaviour each must show.

use shouhou::{
    cli::replay,
    domain::{
        case::{Action, Case, Route},
        draft::Draft,
        event::InboundEvent,
    },
};

use crate::support::{assistant, root, understanding};

/// Drafts every turn of a conversation fixture, carrying the case.
fn run(name: &str) -> Vec<Draft> {
    let src =
        std::fs::read_to_string(root().join("tests/fixtures/conversations").join(format!("{name}.jsonl"))).unwrap();
    let mut case = Case::default();
    let mut out = Vec::new();
    for line in src.lines().filter(|l| !l.trim().is_empty()) {
        let ev = InboundEvent::parse(line).unwrap();
        let d = assistant().draft(&case, &ev, ev.sent_at.unwrap());
        case = d.case.clone();
        out.push(d);
    }
    out
}

fn transcript(name: &str) -> String {
    let src =
        std::fs::read_to_string(root().join("tests/fixtures/conversations").join(format!("{name}.jsonl"))).unwrap();
    let mut out = Vec::new();
    replay(assistant(), &src, false, &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

fn steps(d: &Draft) -> Vec<&str> {
    d.steps.iter().map(String::as_str).collect()
}

fn promises(d: &Draft) -> Vec<&str> {
    d.actions.iter().filter_map(|a| if let Action::Promise { what, .. } = a { Some(*what) } else { None }).collect()
}

/// Every reply of every golden conversation passed the guard.
fn all_pass(ds: &[Draft]) {
    for d in ds {
        assert_eq!(d.guard.verdict, "pass", "{:?}: {:?}", d.reply, d.guard.findings);
    }
}

#[test]
fn rotten_food_follows_the_seed() {
    let ds = run("rotten_food_seed");
    all_pass(&ds);
    assert_eq!(steps(&ds[0]), ["rotten_food.ask_evidence"], "apologise, ask storage and a photo");
    assert_eq!(steps(&ds[1]), ["rotten_food.ask_photo"], "storage told: only the photo is still asked");
    assert_eq!(steps(&ds[2]), ["rotten_food.offer"], "cheap item with a photo: reship or refund");
    assert!(promises(&ds[2]).contains(&"reship"));
    assert!(ds.iter().all(|d| d.route == Route::Review), "rotten food is never sent without a person");
    insta::assert_snapshot!(transcript("rotten_food_seed"));
}

#[test]
fn photos_sent_in_a_second_message_are_not_asked_for_again() {
    let ds = run("rotten_food_photos_second_message");
    all_pass(&ds);
    assert_eq!(steps(&ds[0]), ["rotten_food.ask_evidence"]);
    assert_eq!(steps(&ds[1]), ["rotten_food.offer"]);
    assert!(!ds[2].actions.iter().any(|a| matches!(a, Action::Ask { what: "photo" })));
    insta::assert_snapshot!(transcript("rotten_food_photos_second_message"));
}

#[test]
fn expensive_food_reported_late_escalates_with_reasons() {
    let ds = run("rotten_food_expensive_late");
    assert_eq!(ds[0].route, Route::Escalate);
    let reasons = ds[0]
        .actions
        .iter()
        .find_map(|a| if let Action::Escalate { reasons } = a { Some(reasons) } else { None })
        .unwrap();
    assert!(
        reasons.iter().any(|r| r.contains("price")) && reasons.iter().any(|r| r.contains("days after signing")),
        "{reasons:?}"
    );
    insta::assert_snapshot!(transcript("rotten_food_expensive_late"));
}

#[test]
fn wrong_item_compensation_then_exchange() {
    let ds = run("wrong_item_negotiation");
    all_pass(&ds);
    assert_eq!(steps(&ds[0]), ["wrong_item.offer_compensation"]);
    assert!(
        ds[0].actions.iter().any(|a| matches!(a, Action::Offer { offer: "compensation", within_authority: true, .. }))
    );
    assert!(ds[0].reply.as_deref().unwrap().contains('5'), "the configured amount is offered");
    assert_eq!(steps(&ds[1]), ["wrong_item.offer_exchange"], "refused: exchange, shop pays the return");
    insta::assert_snapshot!(transcript("wrong_item_negotiation"));
}

#[test]
fn wrong_item_with_a_missing_piece_and_accepted_compensation() {
    let ds = run("wrong_item_accepts_compensation");
    all_pass(&ds);
    assert_eq!(steps(&ds[0]), ["wrong_item.offer_compensation", "missing_item.also"]);
    assert_eq!(steps(&ds[1]), ["wrong_item.confirm_compensation"]);
    assert!(promises(&ds[1]).contains(&"compensation"));
    insta::assert_snapshot!(transcript("wrong_item_accepts_compensation"));
}

/// Seed 000: a family member asks to change the address: a warm refusal, no order data.
#[test]
fn family_member_gets_a_warm_refusal_and_no_data() {
    let ds = run("address_change_family_member");
    all_pass(&ds);
    assert_eq!(steps(&ds[0]), ["address_change.other_account"]);
    for d in &ds {
        let reply = d.reply.as_deref().unwrap();
        for secret in ["王秀英", "秀英", "13912345678", "5678", "光明路", "88号"] {
            assert!(!reply.contains(secret), "leaked {secret}: {reply}");
        }
        assert!(
            !d.actions.iter().any(|a| matches!(a, Action::AddressChange { .. })),
            "no change for a non-ordering account"
        );
    }
    insta::assert_snapshot!(transcript("address_change_family_member"));
}

#[test]
fn orderer_changes_the_address_or_we_intercept() {
    let ds = run("address_change_orderer");
    all_pass(&ds);
    assert_eq!(steps(&ds[0]), ["address_change.confirm"]);
    let addr = ds[0].actions.iter().find_map(|a| {
        if let Action::AddressChange { new_address, .. } = a { Some(new_address.as_str()) } else { None }
    });
    assert_eq!(addr, Some("测试省示例市幸福路1号"));
    assert!(promises(&ds[0]).contains(&"address_change"));
    let ds = run("address_change_after_shipment");
    assert_eq!(steps(&ds[0]), ["address_change.intercept"]);
    assert!(ds[0].actions.iter().any(|a| matches!(a, Action::Intercept { .. })));
    insta::assert_snapshot!(transcript("address_change_after_shipment"));
}

#[test]
fn a_traditional_script_buyer_gets_a_traditional_reply() {
    let ds = run("traditional_script_buyer");
    let reply = ds[0].reply.as_deref().unwrap();
    let n = understanding().catalog.normalizer.normalize(reply);
    assert!(n.tone.traditional, "reply should be in traditional characters: {reply}");
    assert_eq!(ds[0].guard.verdict, "pass");
    insta::assert_snapshot!(transcript("traditional_script_buyer"));
}

#[test]
fn no_reason_return_of_fresh_food_is_explained_not_refused() {
    let ds = run("no_reason_return_fresh_food");
    all_pass(&ds);
    assert_eq!(steps(&ds[0]), ["no_reason_return.excluded"]);
    assert_eq!(ds[0].route, Route::Review);
    let ds = run("no_reason_return_clothes");
    all_pass(&ds);
    assert_eq!(steps(&ds[0]), ["no_reason_return.conditions"]);
    insta::assert_snapshot!(transcript("no_reason_return_fresh_food"));
}

/// "都五天了还不发货" five days after payment, past the 48-hour ship SLA: an apology and a
/// person (no new ship date); then a complaint escalates with a call request.
#[test]
fn a_late_shipment_escalates_without_a_new_promise_and_a_complaint_requests_a_call() {
    let ds = run("complaint_and_faq");
    all_pass(&ds);
    assert_eq!(steps(&ds[0]), ["shipping_urge.late"]);
    assert_eq!(ds[0].route, Route::Escalate);
    assert!(!promises(&ds[0]).contains(&"ship"), "no new ship promise once the deadline passed");
    assert_eq!(ds[1].route, Route::Escalate);
    let call = ds[1]
        .actions
        .iter()
        .find_map(|a| {
            if let Action::CallRequest { script, next_allowed_at } = a { Some((script, next_allowed_at)) } else { None }
        })
        .unwrap();
    assert!(call.0.len() >= 7, "the seven-step call script");
    // 20:30 Shanghai: the call waits for 10:00 the next day.
    assert_eq!(call.1.as_deref(), Some("2026-11-23T10:00:00+08:00"));
    insta::assert_snapshot!(transcript("complaint_and_faq"));
}

/// Replays are deterministic: the same file gives the same transcript.
#[test]
fn replay_is_deterministic() {
    assert_eq!(transcript("wrong_item_negotiation"), transcript("wrong_item_negotiation"));
}

/// Every variant of every shipped template renders and passes the guard (load validates it;
/// this keeps the promise visible).
#[test]
fn every_template_passes_the_guard() {
    let _ = assistant();
}

/// Whether a buyer gets an answer never depends on the variant their conversation picks: a
/// variant that needs order data the sender may not see gives way to one that does not.
#[test]
fn the_answer_does_not_depend_on_the_variant_picked() {
    let a = assistant();
    let mut routes = std::collections::BTreeSet::new();
    for c in 0..40 {
        let event = shouhou::domain::event::InboundEvent::parse(
            &serde_json::json!({
                "message_id": "m1", "conversation_id": format!("c-variant-{c}"),
                "sender": {"account_id": "tb_family_9"}, "text": "请问怎么退货呀",
                "order": {"order_id": "3391228745", "buyer_account_id": "tb_buyer_1", "status": "signed",
                          "total": "59.00", "items": [{"title": "T恤", "category": "apparel", "price": "59.00"}]}
            })
            .to_string(),
        )
        .unwrap();
        let d = a.draft(&Default::default(), &event, jiff::Timestamp::UNIX_EPOCH);
        let reply = d.reply.as_deref().expect("every conversation gets an answer");
        assert!(!reply.contains("3391228745"), "no order number for another account: {reply}");
        routes.insert(format!("{:?}", d.route));
    }
    assert_eq!(routes.len(), 1, "one route whatever the variant: {routes:?}");
}
