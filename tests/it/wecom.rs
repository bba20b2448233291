//! WeChat customer service (WeCom Kf): the callback crypto against PyPI wechatpy and its
//! refusals, the XML envelope, the `sync_msg` mapping, the token cache, and the reply budget
//! shared with the call attempts.

use std::{
    io::Write,
    process::{Command, Stdio},
};

use aes::Aes256;
use base64::Engine;
use cbc::cipher::{BlockModeEncrypt, KeyIvInit, block_padding::NoPadding};
use jiff::{SignedDuration, Timestamp};
use proptest::prelude::*;
use serde_json::{Value, json};
use shouhou::{
    adapters::wecom::{
        crypto::{Crypto, CryptoError},
        kf::{ErrKind, SyncMsg, err_kind},
        map::{Mapped, map_message, split_conversation},
        token::TokenCache,
        xml,
    },
    domain::schedule::{Budget, BudgetError, CallPolicy, History, Reason, Spent},
};

use crate::support::root;

/// The EncodingAESKey of wechatpy's own tests: its last character carries non-zero bits past
/// the 32 key bytes, as most real keys do.
const KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
const TOKEN: &str = "QDG6eK";
const CORP: &str = "wx5823bf96d3bd56c7";
const NOW: i64 = 1_764_590_000;

fn crypto() -> Crypto {
    Crypto::new(TOKEN, KEY, CORP).unwrap()
}

