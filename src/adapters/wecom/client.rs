//! The WeCom API client: `gettoken` with the token cache, and the Kf calls, each answer
//! classified by its `errcode`. A call refused for a bad token fetches a new token and is made
//! once more; busy and frequency-limit answers and HTTP 5xx come back as [`CallError::Retry`]
//! for the caller's backoff.

use std::time::Duration;

use serde::{Serialize, de::DeserializeOwned};
use tokio::sync::Mutex;

use super::{
    kf::{
        ErrKind, GetToken, SendMsg, SendMsgRequest, ServiceStateGet, ServiceStateGetRequest, ServiceStateTrans,
        ServiceStateTransRequest, Status, SyncMsg, SyncMsgRequest, err_kind,
    },
    token::TokenCache,
};

/// Time allowed for one API call.
const TIMEOUT: Duration = Duration::from_secs(10);

/// WeCom's API host; configurable so that tests can run a fake.
pub const DEFAULT_API_URL: &str = "https://qyapi.weixin.qq.com";

/// A failed call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// Busy, rate-limited, 5xx, network: try again later (`rate_limited`: WeCom said so).
    #[error("WeCom is unavailable: {why}")]
    Retry {
        /// What happened (no buyer data).
        why: String,
        /// An `errcode` of the frequency-limit kind.
        rate_limited: bool,
    },
    /// The request is wrong (bad corp id or secret, unknown user, session closed, …).
    #[error("WeCom refused the call: {why}")]
    Rejected {
        /// What was refused (no buyer data).
        why: String,
        /// WeCom's `errcode`, when it answered with one.
        errcode: Option<i64>,
    },
}

/// Answers that carry `errcode` / `errmsg`.
pub trait Answer {
    /// The status part.
    fn status(&self) -> &Status;
}

macro_rules! answer {
    ($($t:ty),*) => {$(impl Answer for $t { fn status(&self) -> &Status { &self.status } })*};
}
answer!(GetToken, SyncMsg, SendMsg, ServiceStateGet, ServiceStateTrans);

/// One corp's API client.
pub struct Client {
    http: reqwest::Client,
    base: String,
    corp_id: String,
    secret: String,
    cache: Mutex<TokenCache>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("base", &self.base).field("corp_id", &self.corp_id).finish_non_exhaustive()
    }
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

