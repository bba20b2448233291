//! The command line, run as a real process.

use std::{
    io::{BufRead, BufReader, Write},
    process::{Command, Stdio},
};

use crate::support::{ScratchIntents, intents_dir, root};

fn shouhou() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_shouhou"));
    c.env("SHOUHOU_INTENTS", intents_dir());
    c
}

#[test]
fn classify_prints_the_contract_object() {
    let out = shouhou().args(["classify", "我买的鸡腿刚打开发现都臭了"]).output().unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["normalized"], "我买的鸡腿刚打开发现都臭了");
    assert_eq!(v["intents"][0]["id"], "rotten_food");
    let score = v["intents"][0]["score"].as_f64().unwrap();
    assert!(score > 0.5 && score <= 1.0);
    assert!(v["intents"][0]["evidence"][0]["span"].is_array());
    assert!(v["entities"].is_object());
}

#[test]
fn classify_other_is_an_empty_list() {
    let out = shouhou().args(["classify", "这个有货吗"]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["intents"], serde_json::json!([]));
}

/// Batch mode answers each line as it arrives (it streams) and keeps the order.
#[test]
fn batch_streams_line_by_line() {
    let mut child = shouhou().args(["classify", "-"]).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    for (text, id) in [("发错颜色了", "wrong_item"), ("转人工", "human_agent"), ("开发票", "invoice")] {
        writeln!(stdin, "{text}").unwrap();
        stdin.flush().unwrap();
        // Read the answer while stdin is still open: a slurping implementation blocks here.
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["intents"][0]["id"], id, "{line}");
    }
    drop(stdin);
    assert!(child.wait().unwrap().success());
}

#[test]
fn batch_keeps_order_and_reports_bad_lines() {
    let mut input = Vec::new();
    for i in 0..500 {
        input.extend_from_slice(if i % 2 == 0 { "发错颜色了\n" } else { "在吗\n" }.as_bytes());
    }
    input.extend_from_slice(b"\xff\xfe bad\n\n");
    let mut child = shouhou()
        .args(["classify", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert_eq!(out.status.code(), Some(1), "a bad line makes the exit status 1");
    let lines: Vec<serde_json::Value> =
        out.stdout.lines().map(|l| serde_json::from_str(&l.unwrap()).unwrap()).collect();
    assert_eq!(lines.len(), 502, "one output line per input line");
    for (i, v) in lines.iter().take(500).enumerate() {
        let want = if i % 2 == 0 { "wrong_item" } else { "greeting" };
        assert_eq!(v["intents"][0]["id"], want, "line {i}");
    }
    assert_eq!(lines[500]["line"], 501);
    assert_eq!(lines[500]["error"], "not valid UTF-8");
    assert_eq!(lines[501]["intents"], serde_json::json!([]), "an empty line is classified, not dropped");
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 501"));
}

#[test]
fn eval_json_and_gate() {
    let corpus = root().join("tests/fixtures/intents.tsv");
    let out = shouhou().args(["eval", "--json"]).arg(&corpus).output().unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["macro_f1"].as_f64().unwrap() > 0.0);
    assert_eq!(v["classes"].as_array().unwrap().len(), 19);
    let out = shouhou().args(["eval", "--min-macro-f1", "1.01"]).arg(&corpus).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("macro-F1") && text.contains("top confusions") && text.contains("misclassified"));
}

#[test]
fn a_broken_intent_file_stops_the_command_with_file_and_key() {
    let s = ScratchIntents::new();
    s.prepend("invoice.toml", "weights = 1\n");
    let out = Command::new(env!("CARGO_BIN_EXE_shouhou"))
        .env("SHOUHOU_INTENTS", s.path())
        .args(["classify", "开发票"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("invoice.toml") && err.contains("`weights`") && err.contains("unknown key"), "{err}");
}

#[test]
fn demo_runs() {
    let out = shouhou().arg("demo").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("rotten_food") && text.contains("wrong_item") && text.contains("138****1234"));
    assert!(!text.contains("13800001234"));
}

/// Domain text is data: no Chinese characters in the Rust sources, comments included.
#[test]
fn no_chinese_in_rust_sources() {
    let mut offenders = Vec::new();
    for entry in walk(&root().join("src")) {
        let src = std::fs::read_to_string(&entry).unwrap();
        for (n, line) in src.lines().enumerate() {
            if line.chars().any(|c| ('\u{4E00}'..='\u{9FFF}').contains(&c) || ('\u{3400}'..='\u{4DBF}').contains(&c)) {
                offenders.push(format!("{}:{}", entry.display(), n + 1));
            }
        }
    }
    assert!(offenders.is_empty(), "Chinese text belongs in intents/ or templates/: {offenders:?}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    out
}

fn run_json(args: &[&str], stdin: Option<&str>) -> (Option<i32>, serde_json::Value) {
    let mut cmd = shouhou();
    cmd.args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(s) = stdin {
        input.write_all(s.as_bytes()).unwrap();
    }
    drop(input);
    let out = child.wait_with_output().unwrap();
    let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    });
    (out.status.code(), v)
}