/// Runs `tests/fixtures/wecom/peer.py` (wechatpy) on `ops`. `Err` says why it could not run.
fn wechatpy(ops: Value) -> Result<Vec<Value>, String> {
    let mut child = Command::new("python3")
        .arg(root().join("tests/fixtures/wecom/peer.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("python3 does not start: {e}"))?;
    let req = json!({"token": TOKEN, "key": KEY, "corp_id": CORP, "ops": ops});
    child.stdin.take().unwrap().write_all(req.to_string().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("peer output is not JSON: {e}"))
}

/// The Python peer's results, or `None` (with a note) when wechatpy is not installed here.
/// Under CI (the `CI` variable set), which installs wechatpy, a failure to run fails the test.
fn peer(ops: Value) -> Option<Vec<Value>> {
    match wechatpy(ops) {
        Ok(v) => Some(v),
        Err(why) => {
            assert!(std::env::var_os("CI").is_none(), "CI is set but wechatpy did not run (CI installs it): {why}");
            eprintln!("wechatpy not available ({why}): skipping the live peer comparison");
            None
        }
    }
}

fn event_xml() -> String {
    std::fs::read_to_string(root().join("tests/fixtures/wecom/kf_event.xml")).unwrap()
}

/// wechatpy seals a callback (the body WeCom POSTs) and the URL-verification echo; shouhou
/// checks and opens both. shouhou's sealed reply opens in wechatpy.
#[test]
fn interoperates_with_wechatpy() {
    let c = crypto().with_window(0);
    let ts = NOW.to_string();
    let ours = c.seal(&event_xml(), NOW, "nonce-r", [7; 16]);
    let Some(out) = peer(json!([
        {"op": "seal", "msg": event_xml(), "nonce": "nonce-1", "timestamp": ts},
        {"op": "echo", "plain": "1616140317555161061", "nonce": "nonce-2", "timestamp": ts},
        {"op": "open", "xml": ours.to_xml(), "msg_signature": ours.signature, "timestamp": ts, "nonce": "nonce-r"},
        {"op": "open", "xml": ours.to_xml(), "msg_signature": "0".repeat(40), "timestamp": ts, "nonce": "nonce-r"},
    ])) else {
        return;
    };
    // A callback body sealed by wechatpy.
    let env = xml::envelope(out[0]["xml"].as_str().unwrap()).unwrap();
    assert_eq!(env.encrypt, out[0]["encrypt"].as_str().unwrap());
    let sig = out[0]["msg_signature"].as_str().unwrap();
    let plain = c.open(sig, &ts, "nonce-1", &env.encrypt, NOW).unwrap();
    assert_eq!(plain, event_xml());
    let ev = xml::callback_event(&plain).unwrap();
    assert_eq!(ev.kf_token(), Some("ENCApHxnGDNAVNY4AaSJKj4Tb5mwsEMzxhFmHVGcra996NR"));
    assert_eq!(ev.open_kfid.as_deref(), Some("wkAJ2GCAAASSm4_FhToWMFea0xAFfd3Q"));
    // The URL-verification echo.
    let echostr = out[1]["echostr"].as_str().unwrap();
    let echo = c.open(out[1]["msg_signature"].as_str().unwrap(), &ts, "nonce-2", echostr, NOW).unwrap();
    assert_eq!(echo, "1616140317555161061");
    // Ours opens in wechatpy, and wechatpy refuses it with a wrong signature.
    assert_eq!(out[2]["plain"].as_str(), Some(event_xml().as_str()), "{:?}", out[2]);
    assert_eq!(out[3]["error"].as_str(), Some("InvalidSignatureException"), "{:?}", out[3]);
    // wechatpy's random prefix differs per call; its ciphertext is whole 32-byte blocks.
    let raw = base64::engine::general_purpose::STANDARD.decode(&env.encrypt).unwrap();
    assert_eq!(raw.len() % 32, 0);
}

/// The signature is SHA-1 hex of the sorted four strings (checked against a hand computation).
#[test]
fn signature_is_sha1_of_sorted_parts() {
    use sha1::{Digest, Sha1};
    let c = crypto();
    let mut parts = [TOKEN, "1409659813", "1372623149", "ENC"];
    parts.sort_unstable();
    let want = hex::encode(Sha1::digest(parts.concat().as_bytes()));
    assert_eq!(c.signature("1409659813", "1372623149", "ENC"), want);
}

/// Each refusal, in the order the checks run.
#[test]
fn refuses_bad_callbacks() {
    let c = crypto();
    let s = c.seal(&event_xml(), NOW, "n", [1; 16]);
    let ok = c.open(&s.signature, &s.timestamp, "n", &s.encrypt, NOW);
    assert_eq!(ok.as_deref(), Ok(event_xml().as_str()));
    // Upper-case hex is the same signature.
    assert!(c.open(&s.signature.to_uppercase(), &s.timestamp, "n", &s.encrypt, NOW).is_ok());

    let mut tampered = s.signature.clone().into_bytes();
    tampered[0] = if tampered[0] == b'a' { b'b' } else { b'a' };
    let tampered = String::from_utf8(tampered).unwrap();
    let cases: Vec<(&str, Result<String, CryptoError>)> = vec![
        ("tampered signature", c.open(&tampered, &s.timestamp, "n", &s.encrypt, NOW)),
        ("other nonce", c.open(&s.signature, &s.timestamp, "m", &s.encrypt, NOW)),
        ("short signature", c.open("abc", &s.timestamp, "n", &s.encrypt, NOW)),
        ("stale", c.open(&s.signature, &s.timestamp, "n", &s.encrypt, NOW + 301)),
        ("future", c.open(&s.signature, &s.timestamp, "n", &s.encrypt, NOW - 301)),
        ("not a time", c.open(&s.signature, "soon", "n", &s.encrypt, NOW)),
    ];
    let want = [
        CryptoError::Signature,
        CryptoError::Signature,
        CryptoError::MalformedSignature,
        CryptoError::Stale(301),
        CryptoError::Stale(301),
        CryptoError::BadTimestamp,
    ];
    for ((name, got), want) in cases.into_iter().zip(want) {
        assert_eq!(got, Err(want), "{name}");
    }
    // Inside the window either way.
    assert!(c.open(&s.signature, &s.timestamp, "n", &s.encrypt, NOW + 300).is_ok());

    // Another corp's message, correctly signed with our token and key.
    let other = Crypto::new(TOKEN, KEY, "wwOTHERCORP").unwrap();
    let o = other.seal("<xml/>", NOW, "n", [2; 16]);
    assert_eq!(c.open(&o.signature, &o.timestamp, "n", &o.encrypt, NOW), Err(CryptoError::ReceiveId));

    // Not whole blocks, and not Base64.
    let short = base64::engine::general_purpose::STANDARD.encode([0u8; 16]);
    assert_eq!(c.decrypt(&short), Err(CryptoError::Ciphertext));
    assert_eq!(c.decrypt("***"), Err(CryptoError::Ciphertext));
}

/// Encrypts raw plain bytes (already a multiple of 32) with the key, bypassing the padding.
fn raw_encrypt(plain: &[u8]) -> String {
    let key = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
    )
    .decode(format!("{KEY}="))
    .unwrap();
    let mut buf = plain.to_vec();
    let n = buf.len();
    let iv: [u8; 16] = key[..16].try_into().unwrap();
    let key: [u8; 32] = key.try_into().unwrap();
    let ct = cbc::Encryptor::<Aes256>::new(&key.into(), &iv.into()).encrypt_padded::<NoPadding>(&mut buf, n).unwrap();
    base64::engine::general_purpose::STANDARD.encode(ct)
}

fn framed(msg: &[u8], id: &[u8]) -> Vec<u8> {
    let mut v = vec![9u8; 16];
    v.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    v.extend_from_slice(msg);
    v.extend_from_slice(id);
    v
}

/// Padding that is not PKCS#7 to 32, and length fields that lie, are refused.
#[test]
fn refuses_bad_padding_and_lengths() {
    let c = crypto();
    let body = framed(b"<xml/>", CORP.as_bytes());
    let pad = 32 - body.len() % 32;
    let good = [body.clone(), vec![pad as u8; pad]].concat();
    assert_eq!(c.decrypt(&raw_encrypt(&good)).as_deref(), Ok("<xml/>"));
    // A zero pad byte, a pad byte above 32, and a pad run with one wrong byte.
    for bad_tail in [vec![0u8], vec![33u8]] {
        let mut p = good.clone();
        *p.last_mut().unwrap() = bad_tail[0];
        assert_eq!(c.decrypt(&raw_encrypt(&p)), Err(CryptoError::Padding), "tail {bad_tail:?}");
    }
    if pad >= 2 {
        let mut p = good.clone();
        let i = p.len() - 2;
        p[i] ^= 0x55;
        assert_eq!(c.decrypt(&raw_encrypt(&p)), Err(CryptoError::Padding));
    }
    // A body of whole blocks takes a full block of padding (32 bytes of 32), which is valid.
    let mut whole = framed(b"abcdefghijklmnopqrstuvwxyz", CORP.as_bytes());
    assert_eq!(whole.len(), 64);
    whole.extend([32u8; 32]);
    assert_eq!(c.decrypt(&raw_encrypt(&whole)).as_deref(), Ok("abcdefghijklmnopqrstuvwxyz"));
    assert_eq!(c.encrypt("abcdefghijklmnopqrstuvwxyz", [9; 16]), raw_encrypt(&whole), "ours pads the same way");
    // The length field claims more than there is.
    let mut lie = framed(b"<xml/>", CORP.as_bytes());
    lie[16..20].copy_from_slice(&1000u32.to_be_bytes());
    let pad = 32 - lie.len() % 32;
    lie.extend(std::iter::repeat_n(pad as u8, pad));
    assert_eq!(c.decrypt(&raw_encrypt(&lie)), Err(CryptoError::Length));
}

/// Keys and tokens that WeCom would not issue are refused with the reason.
#[test]
fn refuses_bad_keys_and_tokens() {
    assert_eq!(Crypto::new(TOKEN, &KEY[..42], CORP).unwrap_err(), CryptoError::Key);
    assert_eq!(Crypto::new(TOKEN, &format!("{}!", &KEY[..42]), CORP).unwrap_err(), CryptoError::Key);
    assert_eq!(Crypto::new("", KEY, CORP).unwrap_err(), CryptoError::Token);
    assert_eq!(Crypto::new(&"a".repeat(33), KEY, CORP).unwrap_err(), CryptoError::Token);
    assert_eq!(Crypto::new("to-ken", KEY, CORP).unwrap_err(), CryptoError::Token);
    assert!(Crypto::new(&"a".repeat(32), KEY, CORP).is_ok());
}

proptest! {
    /// Any message round-trips through seal and open with any random prefix.
    #[test]
    fn seal_open_round_trip(msg in "\\PC{0,300}", random in any::<[u8; 16]>(), nonce in "[a-z0-9]{1,16}") {
        let c = crypto();
        let s = c.seal(&msg, NOW, &nonce, random);
        prop_assert_eq!(c.open(&s.signature, &s.timestamp, &nonce, &s.encrypt, NOW), Ok(msg));
    }
}

/// The envelope parser takes CDATA or plain text and names what is missing.
#[test]
fn parses_envelopes() {
    let body = "<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName>\
                <Encrypt><![CDATA[abc+/=]]></Encrypt><AgentID><![CDATA[218]]></AgentID></xml>";
    let e = xml::envelope(body).unwrap();
    assert_eq!((e.encrypt.as_str(), e.agent_id.as_deref()), ("abc+/=", Some("218")));
    assert_eq!(xml::envelope("<xml><Encrypt>plain</Encrypt></xml>").unwrap().encrypt, "plain");
    for bad in ["", "not xml", "<xml><ToUserName>x</ToUserName></xml>", "<xml><Encrypt></Encrypt></xml>"] {
        let err = xml::envelope(bad).unwrap_err().to_string();
        assert!(err.contains("Encrypt"), "{bad:?}: {err}");
    }
    // An entity declaration is not expanded (no external entities, no billion laughs).
    let evil = "<!DOCTYPE x [<!ENTITY e SYSTEM \"file:///etc/passwd\">]><xml><Encrypt>&e;</Encrypt></xml>";
    assert!(xml::envelope(evil).map(|e| !e.encrypt.contains("root")).unwrap_or(true));
    // Other WeCom events are not Kf events.
    let ev = xml::callback_event("<xml><MsgType>event</MsgType><Event>change_contact</Event></xml>").unwrap();
    assert_eq!(ev.kf_token(), None);
}

fn page() -> SyncMsg {
    serde_json::from_str(&std::fs::read_to_string(root().join("tests/fixtures/wecom/sync_msg_page.json")).unwrap())
        .unwrap()
}

/// Text, image (media id kept), voice, unreadable buyer messages, takeover, end and send-failure
/// events map as documented; a servicer's own message marks the takeover.
#[test]
fn maps_sync_msg_entries() {
    let p = page();
    assert_eq!((p.has_more, p.next_cursor.as_str()), (1, "4gw7MepFLfgF2VC5npN"));
    let got: Vec<Mapped> = p.msg_list.iter().map(|m| map_message(m, "shop-1").unwrap()).collect();
    let Mapped::Buyer(text) = &got[0] else { panic!("{:?}", got[0]) };
    assert_eq!(text.conversation_id, "wkAJ2GCAAASSm4_FhToWMFea0xAFfd3Q:wmAJ2GCAAAme1XQRC-NI-q0_ZM9ukoAw");
    assert_eq!(text.sender.account_id, "wmAJ2GCAAAme1XQRC-NI-q0_ZM9ukoAw");
    assert_eq!((text.platform.as_deref(), text.shop_id.as_deref()), (Some("wecom"), Some("shop-1")));
    assert!(text.text.contains('\u{81ed}'), "the buyer's text is kept: {}", text.text);
    assert_eq!(text.sent_at, Some(Timestamp::from_second(1_764_590_000).unwrap()));
    // The event is valid as the generic inbound event.
    shouhou::domain::event::InboundEvent::parse(&serde_json::to_string(text).unwrap()).unwrap();
    let Mapped::Buyer(image) = &got[1] else { panic!("{:?}", got[1]) };
    assert_eq!(image.text, "");
    assert_eq!(image.attachments[0].kind, "image");
    assert_eq!(image.attachments[0].media_id.as_deref(), Some("2iSLeVyqzk4eX0IB5kTi9Ljfa2rt9dwfq5WKRQ4Nvvgw"));
    assert!(matches!(&got[2], Mapped::BuyerOther { msgtype, .. } if msgtype == "location"));
    assert!(matches!(&got[3], Mapped::Ignore(_)), "enter_session: {:?}", got[3]);
    assert!(matches!(&got[4], Mapped::TakenOver { servicer, .. } if servicer == "zhangsan"));
    assert!(matches!(&got[5], Mapped::TakenOver { servicer, .. } if servicer == "lisi"), "{:?}", got[5]);
    assert!(matches!(&got[6], Mapped::Ended { .. }));
    assert!(matches!(&got[7], Mapped::SendFailed { msgid, fail_type: 6, .. } if msgid == "shouhou-d12-0"));
    assert_eq!(
        split_conversation("wkAJ2GCAAASSm4_FhToWMFea0xAFfd3Q:wmAJ2GCAAAme1XQRC-NI-q0_ZM9ukoAw"),
        Some(("wkAJ2GCAAASSm4_FhToWMFea0xAFfd3Q", "wmAJ2GCAAAme1XQRC-NI-q0_ZM9ukoAw"))
    );
    assert_eq!(split_conversation("c-42"), None);
}

/// Entries missing what they need are refused with the field's name.
#[test]
fn refuses_incomplete_entries() {
    let bad = [
        (json!({"msgid": "", "origin": 3, "msgtype": "text"}), "msgid"),
        (json!({"msgid": "m", "origin": 3, "msgtype": "text", "external_userid": "u"}), "open_kfid"),
        (json!({"msgid": "m", "origin": 3, "msgtype": "image", "open_kfid": "k", "external_userid": "u"}), "image"),
        (
            json!({"msgid": "m", "origin": 4, "msgtype": "event",
                   "event": {"event_type": "session_status_change", "change_type": 1, "open_kfid": "k", "external_userid": "u"}}),
            "new_servicer_userid",
        ),
    ];
    for (v, field) in bad {
        let m = serde_json::from_value(v).unwrap();
        let err = map_message(&m, "shop-1").unwrap_err();
        assert!(err.contains(field), "{err}");
    }
}

/// The errcodes that mean "new token", "later" and "never".
#[test]
fn classifies_errcodes() {
    assert_eq!(err_kind(0), ErrKind::Ok);
    for c in [40014, 42001, 41001] {
        assert_eq!(err_kind(c), ErrKind::Token);
    }
    for c in [-1, 45009, 45033] {
        assert_eq!(err_kind(c), ErrKind::Retry);
    }
    for c in [40013, 40001, 95018, 60020] {
        assert_eq!(err_kind(c), ErrKind::Reject);
    }
}

/// The token is kept until the margin before expiry; a refused token is dropped, a newer one
/// is not.
#[test]
fn token_cache_refreshes_before_expiry() {
    let mut c = TokenCache::new(300_000);
    assert_eq!(c.get(0), None);
    c.store("t1".into(), 7200, 0);
    assert_eq!(c.get(0), Some("t1"));
    assert_eq!(c.get(6_899_999), Some("t1"));
    assert_eq!(c.get(6_900_000), None, "five minutes before expiry it is refreshed");
    c.invalidate("t0");
    assert_eq!(c.get(1), Some("t1"), "an older token's refusal keeps the newer one");
    c.invalidate("t1");
    assert_eq!(c.get(1), None);
    // A lifetime shorter than the margin is used for half of it.
    c.store("t2".into(), 60, 0);
    assert_eq!((c.get(29_999), c.get(30_000)), (Some("t2"), None));
}

fn at(s: i64) -> Timestamp {
    Timestamp::from_second(NOW + s).unwrap()
}

/// The reply budget: 5 within 48 h after the buyer's message.
#[test]
fn reply_budget_table() {
    let b = Budget::new(5, Some(SignedDuration::from_hours(48))).unwrap();
    let anchor = Some(at(0));
    let c = b.check(0, anchor, at(60));
    assert_eq!((c.allowed, c.remaining, c.spent), (true, 5, None));
    assert_eq!(c.closes_at, Some(at(48 * 3600)));
    assert_eq!(b.check(4, anchor, at(60)).remaining, 1);
    assert_eq!(b.check(5, anchor, at(60)).spent, Some(Spent::Exhausted));
    assert_eq!(b.check(0, anchor, at(48 * 3600 - 1)).remaining, 5);
    assert_eq!(b.check(0, anchor, at(48 * 3600)).spent, Some(Spent::Expired));
    assert_eq!(b.check(0, None, at(0)).spent, Some(Spent::NoAnchor));
    assert_eq!(Budget::new(0, None), Err(BudgetError::Zero));
    assert_eq!(Budget::new(1, Some(SignedDuration::ZERO)), Err(BudgetError::Span));
    // The call policy's attempts are the same type, without a span.
    let calls = CallPolicy::default().attempts();
    assert_eq!((calls.max(), calls.within()), (3, None));
}

proptest! {
    /// Never more than `max` actions; `remaining` counts down by one per action; nothing after
    /// the span or without an anchor when there is a span; without a span time does not matter.
    #[test]
    fn budget_laws(max in 1u32..10, used in 0u32..15, hours in prop::option::of(1i64..100), anchor in prop::option::of(0i64..400_000), t in 0i64..800_000) {
        let within = hours.map(SignedDuration::from_hours);
        let b = Budget::new(max, within).unwrap();
        let anchor_ts = anchor.map(at);
        let c = b.check(used, anchor_ts, at(t));
        let in_span = match (hours, anchor) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(h), Some(a)) => t < a + h * 3600,
        };
        prop_assert_eq!(c.allowed, in_span && used < max);
        prop_assert_eq!(c.remaining, if c.allowed { max - used } else { 0 });
        prop_assert_eq!(c.allowed, c.spent.is_none());
        if c.allowed {
            let next = b.check(used + 1, anchor_ts, at(t));
            prop_assert_eq!(next.remaining + 1, c.remaining);
        }
        if hours.is_none() {
            prop_assert_eq!(b.check(used, None, at(0)), b.check(used, anchor_ts, at(t)));
        }
    }

    /// The call policy refuses for attempts exactly when its attempt budget is spent, and its
    /// other reasons are unchanged by the budget.
    #[test]
    fn call_attempts_are_the_budget(max in 1u32..=3, count in 0u32..6, hour in 0i64..48) {
        let p = CallPolicy::new(
            jiff::civil::Time::constant(10, 0, 0, 0),
            jiff::civil::Time::constant(18, 0, 0, 0),
            max,
            2,
            SignedDuration::from_hours(2),
        )
        .unwrap();
        let when = at(hour * 3600);
        let h = History { count, last: None, times: vec![] };
        let d = p.check(when, &jiff::tz::TimeZone::get("Asia/Shanghai").unwrap(), &h);
        let spent = !p.attempts().check(count, None, when).allowed;
        prop_assert_eq!(d.reason == Reason::MaxAttempts, spent);
        if spent {
            prop_assert!(!d.allowed && d.next_allowed_at.is_none());
        }
    }
}

