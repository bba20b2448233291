//! The Taobao message service (TMC) client: the MessageIO codec byte by byte (hand-built frames
//! from the documented layout, golden frames from the Python port tmcpy), what order and refund
//! topics mean, and the client against a fake TMC server on 127.0.0.1 that checks the login
//! signature, pushes trade and refund messages, drops the socket mid-stream and redelivers what
//! was not confirmed.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use futures_util::{SinkExt, StreamExt};
use md5::{Digest, Md5};
use proptest::prelude::*;
use secrecy::ExposeSecret;
use serde_json::json;
use shouhou::{
    adapters::tmc::{
        self, Options,
        codec::{CodecError, Frame, MessageType, Value},
        effects::{self, Effect},
    },
    config::ServiceConfig,
    config::Settings,
    domain::{case::Case, event::InboundEvent, sign::Secret},
    outbound::webhooks::{Endpoint, Webhooks},
    pipeline::orders::merge_statuses,
    store::{Arg, Col, Store},
};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

use crate::support::{assistant, root, spawn_app};

// ------------------------------------------------------------------------------------------
// Hand-built frames: the documented layout written out byte by byte, independent of the codec.

#[derive(Default)]
struct B(Vec<u8>);

impl B {
    fn u8(mut self, v: u8) -> Self {
        self.0.push(v);
        self
    }
    fn u16(mut self, v: u16) -> Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn i32(mut self, v: i32) -> Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn i64(mut self, v: i64) -> Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn s(self, v: &str) -> Self {
        let mut b = self.i32(v.len() as i32);
        b.0.extend_from_slice(v.as_bytes());
        b
    }
    /// A custom header with a counted-string value.
    fn hs(self, k: &str, v: &str) -> Self {
        self.u16(1).s(k).u8(1).s(v)
    }
}

const APP_KEY: &str = "12345678";
const APP_SECRET: &str = "test-secret";

/// MD5 upper-case over secret + sorted name/value pairs + secret, computed here by hand.
fn expected_sign(app_key: &str, group: &str, ts: &str, secret: &str) -> String {
    let text = format!("{secret}app_key{app_key}group_name{group}timestamp{ts}{secret}");
    hex::encode_upper(Md5::digest(text.as_bytes()))
}

/// The sign of a fixed login, checked against a value computed outside Rust (Python hashlib).
#[test]
fn login_sign_is_uppercase_md5_of_sorted_params() {
    let s = tmc::codec::sign(APP_KEY, "default", "1700000000000", APP_SECRET);
    assert_eq!(s, "D2EB417DC515E73C5704F4018E9B6538");
    assert_eq!(s, expected_sign(APP_KEY, "default", "1700000000000", APP_SECRET));
}

/// CONNECT: version 2, type 0, flag 1, then the signed custom headers as counted strings.
#[test]
fn connect_frame_bytes() {
    let sign = "D2EB417DC515E73C5704F4018E9B6538";
    let want = B::default()
        .u8(2)
        .u8(0)
        .u16(4)
        .i32(1)
        .hs("timestamp", "1700000000000")
        .hs("app_key", APP_KEY)
        .hs("sdk", "top-sdk-java-201403304")
        .hs("sign", sign)
        .hs("group_name", "default")
        .u16(0)
        .0;
    let f = Frame::connect(APP_KEY, "default", 1_700_000_000_000, APP_SECRET);
    assert_eq!(f.encode(), want);
    let back = Frame::decode(&want).unwrap();
    assert_eq!(back.message_type, MessageType::Connect);
    assert_eq!(back.get("sign").and_then(Value::as_str), Some(sign));
    assert_eq!(back.flag, Some(1));
}

/// A pushed data message: `__kind` 3 as a byte, `id` int64, `topic`, `content`, `time` as a date.
#[test]
fn data_frame_decodes() {
    let content = r#"{"tid":3391228745,"status":"TRADE_CLOSED"}"#;
    let bytes = B::default()
        .u8(2)
        .u8(2)
        .u16(1)
        .s("__kind")
        .u8(2)
        .u8(3)
        .u16(1)
        .s("id")
        .u8(5)
        .i64(7_000_000_000_123)
        .hs("topic", "taobao_trade_TradeClose")
        .hs("content", content)
        .u16(1)
        .s("time")
        .u8(6)
        .i64(1_764_000_000_000)
        .u16(1)
        .s("nick")
        .u8(0)
        .u16(0)
        .0;
    let f = Frame::decode(&bytes).unwrap();
    assert_eq!(f.protocol_version, 2);
    assert_eq!(f.message_type, MessageType::Send);
    assert_eq!(f.kind(), Some(3));
    assert_eq!(f.get("id"), Some(&Value::Int64(7_000_000_000_123)));
    assert_eq!(f.get("topic").and_then(Value::as_str), Some("taobao_trade_TradeClose"));
    assert_eq!(f.get("content").and_then(Value::as_str), Some(content));
    assert_eq!(f.get("time"), Some(&Value::Date(1_764_000_000_000)));
    assert_eq!(f.get("nick"), Some(&Value::Void));
    // Encoding what was decoded gives the same bytes back.
    assert_eq!(f.encode(), bytes);
}

/// Confirm and pull: token header (type 5) first, then `__kind` as a byte and `id` as int64.
#[test]
fn confirm_and_pull_bytes() {
    let confirm = B::default()
        .u8(2)
        .u8(2)
        .u16(5)
        .s("tok-1")
        .u16(1)
        .s("__kind")
        .u8(2)
        .u8(2)
        .u16(1)
        .s("id")
        .u8(5)
        .i64(5_000_000_001)
        .u16(0)
        .0;
    assert_eq!(Frame::confirm("tok-1", 5_000_000_001).encode(), confirm);
    let pull = B::default().u8(2).u8(2).u16(5).s("tok-1").u16(1).s("__kind").u8(2).u8(1).u16(0).0;
    assert_eq!(Frame::pull("tok-1").encode(), pull);
}