#[test]
fn check_prints_the_verdict_and_exits_1_when_blocked() {
    let (code, v) = run_json(&["check", "我们发出都是有放冰袋不会坏的哦"], None);
    assert_eq!(code, Some(1));
    assert_eq!(v["verdict"], "block");
    assert!(v["findings"][0]["span"].is_array() && v["findings"][0]["rule"].is_string());
    let (code, v) = run_json(&["check", "实在不好意思给您添麻烦了，麻烦您拍张照片发我一下"], None);
    assert_eq!((code, v["verdict"].as_str()), (Some(0), Some("pass")));
    // Unverified recipient (the default): the order's phone tail is blocked.
    let (code, _) = run_json(&["check", "尾号5678的那个号码", "--protect-phone", "13912345678"], None);
    assert_eq!(code, Some(1));
    let (code, _) = run_json(&["check", "尾号5678的那个号码", "--protect-phone", "13912345678", "--to-orderer"], None);
    assert_eq!(code, Some(0));
}

#[test]
fn draft_reads_an_event_and_prints_the_contract() {
    let ev = std::fs::read_to_string(root().join("tests/fixtures/conversations/rotten_food_seed.jsonl")).unwrap();
    let first = ev.lines().next().unwrap();
    let (code, v) = run_json(&["draft"], Some(first));
    assert_eq!(code, Some(0));
    for key in ["intents", "route", "reply", "actions", "guard"] {
        assert!(v.get(key).is_some(), "missing {key}: {v}");
    }
    assert_eq!(v["route"], "review");
    assert_eq!(v["guard"]["verdict"], "pass");
}

#[test]
fn draft_refuses_a_malformed_event_naming_the_field() {
    let out =
        shouhou().arg("draft").stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut child = out;
    child.stdin.take().unwrap().write_all(br#"{"message_id":"m1","conversation_id":"c1","sender":{"account_id":"a"},"text":"hi","order":{"total":"abc"}}"#).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("order.total"), "{err}");
    let mut child =
        shouhou().arg("draft").stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(b"{not json").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8(out.stderr).unwrap().contains("not a valid event"));
}

#[test]
fn calls_check_follows_the_contract() {
    let (code, v) = run_json(&["calls", "check", "--at", "2026-11-22T19:30:00+08:00"], None);
    assert_eq!(code, Some(1));
    assert_eq!(
        v,
        serde_json::json!({"allowed": false, "reason": "outside_window", "next_allowed_at": "2026-11-23T10:00:00+08:00"})
    );
    let (code, v) = run_json(
        &[
            "calls",
            "check",
            "--at",
            "2026-11-22T11:00:00+08:00",
            "--attempts",
            "1",
            "--last",
            "2026-11-22T10:30:00+08:00",
        ],
        None,
    );
    assert_eq!(code, Some(1));
    assert_eq!(v["reason"], "too_soon");
    assert_eq!(v["next_allowed_at"], "2026-11-22T12:30:00+08:00");
    let (code, v) = run_json(&["calls", "check", "--at", "2026-11-22T11:00:00+08:00", "--attempts", "3"], None);
    assert_eq!((code, v["next_allowed_at"].is_null()), (Some(1), true));
    let (code, v) = run_json(&["calls", "check", "--at", "2026-11-22T03:00:00Z", "--tz", "Asia/Shanghai"], None);
    assert_eq!((code, v["allowed"].as_bool()), (Some(0), Some(true)));
}

#[test]
fn replay_json_has_one_object_per_turn() {
    let file = root().join("tests/fixtures/conversations/wrong_item_negotiation.jsonl");
    let out = shouhou().args(["replay", "--json"]).arg(&file).output().unwrap();
    assert!(out.status.success());
    let turns: Vec<serde_json::Value> =
        out.stdout.lines().map(|l| serde_json::from_str(&l.unwrap()).unwrap()).collect();
    assert_eq!(turns.len(), 3);
    assert_eq!(turns[1]["draft"]["steps"][0], "wrong_item.offer_exchange");
}

#[test]
fn eval_guard_reports_recall_and_false_positives() {
    let out = shouhou().args(["eval-guard", "--json"]).arg(root().join("tests/fixtures/replies.tsv")).output().unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["recall"].as_f64().unwrap() > 0.9);
    assert!(v["false_positives"].is_array());
}
