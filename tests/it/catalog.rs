//! Loading the intent catalog: the shipped files load, every intent's examples hold, and each
//! kind of mistake in a file is reported with the file, the key and the problem.

use shouhou::{Understanding, domain::INTENT_IDS};

use crate::support::{ScratchIntents, understanding};

/// The shipped catalog loads and has all 18 intents of the contract.
#[test]
fn shipped_catalog_loads() {
    let u = understanding();
    let ids: Vec<&str> = u.catalog.intents.iter().map(|i| i.id).collect();
    assert_eq!(ids, INTENT_IDS);
    assert!(u.catalog.cue_phrases().len() > 300, "a real phrase set");
}

/// Every positive example of every intent file gets its intent; no negative one does.
#[test]
fn intent_examples_hold() {
    let u = understanding();
    let mut failures = Vec::new();
    for intent in &u.catalog.intents {
        assert!(intent.examples.positive.len() >= 3, "{}: needs positive examples", intent.id);
        assert!(!intent.examples.negative.is_empty(), "{}: needs negative examples", intent.id);
        for text in &intent.examples.positive {
            if !u.classify(text).iter().any(|h| h.id == intent.id) {
                failures.push(format!("{}: positive example not recognised: {text}", intent.id));
            }
        }
        for text in &intent.examples.negative {
            if u.classify(text).iter().any(|h| h.id == intent.id) {
                failures.push(format!("{}: negative example recognised: {text}", intent.id));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn assert_err(s: &ScratchIntents, file: &str, key: &str, problem: &str) {
    let e = s.load_err();
    assert!(e.file.ends_with(file), "file: expected {file}, got {}", e.file.display());
    assert_eq!(e.key, key, "key; the error was: {e}");
    assert!(e.problem.contains(problem), "problem: expected {problem:?} in: {e}");
    let shown = e.to_string();
    assert!(shown.contains(file) && shown.contains(key), "display names file and key: {shown}");
}

#[test]
fn unknown_intent_id_in_file_name() {
    let s = ScratchIntents::new();
    std::fs::copy(s.path().join("greeting.toml"), s.path().join("greetings.toml")).unwrap();
    assert_err(&s, "greetings.toml", "-", "unknown intent id `greetings`");
}

#[test]
fn id_must_match_file_name() {
    let s = ScratchIntents::new();
    s.edit("greeting.toml", "id = \"greeting\"", "id = \"human_agent\"");
    assert_err(&s, "greeting.toml", "id", "does not match the file name");
}

#[test]
fn unknown_top_level_key() {
    let s = ScratchIntents::new();
    s.prepend("rotten_food.toml", "phrasez = [\"臭了\"]\n");
    assert_err(&s, "rotten_food.toml", "phrasez", "unknown key");
}

#[test]
fn unknown_key_in_a_cue() {
    let s = ScratchIntents::new();
    let n = understanding().catalog.intents[0].cues.len();
    s.append("rotten_food.toml", "\n[[cues]]\nweight = 0.5\nphrase = [\"臭臭\"]\n");
    assert_err(&s, "rotten_food.toml", &format!("cues[{n}].phrase"), "unknown key");
}

#[test]
fn unknown_key_in_examples() {
    let s = ScratchIntents::new();
    s.edit("greeting.toml", "[examples]", "[examples]\npositiv = [\"你好\"]");
    assert_err(&s, "greeting.toml", "examples.positiv", "unknown key");
}

#[test]
fn empty_phrase() {
    let s = ScratchIntents::new();
    let n = understanding().catalog.intents[17].cues.len();
    s.append("greeting.toml", "\n[[cues]]\nweight = 0.5\nphrases = [\"早安安\", \"  \"]\n");
    assert_err(&s, "greeting.toml", &format!("cues[{n}].phrases[1]"), "empty phrase");
}

#[test]
fn regex_that_does_not_compile() {
    let s = ScratchIntents::new();
    let n = understanding().catalog.intents[1].cues.len();
    s.append("wrong_item.toml", "\n[[cues]]\nweight = 0.5\nregexes = ['(发错']\n");
    assert_err(&s, "wrong_item.toml", &format!("cues[{n}].regexes[0]"), "regex does not compile");
}

#[test]
fn weight_out_of_range() {
    let s = ScratchIntents::new();
    let n = understanding().catalog.intents[1].cues.len();
    s.append("wrong_item.toml", "\n[[cues]]\nweight = 1.5\nphrases = [\"错错错发\"]\n");
    assert_err(&s, "wrong_item.toml", &format!("cues[{n}].weight"), "(0, 1]");
}

#[test]
fn phrase_claimed_by_two_intents_without_a_tie_rule() {
    let s = ScratchIntents::new();
    // A phrase nobody else uses, claimed by two intents.
    s.append("greeting.toml", "\n[[cues]]\nweight = 0.5\nphrases = [\"测试专用短语\"]\n");
    s.append("invoice.toml", "\n[[cues]]\nweight = 0.5\nphrases = [\"測試專用短語\"]\n");
    let e = s.load_err();
    assert!(
        e.problem.contains("claimed by invoice and greeting") || e.problem.contains("claimed by greeting and invoice"),
        "{e}"
    );
    assert!(e.problem.contains("[ties]"), "says how to fix it: {e}");
    assert!(e.key.starts_with("cues["), "{e}");
    // With a tie rule it loads, and only the winner takes the phrase.
    let s2 = ScratchIntents::new();
    s2.append("greeting.toml", "\n[[cues]]\nweight = 0.9\nphrases = [\"测试专用短语\"]\n");
    s2.append("invoice.toml", "\n[[cues]]\nweight = 0.9\nphrases = [\"測試專用短語\"]\n");
    let cat = std::fs::read_to_string(s2.path().join("catalog.toml")).unwrap();
    let cat = cat.replacen("[ties]", "[ties]\n\"测试专用短语\" = \"invoice\"", 1);
    std::fs::write(s2.path().join("catalog.toml"), cat).unwrap();
    let u = Understanding::load(s2.path()).expect("tie rule settles it");
    let ids: Vec<_> = u.classify("测试专用短语").into_iter().map(|h| h.id).collect();
    assert_eq!(ids, ["invoice"]);
}

#[test]
fn tie_rule_naming_an_unknown_intent() {
    let s = ScratchIntents::new();
    s.edit("catalog.toml", "[ties]", "[ties]\n\"某短语\" = \"invoices\"");
    assert_err(&s, "catalog.toml", "ties.某短语", "neither `both` nor a known intent id");
}

#[test]
fn unknown_intent_in_yields_to() {
    let s = ScratchIntents::new();
    s.prepend("invoice.toml", "yields_to = [\"greetings\"]\n");
    assert_err(&s, "invoice.toml", "yields_to[0]", "unknown intent id `greetings`");
}

#[test]
fn missing_intent_file() {
    let s = ScratchIntents::new();
    std::fs::remove_file(s.path().join("invoice.toml")).unwrap();
    assert_err(&s, "invoice.toml", "-", "missing");
}

#[test]
fn invalid_toml_names_the_line() {
    let s = ScratchIntents::new();
    s.prepend("complaint.toml", "this is not toml\n");
    assert_err(&s, "complaint.toml", "-", "line 1");
}

#[test]
fn unknown_key_in_entities_file() {
    let s = ScratchIntents::new();
    s.prepend("entities.toml", "colors = []\n");
    assert_err(&s, "entities.toml", "-", "unknown field `colors`");
}

#[test]
fn override_of_another_length() {
    let s = ScratchIntents::new();
    s.append("normalize/t2s_overrides.toml", "\"麼麼\" = \"么\"\n");
    assert_err(&s, "t2s_overrides.toml", "overrides.麼麼", "as many characters");
}