fn settings_with(wecom: &str) -> Result<shouhou::config::Settings, String> {
    let raw = std::fs::read_to_string(root().join("shouhou.toml")).unwrap() + "\n" + wecom;
    shouhou::config::Settings::parse(&root().join("shouhou.toml"), &raw).map_err(|e| e.to_string())
}

/// `[wecom]` with its defaults, and each bad setting refused with the key named.
#[test]
fn wecom_settings_are_checked() {
    let ok = settings_with("[wecom]\ncorp_id = \"ww1\"\n[wecom.shops]\nshop-1 = [\"wk1\"]\n").unwrap();
    let w = ok.wecom.unwrap();
    assert_eq!((w.reply_budget, w.reply_window_hours, w.page_limit), (5, 48, 1000));
    assert_eq!(w.api_url, "https://qyapi.weixin.qq.com");
    assert_eq!((w.states.send.clone(), w.states.queue, w.states.person), (vec![0, 1], 2, 3));
    let cases = [
        ("[wecom]\ncorp_id = \"\"\n[wecom.shops]\nshop-1 = [\"wk1\"]\n", "wecom.corp_id"),
        ("[wecom]\ncorp_id = \"ww1\"\napi_url = \"ftp://x\"\n[wecom.shops]\nshop-1 = [\"wk1\"]\n", "wecom.api_url"),
        ("[wecom]\ncorp_id = \"ww1\"\n[wecom.shops]\n", "wecom.shops"),
        ("[wecom]\ncorp_id = \"ww1\"\n[wecom.shops]\nshop-1 = []\n", "wecom.shops"),
        ("[wecom]\ncorp_id = \"ww1\"\n[wecom.shops]\nshop-1 = [\"wk1\"]\nshop-2 = [\"wk1\"]\n", "share an open_kfid"),
        ("[wecom]\ncorp_id = \"ww1\"\nreply_budget = 0\n[wecom.shops]\nshop-1 = [\"wk1\"]\n", "wecom.reply_budget"),
        (
            "[wecom]\ncorp_id = \"ww1\"\nreply_window_hours = 0\n[wecom.shops]\nshop-1 = [\"wk1\"]\n",
            "wecom.reply_window_hours",
        ),
        ("[wecom]\ncorp_id = \"ww1\"\npage_limit = 5000\n[wecom.shops]\nshop-1 = [\"wk1\"]\n", "wecom.page_limit"),
        ("[wecom]\ncorp_id = \"ww1\"\nbudget = 3\n[wecom.shops]\nshop-1 = [\"wk1\"]\n", "budget"),
    ];
    for (toml, key) in cases {
        let e = settings_with(toml).unwrap_err();
        assert!(e.contains(key), "{toml}: {e}");
    }
}

