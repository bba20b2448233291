//! The conversation view of a draft, and what agents decide on it: approve, edit (the guard
//! re-runs; a blocked text comes back highlighted), reject, triage, and the live guard check.

use std::sync::Arc;

use axum::{
    Extension, Form, Json,
    extract::{Path as UrlPath, State},
    http::StatusCode,
    response::{IntoResponse, Redirect},
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    Console, Fail, Page, Sess, fmt_ms, segments,
    view::{distinct, faq_item, order_card, verdict_json},
};
use crate::{
    domain::{
        mask::{mask_in_text, may_see_receiver},
        role::Role,
    },
    review::{self, ReviewError},
    store::{conversations, drafts, inbox},
};

pub(super) async fn draft_view(
    c: &Console,
    me: &Sess,
    id: i64,
    edit: Option<(&str, &crate::domain::guard::Verdict)>,
) -> Page {
    let r = review::load(&c.shared, id).await?;
    let d = r.to_json();
    if me.role == Role::PartTime && !faq_item(c, &d, &drafts::triaged(&c.shared.store).await?) {
        return Err(Fail::forbidden());
    }
    let (shop, conv) = (r.shop_id.clone(), r.conversation_id.clone());
    let msgs = inbox::thread(&c.shared.store, &shop, &conv).await?;
    let mut messages = Vec::new();
    let mut current_event = None;
    for m in &msgs {
        let Ok(ev) = crate::domain::event::InboundEvent::parse(&m.payload) else { continue };
        let is_current = m.seq == r.inbox_seq;
        let spans: Vec<([usize; 2], String)> = if is_current {
            d["intents"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|h| {
                    let id = h["id"].as_str().unwrap_or_default().to_owned();
                    h["evidence"].as_array().cloned().unwrap_or_default().into_iter().filter_map(move |e| {
                        Some(([e["span"][0].as_u64()? as usize, e["span"][1].as_u64()? as usize], id.clone()))
                    })
                })
                .collect()
        } else {
            Vec::new()
        };
        // Part-time staff see only the message the draft answers, with phones and the order's
        // receiver data masked where the buyer typed them (same length, so evidence spans hold).
        if !may_see_receiver(me.role) && !is_current {
            continue;
        }
        let text = if may_see_receiver(me.role) {
            ev.text.clone()
        } else {
            mask_in_text(&crate::domain::mask_phones(&ev.text), ev.order.as_ref().and_then(|o| o.receiver.as_ref()))
        };
        messages.push(json!({
            "current": is_current, "at": fmt_ms(m.received_at, c.tz()), "segments": segments(&text, &spans),
            "attachments": ev.attachments.len(), "reply": m.reply, "reply_status": m.status, "draft_id": m.draft_id,
        }));
        if is_current {
            current_event = Some(ev);
        }
    }
    let order = current_event.as_ref().and_then(|e| e.order.as_ref());
    let case = conversations::get(&c.shared.store, &shop, &conv)
        .await?
        .map(
            |r| json!({"state": serde_json::from_str::<Value>(&r.case_state).unwrap_or(Value::Null), "owner": r.owner}),
        )
        .unwrap_or(Value::Null);
    // The channel's reply budget (WeCom Kf), counting queued replies: what approving would meet.
    let budget = match c.shared.platform.reply_budget(&shop) {
        Some(b) => {
            let st = crate::store::budget::standing(&c.shared.store, b, &shop, &conv, crate::state::now_ms()).await?;
            Some(json!({
                "max": b.max(), "remaining": st.queued.remaining, "spent": st.queued.spent,
                "closes": st.queued.closes_at.map(|t| fmt_ms(t.as_millisecond(), c.tz())),
                "why": st.queued.spent.map(|w| b.explain(w)),
            }))
        }
        None => None,
    };
    let within_budget = budget.as_ref().is_none_or(|b| b["spent"].is_null());
    let reply = d["reply"].as_str().unwrap_or_default().to_owned();
    let findings = d["guard"]["findings"].as_array().cloned().unwrap_or_default();
    let fspans: Vec<([usize; 2], String)> = findings
        .iter()
        .filter_map(|f| {
            Some(([f["span"][0].as_u64()? as usize, f["span"][1].as_u64()? as usize], f["rule"].as_str()?.to_owned()))
        })
        .collect();
    let (edit_text, edit_verdict) = match edit {
        Some((t, v)) => (t.to_owned(), Some(verdict_json(t, v))),
        None => (reply.clone(), None),
    };
    c.page(
        "draft.html",
        Some(me),
        json!({
            "draft": d, "messages": messages, "order": order_card(order, me.role), "case": case,
            "reply_segments": segments(&reply, &fspans), "findings": distinct(findings),
            "open": matches!(d["status"].as_str(), Some("pending_review" | "escalated")),
            "approvable": d["guard"]["verdict"] == "pass" && d["reply"].is_string() && within_budget,
            "budget": budget,
            "edit_text": edit_text, "edit_verdict": edit_verdict,
            "part_time": me.role == Role::PartTime,
            "created": fmt_ms(r.created_at, c.tz()),
        }),
    )
}