/// CONNECTACK with a status (a refused login) and every value format round-trip.
#[test]
fn status_headers_and_all_value_formats() {
    let bytes = B::default().u8(2).u8(1).u16(2).i32(401).u16(3).s("invalid sign").u16(5).s("").u16(0).0;
    let f = Frame::decode(&bytes).unwrap();
    assert_eq!(f.message_type, MessageType::ConnectAck);
    assert_eq!(f.status_code, Some(401));
    assert_eq!(f.status_phrase.as_deref(), Some("invalid sign"));
    assert_eq!(f.token.as_deref(), Some(""));

    let mut f = Frame::new(MessageType::Send)
        .with("void", Value::Void)
        .with("s", Value::Str("测试路1号".into()))
        .with("b", Value::Byte(255))
        .with("i16", Value::Int16(-2))
        .with("i32", Value::Int32(-70_000))
        .with("i64", Value::Int64(i64::MIN))
        .with("d", Value::Date(1_764_000_000_000))
        .with("bytes", Value::Bytes(vec![0, 1, 2, 255]));
    f.status_code = Some(500);
    f.status_phrase = Some("server error".into());
    f.flag = Some(7);
    f.token = Some("tok".into());
    let enc = f.encode();
    assert_eq!(Frame::decode(&enc).unwrap(), f);
    // Counted strings are byte lengths, not character counts.
    let s = B::default().s("测试路1号").0;
    assert_eq!(&s[..4], &13i32.to_le_bytes());
    assert!(enc.windows(s.len()).any(|w| w == s.as_slice()));
}

/// Malformed frames give an error naming the problem, never a panic.
#[test]
fn malformed_frames_are_errors() {
    let good = Frame::confirm("tok-1", 42).encode();
    for n in 0..good.len() {
        assert!(
            matches!(Frame::decode(&good[..n]), Err(CodecError::Truncated { .. })),
            "prefix of {n} bytes should be truncated"
        );
    }
    let neg = B::default().u8(2).u8(2).u16(5).i32(-1).0;
    assert_eq!(Frame::decode(&neg), Err(CodecError::NegativeLength { at: 4, len: -1 }));
    let huge = B::default().u8(2).u8(2).u16(5).i32(i32::MAX).0;
    assert!(matches!(Frame::decode(&huge), Err(CodecError::Truncated { .. })));
    let bad_utf8 = B::default().u8(2).u8(2).u16(5).i32(2).u8(0xff).u8(0xfe).u16(0).0;
    assert_eq!(Frame::decode(&bad_utf8), Err(CodecError::NotUtf8 { at: 8 }));
    let header = B::default().u8(2).u8(2).u16(9).u16(0).0;
    assert_eq!(Frame::decode(&header), Err(CodecError::UnknownHeaderType { at: 2, header_type: 9 }));
    let format = B::default().u8(2).u8(2).u16(1).s("k").u8(42).u16(0).0;
    let e = Frame::decode(&format).unwrap_err();
    assert_eq!(e, CodecError::UnknownValueFormat { at: 9, format: 42 });
    assert_eq!(e.to_string(), "unknown value format 42 at byte 9");
}

/// Frames produced by the Python port tmcpy 0.3.3 (`tests/fixtures/tmc/tmcpy_golden.py`). When
/// python3 can import tmcpy the script runs now; otherwise the recorded output of the same
/// script is compared, except under CI (the `CI` variable set), which installs tmcpy: there a
/// failed run fails the test.
#[test]
fn golden_frames_from_tmcpy() {
    const RECORDED: &str = include_str!("../fixtures/tmc/tmcpy_golden.txt");
    let script = root().join("tests/fixtures/tmc/tmcpy_golden.py");
    let run = std::process::Command::new("python3").arg(&script).output();
    let text = match &run {
        Ok(o) if o.status.success() => String::from_utf8(o.stdout.clone()).unwrap(),
        _ => {
            let why = match &run {
                Ok(o) => format!("{}: {}", o.status, String::from_utf8_lossy(&o.stderr).trim()),
                Err(e) => e.to_string(),
            };
            assert!(
                std::env::var_os("CI").is_none(),
                "CI is set but the live tmcpy run failed (CI installs tmcpy 0.3.3): {why}"
            );
            eprintln!("python3 with tmcpy not available ({why}): comparing against the recorded tmcpy output");
            RECORDED.to_owned()
        }
    };
    assert_eq!(text.trim(), RECORDED.trim(), "tmcpy output changed");
    let golden: HashMap<&str, &str> = text.lines().filter_map(|l| l.split_once(' ')).collect();
    assert_eq!(golden["sign"], tmc::codec::sign(APP_KEY, "default", "1700000000000", APP_SECRET));
    let ours = |f: Frame| hex::encode(f.encode());
    assert_eq!(golden["connect"], ours(Frame::connect(APP_KEY, "default", 1_700_000_000_000, APP_SECRET)));
    assert_eq!(golden["confirm"], ours(Frame::confirm("tok-1", 5_000_000_001)));
    assert_eq!(golden["pull"], ours(Frame::pull("tok-1")));
}

fn arb_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Void),
        ".{0,12}".prop_map(Value::Str),
        any::<u8>().prop_map(Value::Byte),
        any::<i16>().prop_map(Value::Int16),
        any::<i32>().prop_map(Value::Int32),
        any::<i64>().prop_map(Value::Int64),
        any::<i64>().prop_map(Value::Date),
        proptest::collection::vec(any::<u8>(), 0..8).prop_map(Value::Bytes),
    ]
}

proptest! {
    /// Random bytes never panic the decoder.
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = Frame::decode(&bytes);
    }

    /// Valid frames with random bytes flipped never panic either.
    #[test]
    fn corrupted_frames_never_panic(at in 0usize..64, byte in any::<u8>(), id in any::<i64>()) {
        let mut b = Frame::confirm("tok-1", id).encode();
        let i = at % b.len();
        b[i] = byte;
        let _ = Frame::decode(&b);
    }

    /// Whatever is encoded decodes to the same frame.
    #[test]
    fn encode_decode_round_trip(
        ty in 0u8..5,
        status in proptest::option::of(1i32..1000),
        flag in proptest::option::of(1i32..1000),
        token in proptest::option::of("[a-z0-9]{1,8}"),
        headers in proptest::collection::vec(("[a-z_]{1,8}", arb_value()), 0..6),
    ) {
        let mut f = Frame::new(MessageType::from_byte(ty));
        f.status_code = status;
        f.flag = flag;
        f.token = token;
        f.headers = headers;
        prop_assert_eq!(Frame::decode(&f.encode()).unwrap(), f);
    }
}

// ------------------------------------------------------------------------------------------
// Topics.