impl Client {
    /// A client for `corp_id` with the app `secret`, against `base` (no trailing slash).
    #[must_use]
    pub fn new(http: reqwest::Client, base: &str, corp_id: &str, secret: &str, margin_ms: i64) -> Self {
        Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            corp_id: corp_id.to_owned(),
            secret: secret.to_owned(),
            cache: Mutex::new(TokenCache::new(margin_ms)),
        }
    }

    /// A valid access token, from the cache or a fresh `gettoken`. Concurrent callers wait for
    /// one refresh.
    ///
    /// # Errors
    /// `gettoken` failed.
    pub async fn token(&self) -> Result<String, CallError> {
        let mut cache = self.cache.lock().await;
        if let Some(t) = cache.get(now_ms()) {
            return Ok(t.to_owned());
        }
        let url = with_params(
            &format!("{}/cgi-bin/gettoken", self.base),
            &[("corpid", &self.corp_id), ("corpsecret", &self.secret)],
        )?;
        let res = self.http.get(url).timeout(TIMEOUT).send().await;
        let got: GetToken = read(res).await?;
        match err_kind(got.status.errcode) {
            ErrKind::Ok if !got.access_token.is_empty() => {}
            ErrKind::Ok => {
                return Err(CallError::Retry { why: "gettoken returned no token".into(), rate_limited: false });
            }
            ErrKind::Retry => return Err(retry(&got.status)),
            ErrKind::Token | ErrKind::Reject => {
                return Err(CallError::Rejected {
                    why: format!(
                        "gettoken: errcode {} ({}); check the corp id and SHOUHOU_WECOM_SECRET",
                        got.status.errcode, got.status.errmsg
                    ),
                    errcode: Some(got.status.errcode),
                });
            }
        }
        cache.store(got.access_token.clone(), got.expires_in, now_ms());
        Ok(got.access_token)
    }

    /// POSTs `body` to `cgi-bin/{path}` with the access token.
    ///
    /// # Errors
    /// See [`CallError`].
    pub async fn post<Req: Serialize + Sync, Resp: DeserializeOwned + Answer>(
        &self,
        path: &str,
        body: &Req,
    ) -> Result<Resp, CallError> {
        let url = format!("{}/cgi-bin/{path}", self.base);
        for attempt in 0..2 {
            let token = self.token().await?;
            let res = self
                .http
                .post(with_params(&url, &[("access_token", &token)])?)
                .json(body)
                .timeout(TIMEOUT)
                .send()
                .await;
            let answer: Resp = read(res).await?;
            let status = answer.status();
            match err_kind(status.errcode) {
                ErrKind::Ok => return Ok(answer),
                ErrKind::Token if attempt == 0 => {
                    metrics::counter!("shouhou_wecom_token_refreshes_total", "why" => "refused").increment(1);
                    self.cache.lock().await.invalidate(&token);
                }
                ErrKind::Token => {
                    return Err(CallError::Retry {
                        why: format!("{path}: a fresh access token was refused too (errcode {})", status.errcode),
                        rate_limited: false,
                    });
                }
                ErrKind::Retry => return Err(retry(status)),
                ErrKind::Reject => {
                    return Err(CallError::Rejected {
                        why: format!("{path}: errcode {} ({})", status.errcode, status.errmsg),
                        errcode: Some(status.errcode),
                    });
                }
            }
        }
        unreachable!("the loop returns on its second attempt")
    }

    /// `kf/sync_msg`.
    ///
    /// # Errors
    /// See [`CallError`].
    pub async fn sync_msg(&self, req: &SyncMsgRequest) -> Result<SyncMsg, CallError> {
        self.post("kf/sync_msg", req).await
    }

    /// `kf/send_msg`.
    ///
    /// # Errors
    /// See [`CallError`].
    pub async fn send_msg(&self, req: &SendMsgRequest) -> Result<SendMsg, CallError> {
        self.post("kf/send_msg", req).await
    }

    /// `kf/service_state/get`.
    ///
    /// # Errors
    /// See [`CallError`].
    pub async fn service_state(&self, req: &ServiceStateGetRequest) -> Result<ServiceStateGet, CallError> {
        self.post("kf/service_state/get", req).await
    }

    /// `kf/service_state/trans`.
    ///
    /// # Errors
    /// See [`CallError`].
    pub async fn trans(&self, req: &ServiceStateTransRequest) -> Result<ServiceStateTrans, CallError> {
        self.post("kf/service_state/trans", req).await
    }
}

fn with_params(url: &str, params: &[(&str, &str)]) -> Result<reqwest::Url, CallError> {
    reqwest::Url::parse_with_params(url, params)
        .map_err(|_| CallError::Rejected { why: format!("`{url}` is not a URL"), errcode: None })
}

fn retry(s: &Status) -> CallError {
    CallError::Retry { why: format!("errcode {} ({})", s.errcode, s.errmsg), rate_limited: s.errcode != -1 }
}

async fn read<T: DeserializeOwned>(res: Result<reqwest::Response, reqwest::Error>) -> Result<T, CallError> {
    let res = res.map_err(|e| CallError::Retry {
        why: if e.is_timeout() { "timed out".into() } else { "connection failed".into() },
        rate_limited: false,
    })?;
    let code = res.status();
    if code.is_server_error() || code.as_u16() == 429 {
        return Err(CallError::Retry { why: format!("HTTP {code}"), rate_limited: code.as_u16() == 429 });
    }
    if !code.is_success() {
        return Err(CallError::Rejected { why: format!("HTTP {code}"), errcode: None });
    }
    res.json::<T>()
        .await
        .map_err(|_| CallError::Retry { why: "the answer is not the JSON expected".into(), rate_limited: false })
}