pub(super) async fn draft_page(
    State(c): State<Arc<Console>>,
    Extension(me): Extension<Sess>,
    UrlPath(id): UrlPath<i64>,
) -> Page {
    draft_view(&c, &me, id, None).await
}

pub(super) async fn approve(
    State(c): State<Arc<Console>>,
    Extension(me): Extension<Sess>,
    UrlPath(id): UrlPath<i64>,
) -> Page {
    me.need(Role::Agent)?;
    review::approve(&c.shared, &me.actor(), id).await?;
    Ok(Redirect::to(&format!("/console/queue?msg=approved-{id}")).into_response())
}

#[derive(Deserialize)]
pub(super) struct EditForm {
    #[serde(default)]
    text: String,
}

pub(super) async fn edit(
    State(c): State<Arc<Console>>,
    Extension(me): Extension<Sess>,
    UrlPath(id): UrlPath<i64>,
    Form(f): Form<EditForm>,
) -> Page {
    me.need(Role::Agent)?;
    if f.text.trim().is_empty() {
        return Err(Fail::new(StatusCode::BAD_REQUEST, "empty_text", "the reply is empty"));
    }
    match review::edit(&c.shared, &me.actor(), id, &f.text).await {
        Ok(_) => Ok(Redirect::to(&format!("/console/queue?msg=edited-{id}")).into_response()),
        // Blocked: the same page again, the text kept, the offending spans highlighted.
        Err(ReviewError::Blocked(_)) => {
            let r = review::load(&c.shared, id).await?;
            let event = review::answered_event(&c.shared, &r).await?;
            let v = c.shared.assistant.check(&f.text, event.as_ref());
            let mut page = draft_view(&c, &me, id, Some((&f.text, &v))).await?;
            *page.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
            Ok(page)
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
pub(super) struct RejectForm {
    #[serde(default)]
    reason: String,
}

pub(super) async fn reject(
    State(c): State<Arc<Console>>,
    Extension(me): Extension<Sess>,
    UrlPath(id): UrlPath<i64>,
    Form(f): Form<RejectForm>,
) -> Page {
    me.need(Role::Agent)?;
    if f.reason.trim().is_empty() {
        return Err(Fail::new(StatusCode::BAD_REQUEST, "reason_required", "a rejection needs a reason"));
    }
    review::reject(&c.shared, &me.actor(), id, f.reason.trim()).await?;
    Ok(Redirect::to(&format!("/console/queue?msg=rejected-{id}")).into_response())
}

#[derive(Deserialize)]
pub(super) struct TriageForm {
    #[serde(default)]
    group: String,
}

/// Moves a waiting draft (and its case) to the returns/refunds or exceptions group.
pub(super) async fn triage(
    State(c): State<Arc<Console>>,
    Extension(me): Extension<Sess>,
    UrlPath(id): UrlPath<i64>,
    Form(f): Form<TriageForm>,
) -> Page {
    if !matches!(f.group.as_str(), "returns_refunds" | "exceptions") {
        return Err(Fail::new(StatusCode::BAD_REQUEST, "bad_group", "group must be returns_refunds or exceptions"));
    }
    let r = review::load(&c.shared, id).await?;
    if me.role == Role::PartTime && !faq_item(&c, &r.to_json(), &drafts::triaged(&c.shared.store).await?) {
        return Err(Fail::forbidden());
    }
    review::triage(&c.shared, &me.actor(), &r, &f.group).await?;
    Ok(Redirect::to(&format!("/console/queue?msg=triaged-{id}")).into_response())
}

#[derive(Deserialize)]
pub(super) struct CheckBody {
    draft_id: Option<i64>,
    text: String,
}

/// The live guard check as an agent types: the verdict, its findings and the text in segments.
pub(super) async fn check(
    State(c): State<Arc<Console>>,
    Extension(me): Extension<Sess>,
    Json(b): Json<CheckBody>,
) -> Page {
    me.need(Role::Agent)?;
    let event = match b.draft_id {
        Some(id) => {
            let r = review::load(&c.shared, id).await?;
            review::answered_event(&c.shared, &r).await?
        }
        None => None,
    };
    let v = c.shared.assistant.check(&b.text, event.as_ref());
    Ok(Json(verdict_json(&b.text, &v)).into_response())
}