/// Trade and refund topics, ids as numbers or strings, unknown topics and bad content.
#[test]
fn topics_are_interpreted_tolerantly() {
    let cases: Vec<(&str, &str, Effect)> = vec![
        (
            "taobao_trade_TradeClose",
            r#"{"tid":3391228745,"oid":3391228746,"status":"TRADE_CLOSED","buyer_nick":"x"}"#,
            Effect::Trade { order_id: "3391228745".into(), status: Some("TRADE_CLOSED".into()), closed: true },
        ),
        (
            "taobao_trade_TradeClose",
            r#"{"tid":"3391228745"}"#,
            Effect::Trade { order_id: "3391228745".into(), status: Some("TRADE_CLOSED".into()), closed: true },
        ),
        (
            "taobao_trade_TradeChanged",
            r#"{"tid":1,"status":"TRADE_CLOSED_BY_TAOBAO"}"#,
            Effect::Trade { order_id: "1".into(), status: Some("TRADE_CLOSED_BY_TAOBAO".into()), closed: true },
        ),
        (
            "taobao_trade_TradeSellerShip",
            r#"{"tid":1}"#,
            Effect::Trade { order_id: "1".into(), status: Some("WAIT_BUYER_CONFIRM_GOODS".into()), closed: false },
        ),
        (
            "taobao_trade_TradeMemoModified",
            r#"{"tid":1}"#,
            Effect::Trade { order_id: "1".into(), status: None, closed: false },
        ),
        (
            "taobao_refund_RefundCreated",
            r#"{"tid":1,"oid":2,"refund_id":9001,"refund_fee":"19.90","refund_phase":"aftersale"}"#,
            Effect::Refund {
                order_id: "1".into(),
                refund_id: Some("9001".into()),
                status: Some("WAIT_SELLER_AGREE".into()),
                fee: Some("19.90".into()),
            },
        ),
        (
            "taobao_refund_RefundSuccess",
            r#"{"tid":1,"refund_id":"9001","refund_fee":19.9}"#,
            Effect::Refund {
                order_id: "1".into(),
                refund_id: Some("9001".into()),
                status: Some("SUCCESS".into()),
                fee: Some("19.9".into()),
            },
        ),
        (
            "taobao_refund_RefundCreateMessage",
            r#"{"tid":1,"refund_id":9001}"#,
            Effect::Refund { order_id: "1".into(), refund_id: Some("9001".into()), status: None, fee: None },
        ),
        ("taobao_item_ItemUpdate", r#"{"num_iid":1}"#, Effect::Ignored { reason: "topic not handled" }),
        ("taobao_trade_TradeClose", "<xml/>", Effect::Ignored { reason: "content is not JSON" }),
        ("taobao_refund_RefundSuccess", r#"{"refund_id":1}"#, Effect::Ignored { reason: "content has no tid" }),
    ];
    for (topic, content, want) in cases {
        assert_eq!(effects::interpret(topic, content), want, "{topic} {content}");
    }
    assert_eq!(effects::order_status("TRADE_FINISHED"), Some("signed"));
    assert_eq!(effects::order_status("WAIT_SELLER_SEND_GOODS"), Some("paid"));
    assert_eq!(effects::refund_status("SELLER_REFUSE_BUYER"), Some("seller_refused"));
    assert_eq!(effects::refund_status("SOMETHING_NEW"), None);
}

// ------------------------------------------------------------------------------------------
// Config.

fn shipped_config() -> String {
    std::fs::read_to_string(root().join("shouhou.toml")).unwrap()
}

/// `[tmc]` is optional; defaults fill the rest; bad values name the key.
#[test]
fn tmc_config_section() {
    let path = std::path::Path::new("shouhou.toml");
    assert!(Settings::parse(path, &shipped_config()).unwrap().tmc.is_none());
    let with = format!("{}\n[tmc]\napp_key = \"12345678\"\nshop_id = \"shop-1\"\n", shipped_config());
    let t = Settings::parse(path, &with).unwrap().tmc.unwrap();
    assert!(t.enabled);
    assert_eq!(t.url, "ws://mc.api.taobao.com/");
    assert_eq!(t.group_name, "default");
    assert_eq!(t.pull_seconds, 30);
    for (extra, key) in [
        ("app_key = \"1\"\nshop_id = \"s\"\nurl = \"http://x\"\n", "tmc.url"),
        ("app_key = \" \"\nshop_id = \"s\"\n", "tmc.app_key"),
        ("app_key = \"1\"\nshop_id = \"s\"\npull_seconds = 0\n", "tmc.pull_seconds"),
        ("app_key = \"1\"\nshop_id = \"s\"\nsecret = \"no\"\n", "-"),
    ] {
        let e = Settings::parse(path, &format!("{}\n[tmc]\n{extra}", shipped_config())).unwrap_err();
        assert_eq!(e.key, key, "{extra}: {e}");
    }
}

/// An enabled `[tmc]` needs its secret (`serve` reads it from `SHOUHOU_TMC_SECRET`, as the
/// adapters' secrets, into `ServiceConfig`; the process test below checks the startup error);
/// a disabled or absent section needs none.
#[test]
fn missing_secret_is_a_startup_error() {
    let path = std::path::Path::new("shouhou.toml");
    let with = |extra: &str| {
        let text = format!("{}\n[tmc]\napp_key = \"12345678\"\nshop_id = \"shop-1\"\n{extra}", shipped_config());
        Settings::parse(path, &text).unwrap().tmc.unwrap()
    };
    let on = with("");
    for secret in [None, Some(String::new()), Some("  ".to_owned())] {
        let err = tmc::resolve(Some(&on), secret.clone()).err().unwrap_or_else(|| panic!("{secret:?} accepted"));
        let err = err.to_string();
        assert!(err.contains("SHOUHOU_TMC_SECRET") && err.contains("12345678"), "{err}");
    }
    let o = tmc::resolve(Some(&on), Some(" s3cret \n".into())).unwrap().unwrap();
    assert_eq!((o.secret.expose_secret(), o.app_key.as_str(), o.shop_id.as_str()), ("s3cret", "12345678", "shop-1"));
    assert!(!format!("{o:?}").contains("s3cret"), "Debug never shows the secret");
    assert!(tmc::resolve(Some(&with("enabled = false\n")), None).unwrap().is_none());
    assert!(tmc::resolve(None, None).unwrap().is_none());
}

// ------------------------------------------------------------------------------------------
// Replies that use the refund status.

fn buyer_event(conv: &str, msg: &str, text: &str, order_id: &str, refund_status: Option<&str>) -> String {
    let mut order = json!({"order_id": order_id, "buyer_account_id": "tb_buyer_1", "status": "paid", "total": "59.00",
              "items": [{"title": "测试商品", "category": "apparel", "price": "59.00"}],
              "receiver": {"name": "测试", "phone": "13800000000", "address": "测试路1号"}});
    if let Some(s) = refund_status {
        order["refund_status"] = json!(s);
    }
    json!({"message_id": msg, "shop_id": "shop-1", "conversation_id": conv, "sender": {"account_id": "tb_buyer_1"},
           "sent_at": "2026-11-22T10:15:00+08:00", "text": text, "order": order})
    .to_string()
}

/// Each refund status gets its own answer, the guard passes every one, a finished refund
/// promises nothing more, and a refused or closed refund goes to a person.
#[test]
fn refund_progress_uses_the_refund_status() {
    let a = assistant();
    let now = jiff::Timestamp::now();
    let draft = |status: Option<&str>| {
        let ev = InboundEvent::parse(&buyer_event("c-r", "m-r", "退款什么时候到账啊", "1", status)).unwrap();
        a.draft(&Case::default(), &ev, now)
    };
    let plain = draft(None);
    assert_eq!(plain.steps, ["refund_progress.answer"]);
    let mut replies = Vec::new();
    for (status, cue, route) in [
        ("wait_seller_agree", "审核", "auto"),
        ("wait_buyer_return_goods", "退货单号", "auto"),
        ("wait_seller_confirm_goods", "签收", "auto"),
        ("success", "退款成功", "auto"),
        ("seller_refused", "核实", "review"),
        ("closed", "核实", "review"),
    ] {
        let d = draft(Some(status));
        assert_eq!(d.steps, ["refund_progress.status"], "{status}");
        let reply = d.reply.clone().unwrap_or_else(|| panic!("{status}: no reply"));
        assert!(reply.contains(cue), "{status}: {reply}");
        assert_eq!(d.guard.verdict, "pass", "{status}: {:?}", d.guard.findings);
        assert_eq!(serde_json::to_value(d.route).unwrap(), json!(route), "{status}");
        let promises = d.actions.iter().filter(|x| serde_json::to_value(x).unwrap()["kind"] == "promise").count();
        assert_eq!(promises, usize::from(!matches!(status, "success" | "seller_refused" | "closed")), "{status}");
        replies.push(reply);
    }
    replies.dedup();
    assert_eq!(replies.len(), 5, "closed and refused share a wording, the rest differ: {replies:?}");
}

// ------------------------------------------------------------------------------------------
// The client against a fake TMC server.

fn shop_secret() -> Secret {
    Secret::from_bytes(b"0123456789abcdef0123456789abcdef").unwrap()
}

fn cfg(db: &str, platform_url: &str) -> ServiceConfig {
    crate::service::cfg(db, platform_url, "tmc-test")
}

async fn post_event(base: &str, body: &str, id: &str) {
    let ts = jiff::Timestamp::now().as_second();
    let res = reqwest::Client::new()
        .post(format!("{base}/v1/events"))
        .header("x-shouhou-shop", "shop-1")
        .header("webhook-id", id)
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", shop_secret().sign(id, ts, body.as_bytes()))
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{}", res.status());
}

async fn wait_for(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn count(store: &Store, sql: &'static str, args: &[Arg]) -> i64 {
    store.select(sql, args, &[Col::I("n")]).await.unwrap()[0][0].i()
}

/// A message the fake server holds: pushed on the first connection (stage 1), on later
/// connections (2), or only in answer to a pull request (3).
struct Held {
    id: i64,
    topic: &'static str,
    content: String,
    time: i64,
    stage: u8,
}

#[derive(Default)]
struct FakeState {
    connections: usize,
    bad_signs: usize,
    tokens: Vec<String>,
    /// Every push, by id.
    deliveries: Vec<i64>,
    /// Confirms recorded, by id.
    confirmed: HashMap<i64, usize>,
    /// Pull requests carrying the session's token.
    pulls: usize,
    /// Frames carrying a token other than the session's.
    bad_tokens: usize,
}

/// A fake message service speaking the binary frames: checks the login sign with `secret`,
/// answers CONNECTACK with a token, pushes `held` by stage, records confirms (except the one for
/// `drop_after` on the first connection, after which it drops the socket without a close
/// frame, as if the network failed), and answers pulls by pushing what is unconfirmed.
async fn fake_tmc(secret: &'static str, held: Vec<Held>, drop_after: i64) -> (String, Arc<Mutex<FakeState>>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/", l.local_addr().unwrap());
    let state = Arc::new(Mutex::new(FakeState::default()));
    let held = Arc::new(held);
    let st = state.clone();
    tokio::spawn(async move {
        loop {
            let (sock, _) = l.accept().await.unwrap();
            let (st, held) = (st.clone(), held.clone());
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(sock).await else { return };
                let login = loop {
                    match ws.next().await {
                        Some(Ok(Message::Binary(b))) => break Frame::decode(&b).unwrap(),
                        Some(Ok(_)) => continue,
                        _ => return,
                    }
                };
                assert_eq!(login.message_type, MessageType::Connect);
                let h = |k: &str| login.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
                let (n, token) = {
                    let mut s = st.lock().unwrap();
                    s.connections += 1;
                    (s.connections, format!("tok-{}", s.connections))
                };
                let ts: i64 = h("timestamp").parse().unwrap();
                let fresh = (jiff::Timestamp::now().as_millisecond() - ts).abs() < 60_000;
                if h("sign") != expected_sign(&h("app_key"), &h("group_name"), &h("timestamp"), secret)
                    || h("app_key") != APP_KEY
                    || !fresh
                {
                    st.lock().unwrap().bad_signs += 1;
                    let mut ack = Frame::new(MessageType::ConnectAck);
                    ack.status_code = Some(401);
                    ack.status_phrase = Some("invalid sign".into());
                    let _ = ws.send(Message::Binary(ack.encode().into())).await;
                    return;
                }
                st.lock().unwrap().tokens.push(token.clone());
                let mut ack = Frame::new(MessageType::ConnectAck);
                ack.token = Some(token.clone());
                ws.send(Message::Binary(ack.encode().into())).await.unwrap();
                let push = |stage: u8| {
                    let s = st.lock().unwrap();
                    held.iter()
                        .filter(|m| m.stage <= stage && (n > 1 || m.stage == 1) && !s.confirmed.contains_key(&m.id))
                        .map(|m| {
                            (
                                m.id,
                                Frame::new(MessageType::Send)
                                    .with("__kind", Value::Byte(3))
                                    .with("id", Value::Int64(m.id))
                                    .with("topic", Value::Str(m.topic.into()))
                                    .with("content", Value::Str(m.content.clone()))
                                    .with("time", Value::Date(m.time))
                                    .with("publisher", Value::Str("4272".into()))
                                    .encode(),
                            )
                        })
                        .collect::<Vec<_>>()
                };
                for (i, (id, bytes)) in push(2).into_iter().enumerate() {
                    st.lock().unwrap().deliveries.push(id);
                    ws.send(Message::Binary(bytes.into())).await.unwrap();
                    if n > 1 && i == 0 {
                        // Garbage between messages: the client skips it and stays connected.
                        ws.send(Message::Binary(vec![2, 2, 9, 9, 9].into())).await.unwrap();
                    }
                }
                while let Some(Ok(m)) = ws.next().await {
                    let Message::Binary(b) = m else { continue };
                    let f = Frame::decode(&b).unwrap();
                    if f.token.as_deref() != Some(token.as_str()) {
                        st.lock().unwrap().bad_tokens += 1;
                        continue;
                    }
                    match f.kind() {
                        Some(2) => {
                            let id = f.get("id").and_then(Value::as_i64).unwrap();
                            if n == 1 && id == drop_after {
                                return; // dropped: this confirm is lost with the connection
                            }
                            *st.lock().unwrap().confirmed.entry(id).or_default() += 1;
                        }
                        Some(1) => {
                            st.lock().unwrap().pulls += 1;
                            for (id, bytes) in push(3) {
                                st.lock().unwrap().deliveries.push(id);
                                ws.send(Message::Binary(bytes.into())).await.unwrap();
                            }
                        }
                        other => panic!("unexpected frame kind {other:?}"),
                    }
                }
            });
        }
    });
    (url, state)
}

fn options(url: &str, secret: &str) -> Options {
    Options {
        url: url.to_owned(),
        app_key: APP_KEY.to_owned(),
        secret: secret.into(),
        group_name: "default".to_owned(),
        shop_id: "shop-1".to_owned(),
        pull_every: Duration::from_millis(300),
        backoff_min: Duration::from_millis(50),
        backoff_max: Duration::from_millis(200),
        stable_after: tmc::STABLE_AFTER,
    }
}

const ORDER: &str = "3391228745";

/// The whole path: buyer messages link conversations to orders and request calls; the TMC
/// client logs in, applies trade and refund messages, loses its socket mid-stream, logs in
/// again, gets the unconfirmed message again (confirmed, not applied twice), skips a garbage
/// frame, pulls the trade close, cancels the calls on that order only, and a later refund
/// question is answered with the refund status. Shutdown stops the client.
async fn client_flow_body(db: &str) {
    let running = spawn_app(cfg(db, &crate::support::accepting_platform().await)).await;
    let base = format!("http://{}", running.addr);
    let store = running.state.store.clone();

    // Complaints on two conversations (two orders) request calls.
    let complaint = "你们再不处理我就去12315投诉";
    post_event(&base, &buyer_event("c-tmc-1", "m-1", complaint, ORDER, None), "w-1").await;
    post_event(&base, &buyer_event("c-tmc-2", "m-2", complaint, "5550001", None), "w-2").await;
    wait_for("two call requests", async || {
        count(&store, "SELECT COUNT(*) AS n FROM calls WHERE status = 'requested'", &[]).await == 2
    })
    .await;

    let t0 = jiff::Timestamp::now().as_millisecond() - 60_000;
    let m = |id, topic, content: serde_json::Value, time, stage| Held {
        id,
        topic,
        content: content.to_string(),
        time,
        stage,
    };
    let held = vec![
        m(
            5_000_000_001,
            "taobao_trade_TradeBuyerPay",
            json!({"tid": 3391228745u64, "oid": 3391228746u64, "payment": "59.00"}),
            t0,
            1,
        ),
        m(
            5_000_000_002,
            "taobao_refund_RefundCreated",
            json!({"tid": 3391228745u64, "refund_id": 9001, "refund_fee": "59.00"}),
            t0 + 1000,
            1,
        ),
        m(
            5_000_000_003,
            "taobao_refund_RefundSellerAgreeAgreement",
            json!({"tid": 3391228745u64, "refund_id": 9001, "refund_fee": "59.00"}),
            t0 + 2000,
            1,
        ),
        m(5_000_000_004, "taobao_item_ItemUpdate", json!({"num_iid": 1}), t0 + 3000, 2),
        m(
            5_000_000_005,
            "taobao_refund_RefundSuccess",
            json!({"tid": "3391228745", "refund_id": "9001", "refund_fee": "59.00"}),
            t0 + 5000,
            2,
        ),
        // Published before the success, delivered after it: must not turn the refund back.
        m(
            5_000_000_007,
            "taobao_refund_RefundBuyerModifyAgreement",
            json!({"tid": 3391228745u64, "refund_id": 9001}),
            t0 + 4000,
            2,
        ),
        m(
            5_000_000_006,
            "taobao_trade_TradeClose",
            json!({"tid": 3391228745u64, "status": "TRADE_CLOSED"}),
            t0 + 6000,
            3,
        ),
    ];
    let ids: Vec<i64> = held.iter().map(|h| h.id).collect();
    let (url, fake) = fake_tmc(APP_SECRET, held, 5_000_000_003).await;
    let tracker = tokio_util::task::TaskTracker::new();
    tmc::spawn(&running.state, &tracker, options(&url, APP_SECRET));

    wait_for("every message confirmed", async || {
        let s = fake.lock().unwrap();
        ids.iter().all(|id| s.confirmed.contains_key(id))
    })
    .await;
    {
        let s = fake.lock().unwrap();
        assert_eq!(s.bad_signs, 0);
        assert_eq!(s.bad_tokens, 0, "every frame after login carries the session's token");
        assert!(s.connections >= 2, "logged in again after the drop");
        assert_eq!(s.tokens[..2], ["tok-1", "tok-2"]);
        assert!(s.pulls >= 1, "pull requests are sent");
        assert!(
            s.deliveries.iter().filter(|d| **d == 5_000_000_003).count() >= 2,
            "the unconfirmed message came again"
        );
        assert!(s.deliveries.contains(&5_000_000_006), "the pull brought the held message");
    }

    // Nothing lost, nothing applied twice.
    assert_eq!(count(&store, "SELECT COUNT(*) AS n FROM tmc_messages", &[]).await, 7);
    let applied = count(&store, "SELECT COUNT(*) AS n FROM tmc_messages WHERE outcome = 'applied'", &[]).await;
    assert_eq!(applied, 6, "the item topic is recorded but not applied");
    for id in &ids {
        let audits = store
            .select("SELECT detail FROM audit WHERE actor = 'tmc'", &[], &[Col::T("detail")])
            .await
            .unwrap()
            .iter()
            .filter(|r| serde_json::from_str::<serde_json::Value>(&r[0].t()).unwrap()["tmc_id"] == json!(id))
            .count();
        let want = if *id == 5_000_000_004 { 0 } else { 1 };
        assert_eq!(audits, want, "audit rows for message {id}");
    }
    let order = store
        .select(
            "SELECT trade_status, refund_status, refund_id, refund_fee FROM orders WHERE shop_id = $1 AND order_id = $2",
            &[Arg::T("shop-1".into()), Arg::T(ORDER.into())],
            &[Col::T("trade_status"), Col::T("refund_status"), Col::T("refund_id"), Col::T("refund_fee")],
        )
        .await
        .unwrap();
    assert_eq!(order[0].iter().map(|v| v.t()).collect::<Vec<_>>(), ["TRADE_CLOSED", "SUCCESS", "9001", "59.00"]);

    // The trade close cancelled the call on its order only.
    let calls = store
        .select(
            "SELECT conversation_id, status FROM calls ORDER BY conversation_id",
            &[],
            &[Col::T("conversation_id"), Col::T("status")],
        )
        .await
        .unwrap();
    let calls: Vec<(String, String)> = calls.iter().map(|r| (r[0].t(), r[1].t())).collect();
    assert_eq!(calls, [("c-tmc-1".into(), "cancelled".into()), ("c-tmc-2".into(), "requested".into())]);

    // A refund question on that order is answered with the refund status.
    post_event(&base, &buyer_event("c-tmc-1", "m-3", "我的退款什么时候到账啊", ORDER, None), "w-3").await;
    let mut reply = String::new();
    wait_for("the refund draft", async || {
        let r =
            store.select("SELECT reply FROM drafts WHERE message_id = 'm-3'", &[], &[Col::T("reply")]).await.unwrap();
        reply = r.first().map(|r| r[0].t()).unwrap_or_default();
        !r.is_empty()
    })
    .await;
    assert!(reply.contains("退款成功"), "the draft uses the refund status: {reply}");
    assert!(reply.contains("59元"), "and the refund amount TMC keeps: {reply}");

    // A complaint that arrives after the close requests no call that stays pending.
    post_event(&base, &buyer_event("c-tmc-1", "m-4", complaint, ORDER, None), "w-4").await;
    wait_for("the late complaint's draft", async || {
        count(&store, "SELECT COUNT(*) AS n FROM drafts WHERE message_id = 'm-4'", &[]).await == 1
    })
    .await;
    let pending = |conv: &str| [Arg::T(conv.to_owned())];
    let sql = "SELECT COUNT(*) AS n FROM calls WHERE conversation_id = $1 AND status = 'requested'";
    assert_eq!(count(&store, "SELECT COUNT(*) AS n FROM calls WHERE conversation_id = 'c-tmc-1'", &[]).await, 2);
    assert_eq!(count(&store, sql, &pending("c-tmc-1")).await, 0);
    assert_eq!(count(&store, sql, &pending("c-tmc-2")).await, 1);

    // Graceful stop.
    running.shutdown.cancel();
    tracker.close();
    tokio::time::timeout(Duration::from_secs(5), tracker.wait()).await.expect("the client stops on shutdown");
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_against_fake_tmc_sqlite() {
    let (_dir, db) = crate::support::sqlite_url();
    client_flow_body(&db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_against_fake_tmc_postgres() {
    let Some(db) = crate::support::pg_url().await else { return };
    client_flow_body(&db).await;
}

/// A wrong secret: the server refuses the login, the client backs off and tries again with a
/// fresh signature, and nothing is confirmed or applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_login_backs_off_and_retries() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("tmc.db").display());
    let running = spawn_app(cfg(&db, &crate::support::accepting_platform().await)).await;
    let held = vec![Held { id: 1, topic: "taobao_trade_TradeClose", content: "{\"tid\":1}".into(), time: 0, stage: 1 }];
    let (url, fake) = fake_tmc(APP_SECRET, held, 0).await;
    let tracker = tokio_util::task::TaskTracker::new();
    tmc::spawn(&running.state, &tracker, options(&url, "wrong-secret"));
    wait_for("three refused logins", async || fake.lock().unwrap().bad_signs >= 3).await;
    {
        let s = fake.lock().unwrap();
        assert!(s.tokens.is_empty() && s.confirmed.is_empty() && s.deliveries.is_empty());
    }
    assert_eq!(count(&running.state.store, "SELECT COUNT(*) AS n FROM tmc_messages", &[]).await, 0);
    running.shutdown.cancel();
    tracker.close();
    tokio::time::timeout(Duration::from_secs(5), tracker.wait()).await.expect("the client stops while backing off");
    running.stop().await;
}

/// `shouhou serve` as a real process: an enabled `[tmc]` without `SHOUHOU_TMC_SECRET` is refused
/// at startup; with it, the client logs in from the config and applies pushed messages. Killed
/// with SIGKILL in the middle of the stream and started again, nothing is lost (every message
/// confirmed and recorded) and nothing is applied twice (one audit row per message).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_runs_the_client_and_survives_a_kill() {
    use std::process::Stdio;
    let n = 300i64;
    let held = (1..=n)
        .map(|i| Held {
            id: 9_000_000_000 + i,
            topic: "taobao_trade_TradeSellerShip",
            content: json!({"tid": 100 + i, "status": "WAIT_BUYER_CONFIRM_GOODS"}).to_string(),
            time: 1_764_000_000_000 + i,
            stage: 1,
        })
        .collect();
    let (url, fake) = fake_tmc(APP_SECRET, held, 0).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("shouhou.toml");
    std::fs::write(
        &config,
        format!(
            "{}\n[tmc]\nurl = \"{url}\"\napp_key = \"{APP_KEY}\"\nshop_id = \"shop-1\"\npull_seconds = 1\n",
            shipped_config()
        ),
    )
    .unwrap();
    let db = format!("sqlite://{}", dir.path().join("serve.db").display());
    let serve = |secret: Option<&str>| {
        let mut c = crate::support::serve_command(&config);
        c.args(["--listen", "127.0.0.1:0", "--database-url", &db, "--platform-url", "http://127.0.0.1:9/send"])
            .env("SHOUHOU_SHOP_SECRETS", format!("shop-1={}", shop_secret().to_whsec()))
            .env_remove(tmc::SECRET_ENV)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(s) = secret {
            c.env(tmc::SECRET_ENV, s).stderr(Stdio::null());
        }
        c
    };
    let out = serve(None).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("SHOUHOU_TMC_SECRET is not set"), "{err}");
    assert_eq!(fake.lock().unwrap().connections, 0);

    let mut child = serve(Some(APP_SECRET)).spawn().unwrap();
    wait_for("some confirms", async || fake.lock().unwrap().confirmed.len() >= 10).await;
    child.kill().unwrap();
    child.wait().unwrap();
    let at_kill = fake.lock().unwrap().confirmed.len();
    assert!(at_kill < n as usize, "killed mid-stream ({at_kill} of {n} confirmed before SIGKILL)");
    let mut child = serve(Some(APP_SECRET)).spawn().unwrap();
    wait_for("every message confirmed", async || fake.lock().unwrap().confirmed.len() == n as usize).await;
    child.kill().unwrap();
    child.wait().unwrap();
    eprintln!("killed after {at_kill} of {n} confirms");
    {
        let s = fake.lock().unwrap();
        assert_eq!(s.bad_signs, 0);
        assert!(s.connections >= 2);
    }

    let store = Store::connect(&db).await.unwrap();
    assert_eq!(count(&store, "SELECT COUNT(*) AS n FROM tmc_messages", &[]).await, n);
    assert_eq!(count(&store, "SELECT COUNT(*) AS n FROM audit WHERE actor = 'tmc'", &[]).await, n);
    assert_eq!(
        count(&store, "SELECT COUNT(*) AS n FROM orders WHERE trade_status = 'WAIT_BUYER_CONFIRM_GOODS'", &[]).await,
        n
    );
}

// ------------------------------------------------------------------------------------------
// Statuses, backoff after unstable sessions, and the consumer events of a trade close.

/// A stored TMC status only fills what the buyer message's order lacks (the event is fresher
/// than a stored status of unknown age), except a closed trade, which always wins. The refund
/// status is only ever filled.
#[test]
fn stored_statuses_fill_gaps_and_a_closed_trade_wins() {
    use shouhou::domain::event::Order;
    let o = |status: Option<&str>, refund: Option<&str>| Order {
        status: status.map(Into::into),
        refund_status: refund.map(Into::into),
        ..Default::default()
    };
    let cases = [
        (o(Some("shipped"), None), Some("paid"), Some("success"), (Some("shipped"), Some("success"))),
        (o(None, None), Some("paid"), None, (Some("paid"), None)),
        (o(Some("signed"), None), Some("closed"), None, (Some("closed"), None)),
        (o(Some("paid"), Some("wait_seller_agree")), None, Some("closed"), (Some("paid"), Some("wait_seller_agree"))),
        (o(Some(""), Some(" ")), Some("paid"), Some("success"), (Some("paid"), Some("success"))),
        (o(Some("closed"), None), Some("paid"), None, (Some("closed"), None)),
    ];
    for (mut order, trade, refund, want) in cases {
        let before = order.clone();
        merge_statuses(&mut order, trade, refund);
        assert_eq!(
            (order.status.as_deref(), order.refund_status.as_deref()),
            want,
            "{before:?} + {trade:?} {refund:?}"
        );
    }
}

/// A server that accepts every login and drops the socket right after: a login alone is not a
/// success, so the delay keeps growing to `backoff_max` instead of staying at the first step.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_then_drop_keeps_backing_off() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/", l.local_addr().unwrap());
    let logins = Arc::new(Mutex::new(Vec::<tokio::time::Instant>::new()));
    let seen = logins.clone();
    tokio::spawn(async move {
        loop {
            let (sock, _) = l.accept().await.unwrap();
            let seen = seen.clone();
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(sock).await else { return };
                while let Some(Ok(m)) = ws.next().await {
                    if let Message::Binary(b) = m {
                        assert_eq!(Frame::decode(&b).unwrap().message_type, MessageType::Connect);
                        seen.lock().unwrap().push(tokio::time::Instant::now());
                        let mut ack = Frame::new(MessageType::ConnectAck);
                        ack.token = Some("tok".into());
                        let _ = ws.send(Message::Binary(ack.encode().into())).await;
                        return; // dropped once the login was accepted
                    }
                }
            });
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("tmc.db").display());
    let running = spawn_app(cfg(&db, &crate::support::accepting_platform().await)).await;
    let tracker = tokio_util::task::TaskTracker::new();
    let o = Options { backoff_max: Duration::from_millis(400), ..options(&url, APP_SECRET) };
    tmc::spawn(&running.state, &tracker, o);
    wait_for("seven logins", async || logins.lock().unwrap().len() >= 7).await;
    let at = logins.lock().unwrap().clone();
    let gaps: Vec<Duration> = at.windows(2).map(|w| w[1] - w[0]).collect();
    // From the fourth reconnect on the step is 400 ms, jittered within its upper half; a
    // counter reset at each login would keep every delay at 25-50 ms.
    for g in &gaps[3..6] {
        assert!(*g >= Duration::from_millis(190), "the backoff grows across accepted logins: {gaps:?}");
    }
    running.shutdown.cancel();
    tracker.close();
    tokio::time::timeout(Duration::from_secs(5), tracker.wait()).await.expect("the client stops");
    running.stop().await;
}

