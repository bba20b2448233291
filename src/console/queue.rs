//! The review queue: the page, its rows (re-fetched live), and the server-sent events that say
//! when the set of waiting drafts changed.

use std::sync::Arc;

use axum::{
    Extension,
    extract::{Query, State},
    response::{
        IntoResponse, Response,
        sse::{Event, KeepAlive, Sse},
    },
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Console, Fail, Page, Sess, fmt_ms, view::faq_item};
use crate::{
    domain::role::Role,
    review,
    state::now_ms,
    store::{StoreError, drafts},
};

#[derive(Deserialize, Default)]
pub(super) struct QueueQuery {
    #[serde(default)]
    intent: String,
    #[serde(default)]
    group: String,
    #[serde(default)]
    shop: String,
    #[serde(default)]
    msg: String,
}

pub(super) async fn queue_items(c: &Console, me: &Sess, q: &QueueQuery) -> Result<Vec<Value>, Fail> {
    let rows = drafts::waiting(&c.shared.store).await?;
    let handed_on = if me.role == Role::PartTime { drafts::triaged(&c.shared.store).await? } else { Vec::new() };
    let now = now_ms();
    let mut items = Vec::new();
    for r in &rows {
        let d = r.to_json();
        if me.role == Role::PartTime && !faq_item(c, &d, &handed_on) {
            continue;
        }
        let intents: Vec<String> =
            d["intents"].as_array().into_iter().flatten().filter_map(|h| h["id"].as_str().map(str::to_owned)).collect();
        if (!q.intent.is_empty() && !intents.contains(&q.intent))
            || (!q.group.is_empty() && d["group"] != q.group.as_str())
            || (!q.shop.is_empty() && d["shop_id"] != q.shop.as_str())
        {
            continue;
        }
        let event = review::answered_event(&c.shared, r).await?;
        let text = event.map(|e| e.text).unwrap_or_default();
        items.push(json!({
            "id": d["id"], "shop_id": d["shop_id"], "conversation_id": d["conversation_id"],
            "status": d["status"], "group": d["group"], "intents": intents,
            "verdict": d["guard"]["verdict"],
            "age_min": (now - r.created_at) / 60_000,
            "created": fmt_ms(r.created_at, c.tz()),
            "snippet": crate::domain::mask_phones(&text.chars().take(60).collect::<String>()),
        }));
    }
    Ok(items)
}

pub(super) async fn queue_page(
    State(c): State<Arc<Console>>,
    Extension(me): Extension<Sess>,
    Query(q): Query<QueueQuery>,
) -> Page {
    // Taken before the rows, so a draft arriving in between shows up at the first event.
    let mark = queue_mark(&c).await?;
    let items = queue_items(&c, &me, &q).await?;
    let shops: std::collections::BTreeSet<String> =
        items.iter().filter_map(|i| i["shop_id"].as_str().map(str::to_owned)).collect();
    let intents: Vec<&str> = if me.role == Role::PartTime {
        c.settings().auto_intents.clone()
    } else {
        crate::domain::catalog::INTENT_IDS.to_vec()
    };
    c.page(
        "queue.html",
        Some(&me),
        json!({"items": items, "filter": {"intent": q.intent, "group": q.group, "shop": q.shop},
               "intents": intents, "groups": ["reception", "returns_refunds", "exceptions"],
               "shops": shops, "msg": q.msg, "part_time": me.role == Role::PartTime, "mark": mark}),
    )
}

pub(super) async fn queue_rows(
    State(c): State<Arc<Console>>,
    Extension(me): Extension<Sess>,
    Query(q): Query<QueueQuery>,
) -> Page {
    let items = queue_items(&c, &me, &q).await?;
    c.page("queue_rows.html", Some(&me), json!({"items": items, "part_time": me.role == Role::PartTime}))
}

/// A fingerprint of the drafts waiting for review: it changes whenever one arrives or leaves.
pub(super) async fn queue_mark(c: &Console) -> Result<String, StoreError> {
    drafts::queue_mark(&c.shared.store).await
}

/// Server-sent events: `queue` whenever the set of drafts waiting for review changes (polled
/// from the store, so it works across instances). Ends on shutdown.
pub(super) async fn events(State(c): State<Arc<Console>>, Extension(_me): Extension<Sess>) -> Response {
    let shutdown = c.shared.shutdown.clone();
    let stream = futures_util::stream::unfold((c, String::new(), true), move |(c, mut last, mut first)| {
        let shutdown = shutdown.clone();
        async move {
            loop {
                if !first {
                    tokio::select! {
                        () = shutdown.cancelled() => return None,
                        () = tokio::time::sleep(std::time::Duration::from_millis(700)) => {}
                    }
                } else if shutdown.is_cancelled() {
                    return None;
                }
                first = false;
                let mark = queue_mark(&c).await.ok();
                // A store hiccup is retried at the next tick; the page keeps what it shows.
                let Some(mark) = mark else { continue };
                if mark != last {
                    last = mark.clone();
                    let ev = Event::default().event("queue").data(mark);
                    return Some((Ok::<_, std::convert::Infallible>(ev), (c, last, first)));
                }
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default()).into_response()
}
