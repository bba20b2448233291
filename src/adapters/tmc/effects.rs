//! What a TMC data message means for an order: pure interpretation of the topic and its JSON
//! `content`, no I/O. Tolerant: ids may be numbers or strings, fields may be missing; a topic
//! this module does not know is [`Effect::Ignored`] (it is still confirmed).
//!
//! Topic and field names are those of the Taobao trade (`taobao_trade_*`) and refund
//! (`taobao_refund_*`) message definitions: every message carries `tid` (the main order id);
//! trade messages carry `status` (a Taobao trade status), refund messages carry `refund_id`
//! and `refund_fee` but no status, so the refund status is implied by the topic.

use serde_json::Value;

/// The topic that closes a trade.
pub const TRADE_CLOSE: &str = "taobao_trade_TradeClose";

/// What one message changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// A trade event: the order's trade status (Taobao code, e.g. `WAIT_SELLER_SEND_GOODS`).
    Trade {
        /// Main order id (`tid`).
        order_id: String,
        /// Taobao trade status, when the message says or the topic implies it.
        status: Option<String>,
        /// Whether the trade is closed (pending calls about it stop).
        closed: bool,
    },
    /// A refund event.
    Refund {
        /// Main order id (`tid`).
        order_id: String,
        /// Refund id.
        refund_id: Option<String>,
        /// Taobao refund status (`WAIT_SELLER_AGREE`, `SUCCESS`, ...), when known.
        status: Option<String>,
        /// Refund amount in yuan, as sent.
        fee: Option<String>,
    },
    /// Nothing to apply: an unknown topic, or a trade/refund message without an order id.
    Ignored {
        /// Why (for the debug log; never buyer data).
        reason: &'static str,
    },
}

/// Interprets one data message.
#[must_use]
pub fn interpret(topic: &str, content: &str) -> Effect {
    let trade = topic.strip_prefix("taobao_trade_");
    let refund = topic.strip_prefix("taobao_refund_");
    if trade.is_none() && refund.is_none() {
        return Effect::Ignored { reason: "topic not handled" };
    }
    let Ok(json) = serde_json::from_str::<Value>(content) else {
        return Effect::Ignored { reason: "content is not JSON" };
    };
    let Some(order_id) = id(&json, "tid") else {
        return Effect::Ignored { reason: "content has no tid" };
    };
    let text = |k: &str| json.get(k).and_then(|v| v.as_str()).map(str::trim).filter(|s| !s.is_empty());
    if let Some(event) = trade {
        let status = text("status").map(str::to_owned).or_else(|| trade_status_of(event).map(str::to_owned));
        let closed =
            event == "TradeClose" || matches!(status.as_deref(), Some("TRADE_CLOSED" | "TRADE_CLOSED_BY_TAOBAO"));
        return Effect::Trade { order_id, status, closed };
    }
    let event = refund.unwrap_or_default();
    Effect::Refund {
        order_id,
        refund_id: id(&json, "refund_id"),
        status: text("status").map(str::to_owned).or_else(|| refund_status_of(event).map(str::to_owned)),
        fee: text("refund_fee").map(str::to_owned).or_else(|| json.get("refund_fee").and_then(number)),
    }
}

/// The trade status a trade topic implies when its content does not say.
#[must_use]
pub fn trade_status_of(event: &str) -> Option<&'static str> {
    Some(match event {
        "TradeCreate" => "WAIT_BUYER_PAY",
        "TradeBuyerPay" => "WAIT_SELLER_SEND_GOODS",
        "TradeSellerShip" => "WAIT_BUYER_CONFIRM_GOODS",
        "TradeSuccess" => "TRADE_FINISHED",
        "TradeClose" => "TRADE_CLOSED",
        _ => return None,
    })
}

/// The refund status a refund topic implies (refund messages carry no status field).
#[must_use]
pub fn refund_status_of(event: &str) -> Option<&'static str> {
    Some(match event {
        "RefundCreated" | "RefundBuyerModifyAgreement" => "WAIT_SELLER_AGREE",
        "RefundSellerAgreeAgreement" => "WAIT_BUYER_RETURN_GOODS",
        "RefundBuyerReturnGoods" => "WAIT_SELLER_CONFIRM_GOODS",
        "RefundSellerRefuseAgreement" => "SELLER_REFUSE_BUYER",
        "RefundClosed" => "CLOSED",
        "RefundSuccess" => "SUCCESS",
        _ => return None,
    })
}

/// The shouhou order status (the inbound event's vocabulary) for a Taobao trade status.
#[must_use]
pub fn order_status(trade_status: &str) -> Option<&'static str> {
    Some(match trade_status {
        "TRADE_NO_CREATE_PAY" | "WAIT_BUYER_PAY" | "PAY_PENDING" | "WAIT_PRE_AUTH_CONFIRM" => "unpaid",
        "WAIT_SELLER_SEND_GOODS" | "PAID_FORBID_CONSIGN" => "paid",
        "SELLER_CONSIGNED_PART" | "WAIT_BUYER_CONFIRM_GOODS" => "shipped",
        // A finished trade is one the buyer confirmed receiving (or that auto-confirmed).
        "TRADE_BUYER_SIGNED" | "TRADE_FINISHED" => "signed",
        "TRADE_CLOSED" | "TRADE_CLOSED_BY_TAOBAO" => "closed",
        _ => return None,
    })
}

/// The refund status templates see (`order.refund_status`) for a Taobao refund status.
#[must_use]
pub fn refund_status(taobao: &str) -> Option<&'static str> {
    Some(match taobao {
        "WAIT_SELLER_AGREE" => "wait_seller_agree",
        "WAIT_BUYER_RETURN_GOODS" => "wait_buyer_return_goods",
        "WAIT_SELLER_CONFIRM_GOODS" => "wait_seller_confirm_goods",
        "SELLER_REFUSE_BUYER" => "seller_refused",
        "CLOSED" => "closed",
        "SUCCESS" => "success",
        _ => return None,
    })
}

/// An id that may be sent as a JSON number or a string.
fn id(json: &Value, key: &str) -> Option<String> {
    match json.get(key)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        v @ Value::Number(_) => number(v),
        _ => None,
    }
}

fn number(v: &Value) -> Option<String> {
    match v {
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}
