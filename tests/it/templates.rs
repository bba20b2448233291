//! Template loading refuses what could hurt a buyer: unknown variables, order data in a step
//! for a non-ordering account, a variant the guard blocks, a missing step, an unknown key.

use shouhou::domain::draft::Assistant;

use crate::support::{ScratchIntents, intents_dir, root};

/// A writable copy of the shipped templates.
fn scratch() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let copy = |from: &std::path::Path, to: &std::path::Path| {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_file() {
                std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
            }
        }
    };
    copy(&root().join("templates"), dir.path());
    copy(&root().join("templates/replies"), &dir.path().join("replies"));
    copy(&root().join("templates/guard"), &dir.path().join("guard"));
    dir
}

fn load_err(templates: &std::path::Path) -> String {
    match Assistant::load(&intents_dir(), templates, &root().join("shouhou.toml")) {
        Ok(_) => panic!("loading should fail"),
        Err(e) => e.to_string(),
    }
}

fn add_step(dir: &std::path::Path, file: &str, step: &str, recipient: &str, text: &str) {
    let p = dir.join("replies").join(file);
    let mut s = std::fs::read_to_string(&p).unwrap();
    s.push_str(&format!("\n[steps.{step}]\nrecipient = \"{recipient}\"\nvariants = [\"{text}\"]\n"));
    std::fs::write(p, s).unwrap();
}

#[test]
fn order_data_in_a_step_for_another_account_is_a_load_error() {
    let d = scratch();
    add_step(d.path(), "address_change.toml", "leaky", "anyone", "亲，订单{{ order.order_id }}已经收到");
    let e = load_err(d.path());
    assert!(e.contains("address_change.toml") && e.contains("steps.leaky.variants[0]") && e.contains("`order`"), "{e}");
}

#[test]
fn an_unknown_variable_is_a_load_error() {
    let d = scratch();
    add_step(d.path(), "invoice.toml", "typo", "orderer", "亲，{{ shop.nam }}为您服务");
    let e = load_err(d.path());
    assert!(e.contains("steps.typo.variants[0]") && e.contains("does not render"), "{e}");
}

#[test]
fn a_variant_the_guard_blocks_is_a_load_error() {
    let d = scratch();
    add_step(d.path(), "rotten_food.toml", "bad", "orderer", "我们发出都是有放冰袋不会坏的哦");
    let e = load_err(d.path());
    assert!(e.contains("steps.bad.variants[0]") && e.contains("guard blocks it") && e.contains("argue."), "{e}");
}

#[test]
fn a_missing_step_is_a_load_error() {
    let d = scratch();
    let p = d.path().join("replies/greeting.toml");
    let s = std::fs::read_to_string(&p).unwrap().replace("[steps.reply]", "[steps.replied]");
    std::fs::write(&p, s).unwrap();
    let e = load_err(d.path());
    assert!(e.contains("greeting.toml") && e.contains("steps.reply") && e.contains("missing"), "{e}");
}

#[test]
fn a_bad_config_names_the_key() {
    let s = ScratchIntents::new();
    let cfg = s.path().join("shouhou.toml");
    let raw = std::fs::read_to_string(root().join("shouhou.toml"))
        .unwrap()
        .replace("window = \"10:00-18:00\"", "window = \"09:00-18:00\"");
    std::fs::write(&cfg, raw).unwrap();
    let e = match Assistant::load(&intents_dir(), &root().join("templates"), &cfg) {
        Ok(_) => panic!("must fail"),
        Err(e) => e.to_string(),
    };
    assert!(e.contains("shouhou.toml") && e.contains("calls") && e.contains("10:00-18:00"), "{e}");
}

/// Offers beyond the bot role's authority go to a supervisor.
#[test]
fn over_authority_offers_escalate() {
    let s = ScratchIntents::new();
    let cfg = s.path().join("shouhou.toml");
    let raw = std::fs::read_to_string(root().join("shouhou.toml"))
        .unwrap()
        .replace("wrong_item_keep = \"5\"", "wrong_item_keep = \"50\"");
    std::fs::write(&cfg, raw).unwrap();
    let a = Assistant::load(&intents_dir(), &root().join("templates"), &cfg).unwrap();
    let src =
        std::fs::read_to_string(root().join("tests/fixtures/conversations/wrong_item_negotiation.jsonl")).unwrap();
    let ev = shouhou::domain::event::InboundEvent::parse(src.lines().next().unwrap()).unwrap();
    let d = a.draft(&Default::default(), &ev, ev.sent_at.unwrap());
    assert_eq!(d.route, shouhou::domain::case::Route::Escalate);
    assert!(
        d.actions.iter().any(|x| matches!(x, shouhou::domain::case::Action::Offer { within_authority: false, .. }))
    );
}