async fn outbox_events(store: &Store, ty: &str) -> Vec<(String, serde_json::Value)> {
    store
        .select(
            "SELECT conversation_id, body FROM outbox WHERE event_type = $1 ORDER BY id",
            &[Arg::T(ty.to_owned())],
            &[Col::T("conversation_id"), Col::T("body")],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r[0].t(), serde_json::from_str(&r[1].t()).unwrap()))
        .collect()
}

async fn calls_of(store: &Store, conv: &str) -> Vec<(i64, i64, String)> {
    store
        .select(
            "SELECT id, draft_id, status FROM calls WHERE conversation_id = $1 ORDER BY id",
            &[Arg::T(conv.to_owned())],
            &[Col::I("id"), Col::I("draft_id"), Col::T("status")],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r[0].i(), r[1].i(), r[2].t()))
        .collect()
}

fn with_status(body: &str, status: &str) -> String {
    let mut v: serde_json::Value = serde_json::from_str(body).unwrap();
    v["order"]["status"] = json!(status);
    v.to_string()
}

/// Telephony learns about calls from consumer webhooks only: a trade close writes one
/// `call.cancelled` per pending call it cancels (in the same transaction), a redelivery or a
/// second close writes none, and a buyer message on a closed order (closed by TMC or said so by
/// the adapter) emits no `call.requested`; calls announced earlier on it are cancelled with
/// their event.
async fn trade_close_events_body(db: &str) {
    let mut c = cfg(db, &crate::support::accepting_platform().await);
    c.webhooks = Webhooks {
        endpoints: vec![Endpoint {
            name: "phone".into(),
            url: "http://127.0.0.1:9/hooks".into(),
            events: vec!["*".into()],
            secrets: vec![shop_secret()],
        }],
        // Nothing is delivered during the test: the rows stay as written.
        retry_schedule_ms: vec![3_600_000],
    };
    let running = spawn_app(c).await;
    let base = format!("http://{}", running.addr);
    let store = running.state.store.clone();
    let complaint = "你们再不处理我就去12315投诉";
    post_event(&base, &buyer_event("c-x-1", "m-1", complaint, ORDER, None), "w-1").await;
    post_event(&base, &buyer_event("c-x-2", "m-2", complaint, "5550001", None), "w-2").await;
    wait_for("two call requests", async || {
        count(&store, "SELECT COUNT(*) AS n FROM calls WHERE status = 'requested'", &[]).await == 2
    })
    .await;
    assert_eq!(outbox_events(&store, "call.requested").await.len(), 2);
    let (call_1, draft_1, _) = calls_of(&store, "c-x-1").await[0].clone();

    let close = json!({"tid": ORDER}).to_string();
    let now = jiff::Timestamp::now().as_millisecond();
    let apply = |id: i64, topic: &'static str, content: String| {
        let shared = running.state.clone();
        async move { tmc::apply(&shared, APP_KEY, "shop-1", id, topic, &content, now).await.unwrap() }
    };
    assert_eq!(apply(1, "taobao_trade_TradeClose", close.clone()).await, tmc::Outcome::Applied);
    let cancelled = outbox_events(&store, "call.cancelled").await;
    assert_eq!(cancelled.len(), 1, "{cancelled:?}");
    assert_eq!(cancelled[0].0, "c-x-1");
    assert_eq!(cancelled[0].1["type"], "call.cancelled");
    let d = &cancelled[0].1["data"];
    assert_eq!(
        (&d["call_id"], &d["draft_id"], &d["order_id"], &d["reason"], &d["shop_id"], &d["conversation_id"]),
        (&json!(call_1), &json!(draft_1), &json!(ORDER), &json!("trade_closed"), &json!("shop-1"), &json!("c-x-1"))
    );
    assert_eq!(calls_of(&store, "c-x-1").await[0].2, "cancelled");
    assert_eq!(calls_of(&store, "c-x-2").await[0].2, "requested", "another order's call stays");

    // A redelivery and a second close of the same trade cancel nothing more.
    assert_eq!(apply(1, "taobao_trade_TradeClose", close).await, tmc::Outcome::Duplicate);
    let again = json!({"tid": ORDER, "status": "TRADE_CLOSED_BY_TAOBAO"}).to_string();
    assert_eq!(apply(2, "taobao_trade_TradeChanged", again).await, tmc::Outcome::Applied);
    assert_eq!(outbox_events(&store, "call.cancelled").await.len(), 1);

    // A complaint on the closed order (the adapter still says `paid`): no call.requested.
    post_event(&base, &buyer_event("c-x-1", "m-3", complaint, ORDER, None), "w-3").await;
    // The adapter says the order is closed (TMC does not know it): no call.requested either.
    post_event(&base, &with_status(&buyer_event("c-x-3", "m-4", complaint, "5550002", None), "closed"), "w-4").await;
    wait_for("both drafts", async || {
        count(&store, "SELECT COUNT(*) AS n FROM drafts WHERE message_id IN ('m-3', 'm-4')", &[]).await == 2
    })
    .await;
    assert_eq!(outbox_events(&store, "call.requested").await.len(), 2, "no call.requested on a closed order");
    assert_eq!(outbox_events(&store, "message.received").await.len(), 4, "the other events are still written");
    let c1 = calls_of(&store, "c-x-1").await;
    assert_eq!(c1.len(), 2, "the draft asked for a call: {c1:?}");
    assert!(c1.iter().all(|c| c.2 == "cancelled"), "{c1:?}");
    assert!(calls_of(&store, "c-x-3").await.iter().all(|c| c.2 == "cancelled"));
    assert_eq!(outbox_events(&store, "call.cancelled").await.len(), 1, "unannounced calls get no cancel event");

    // The adapter says an order with an announced call is closed: that call is cancelled with
    // its event.
    let (call_2, _, _) = calls_of(&store, "c-x-2").await[0].clone();
    post_event(&base, &with_status(&buyer_event("c-x-2", "m-5", "好的", "5550001", None), "closed"), "w-5").await;
    wait_for("the cancel event", async || outbox_events(&store, "call.cancelled").await.len() == 2).await;
    let cancelled = outbox_events(&store, "call.cancelled").await;
    assert_eq!((cancelled[1].0.as_str(), &cancelled[1].1["data"]["call_id"]), ("c-x-2", &json!(call_2)));
    assert_eq!(cancelled[1].1["data"]["order_id"], "5550001");
    assert!(calls_of(&store, "c-x-2").await.iter().all(|c| c.2 == "cancelled"));

    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trade_close_writes_call_cancelled_sqlite() {
    let (_dir, db) = crate::support::sqlite_url();
    trade_close_events_body(&db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trade_close_writes_call_cancelled_postgres() {
    let Some(db) = crate::support::pg_url().await else { return };
    trade_close_events_body(&db).await;
}
