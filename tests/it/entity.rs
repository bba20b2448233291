//! Entity extraction: numbers, masked phones, amounts, attributes with roles, durations,
//! addresses.

use crate::support::understanding;

fn entities(text: &str) -> serde_json::Value {
    serde_json::to_value(understanding().analyze(text).entities).unwrap()
}

#[test]
fn colours_get_their_role() {
    let e = entities("我拍的是米白，寄来的是卡其");
    let attrs = e["attributes"].as_array().unwrap();
    assert_eq!(attrs.len(), 2, "{e}");
    assert_eq!((attrs[0]["value"].as_str(), attrs[0]["role"].as_str()), (Some("米白"), Some("ordered")));
    assert_eq!((attrs[1]["value"].as_str(), attrs[1]["role"].as_str()), (Some("卡其"), Some("received")));
}

#[test]
fn sizes_with_roles_and_no_false_letters() {
    let e = entities("买的ＸＬ，收到的是M码，还有一瓶500ml的");
    let attrs = e["attributes"].as_array().unwrap();
    let got: Vec<(&str, Option<&str>)> =
        attrs.iter().map(|a| (a["value"].as_str().unwrap(), a["role"].as_str())).collect();
    assert_eq!(got, [("xl", Some("ordered")), ("m", Some("received"))], "{e}");
}

#[test]
fn phones_are_masked_everywhere() {
    let a = understanding().analyze("我电话13800001234，另一个是139-0000-5678");
    let json = serde_json::to_string(&a).unwrap();
    assert!(!json.contains("13800001234") && !json.contains("00001234"), "{json}");
    assert!(!json.contains("0000-5678"), "{json}");
    assert_eq!(a.entities.phones, ["138****1234", "139****5678"]);
    assert!(a.normalized.contains("138****1234"));
}

#[test]
fn order_and_tracking_numbers() {
    let e = entities("订单号3391228745，快递单号 7700123456789");
    assert_eq!(e["order_ids"], serde_json::json!(["3391228745"]));
    assert_eq!(e["tracking_numbers"], serde_json::json!(["7700123456789"]));
}

#[test]
fn amounts_in_digits_and_words() {
    let e = entities("才39.9元的东西，运费十二块，¥5也行");
    let values: Vec<&str> = e["amounts"].as_array().unwrap().iter().map(|a| a["value"].as_str().unwrap()).collect();
    assert_eq!(values, ["39.9", "12", "5"], "{e}");
}

#[test]
fn durations_and_what_they_count_from() {
    let e = entities("签收一周了才发现，物流走了三天了，两个星期");
    let d = e["durations"].as_array().unwrap();
    let got: Vec<(f64, Option<&str>)> = d.iter().map(|x| (x["days"].as_f64().unwrap(), x["since"].as_str())).collect();
    assert_eq!(got, [(7.0, Some("signed")), (3.0, None), (14.0, None)], "{e}");
}

#[test]
fn new_address_in_the_buyers_words() {
    let raw = "麻烦帮我改到测试省示例市幸福路1号，谢谢";
    let e = entities(raw);
    assert_eq!(e["new_address"]["text"], "测试省示例市幸福路1号", "{e}");
    let span = &e["new_address"]["span"];
    let (s, t) = (span[0].as_u64().unwrap() as usize, span[1].as_u64().unwrap() as usize);
    assert_eq!(raw.chars().skip(s).take(t - s).collect::<String>(), "测试省示例市幸福路1号");
}

#[test]
fn no_address_without_markers() {
    let e = entities("能改成明天发吗");
    assert!(e["new_address"].is_null(), "{e}");
}