/// The secrets come from the environment; a missing or malformed one stops the start with the
/// variable named.
#[test]
fn wecom_secrets_are_required() {
    use shouhou::config::wecom::WecomConfig;
    let s = settings_with("[wecom]\ncorp_id = \"ww1\"\n[wecom.shops]\nshop-1 = [\"wk1\"]\n").unwrap();
    let f = s.wecom.unwrap();
    let some = |v: &str| Some(v.to_owned());
    assert!(WecomConfig::from_file(&f, some(TOKEN), some(KEY), some("s")).is_ok());
    let cases = [
        (None, some(KEY), some("s"), "SHOUHOU_WECOM_TOKEN"),
        (some(TOKEN), None, some("s"), "SHOUHOU_WECOM_AES_KEY"),
        (some(TOKEN), some(KEY), some(" "), "SHOUHOU_WECOM_SECRET"),
        (some("bad-token!"), some(KEY), some("s"), "SHOUHOU_WECOM_TOKEN"),
        (some(TOKEN), some("short"), some("s"), "SHOUHOU_WECOM_AES_KEY"),
    ];
    for (t, k, sec, var) in cases {
        let e = WecomConfig::from_file(&f, t, k, sec).unwrap_err().to_string();
        assert!(e.contains(var), "{e}");
    }
}

/// The msgid is a valid WeCom msgid (at most 32 of `[0-9a-zA-Z_-]`) and the same for one key.
#[test]
fn msgids_are_stable_and_valid() {
    use shouhou::adapters::wecom::msgid_for;
    let a = msgid_for("shop-1:from_msgid_4622416642169452483:auto");
    assert_eq!(a, msgid_for("shop-1:from_msgid_4622416642169452483:auto"));
    assert_ne!(a, msgid_for("shop-1:from_msgid_4622416642169452483:draft7"));
    assert!(a.len() <= 32 && a.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'), "{a}");
}
