//! HTTP routes: discovery, the external metric read, health, `/metrics` and the publish API,
//! behind one middleware that authenticates, authorizes, logs each refusal once and records
//! request metrics. Every error is a `metav1.Status` JSON body; every body is JSON whatever the
//! `Accept` header asks for (the HPA asks for protobuf first).

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{MatchedPath, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::api::{self, ExternalMetricValue, ExternalMetricValueList, Status};
pub use crate::api::{PublishBody, TargetView, UnpublishBody};
use crate::auth::{self, Attributes, Authorizer, Decision, Peer};
use crate::lifecycle::Health;
use crate::metrics::{Metrics, RouteLabels, RouteOnly};
use crate::selector::{self, Selector};
use crate::store::{LookupError, Source, Store, Target, now_unix};

/// Route template of the metric read.
pub const METRIC_ROUTE: &str = "/apis/external.metrics.k8s.io/v1beta1/namespaces/{ns}/{metric}";

/// Shared state of every handler.
#[derive(Clone, Debug)]
pub struct AppState {
    /// Targets.
    pub store: Arc<Store>,
    /// Own metrics.
    pub metrics: Arc<Metrics>,
    /// Authorizer (SAR + cache).
    pub authorizer: Arc<Authorizer>,
    /// Paths served without authentication.
    pub always_allow_paths: Arc<Vec<String>>,
    /// Publish API token; `None` disables publishing.
    pub publish_token: Arc<RwLock<Option<String>>>,
    /// Readiness: listening, configuration loaded, background tasks and watches healthy.
    pub health: Arc<Health>,
    /// Notified after each publish so the state file is rewritten.
    pub persist: Option<Arc<Notify>>,
}

impl AppState {
    /// A state with defaults for tests and embedding: dev authorizer, no token.
    pub fn new(authorizer: Authorizer) -> Self {
        Self {
            store: Arc::new(Store::new()),
            metrics: Arc::new(Metrics::new()),
            authorizer: Arc::new(authorizer),
            always_allow_paths: Arc::new(vec![
                "/healthz".into(),
                "/readyz".into(),
                "/livez".into(),
            ]),
            publish_token: Arc::new(RwLock::new(None)),
            health: Arc::new(Health::ready_now()),
            persist: None,
        }
    }
}

/// An error answered as `metav1.Status`.
#[derive(Debug)]
pub struct ApiError(pub Box<Status>);

impl ApiError {
    fn new(code: StatusCode, reason: &str, msg: impl Into<String>) -> Self {
        Self(Box::new(Status::failure(code.as_u16(), reason, msg)))
    }
    /// 400.
    pub fn bad_request(msg: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadRequest", msg)
    }
    /// 404.
    pub fn not_found(msg: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NotFound", msg)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.0.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (code, json_body(&self.0)).into_response()
    }
}

fn json_body<T: Serialize>(v: &T) -> Response {
    let body = serde_json::to_vec(v).unwrap_or_else(|_| b"{}".to_vec());
    let mut r = body.into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// The router with every route and the auth/metrics middleware.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/livez", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/apis", get(|| async { json_body(&api::api_group_list()) }))
        .route(
            "/apis/external.metrics.k8s.io",
            get(|| async { json_body(&api::api_group_doc()) }),
        )
        .route(
            "/apis/external.metrics.k8s.io/v1beta1",
            get(|| async { json_body(&api::api_resource_list()) }),
        )
        .route(METRIC_ROUTE, get(get_metric))
        .route("/metrics", get(metrics_text))
        .route("/targets/v1", get(list_targets))
        .route(
            "/targets/v1/namespaces/{ns}/{metric}",
            put(publish).delete(unpublish),
        )
        .fallback(|req: Request| async move {
            ApiError::not_found(format!(
                "the server could not find the requested resource {}",
                req.uri().path()
            ))
        })
        .method_not_allowed_fallback(|req: Request| async move {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                format!(
                    "method {} is not supported on {}",
                    req.method(),
                    req.uri().path()
                ),
            )
        })
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state)
}

async fn readyz(State(s): State<AppState>) -> Response {
    let why = s.health.not_ready();
    if why.is_empty() {
        "ok".into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {}", why.join("; ")),
        )
            .into_response()
    }
}

async fn metrics_text(State(s): State<AppState>) -> Response {
    let mut r = s.metrics.encode(s.store.counts(now_unix())).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    r
}

fn attributes(req: &Request, route: &str) -> Attributes {
    if route == METRIC_ROUTE {
        let mut parts = req.uri().path().rsplit('/');
        let metric = parts.next().unwrap_or_default().to_string();
        let namespace = parts.next().unwrap_or_default().to_string();
        return Attributes::Resource { namespace, metric };
    }
    Attributes::NonResource {
        path: req.uri().path().to_string(),
        verb: req.method().as_str().to_ascii_lowercase(),
    }
}

fn forbidden(user: &auth::User, attrs: &Attributes, why: &str) -> ApiError {
    let why = if why.is_empty() {
        String::new()
    } else {
        format!(": {why}")
    };
    let mut st = match attrs {
        Attributes::Resource { namespace, metric } => Status::failure(
            403,
            "Forbidden",
            format!(
                "{metric} is forbidden: User {:?} cannot list resource {metric:?} in API group \"{}\" in the namespace {namespace:?}{why}",
                user.name,
                api::GROUP
            ),
        ),
        Attributes::NonResource { path, verb } => Status::failure(
            403,
            "Forbidden",
            format!(
                "forbidden: User {:?} cannot {verb} path {path:?}{why}",
                user.name
            ),
        ),
    };
    st.details = Some(serde_json::json!({"group": api::GROUP, "kind": "externalmetrics"}));
    ApiError(Box::new(st))
}

/// Authentication, authorization and request metrics around every route.
async fn guard(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let path = req.uri().path().to_string();
    let public = s.always_allow_paths.iter().any(|p| p == &path) || route.starts_with("/targets/");
    let resp = if public {
        next.run(req).await
    } else {
        authorized(&s, req, &route, next).await
    };
    let code = resp.status().as_u16();
    s.metrics
        .requests
        .get_or_create(&RouteLabels {
            route: route.clone(),
            code,
        })
        .inc();
    s.metrics
        .latency
        .get_or_create(&RouteOnly { route })
        .observe(start.elapsed().as_secs_f64());
    resp
}

async fn authorized(s: &AppState, req: Request, route: &str, next: Next) -> Response {
    let peer = req
        .extensions()
        .get::<Arc<Peer>>()
        .cloned()
        .unwrap_or_else(|| Arc::new(Peer::Anonymous));
    let user = match auth::authenticate(&peer, req.headers()) {
        Ok(u) => u,
        Err(e) => {
            tracing::warn!(path = req.uri().path(), reason = %e, "rejected: unauthorized");
            Metrics::count(&s.metrics.authn_failures, authn_kind(&e));
            return ApiError::new(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized")
                .into_response();
        }
    };
    let attrs = attributes(&req, route);
    match s.authorizer.authorize(&user, &attrs).await {
        Ok((Decision::Allow, _)) => next.run(req).await,
        Ok((Decision::Deny(why), _)) => {
            tracing::warn!(path = req.uri().path(), user = %user.name, reason = %why, "rejected: forbidden");
            Metrics::count(&s.metrics.authz_failures, "denied");
            forbidden(&user, &attrs, &why).into_response()
        }
        Err(e) => {
            tracing::warn!(path = req.uri().path(), user = %user.name, error = %e, "rejected: authorization error");
            Metrics::count(&s.metrics.authz_failures, "review_error");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                format!("Internal error occurred: {e}"),
            )
            .into_response()
        }
    }
}

fn authn_kind(e: &auth::AuthnError) -> &'static str {
    match e {
        auth::AuthnError::Anonymous => "anonymous",
        auth::AuthnError::NoUserHeader(_) => "no_user_header",
        auth::AuthnError::Refused(_) => "certificate_refused",
    }
}

/// Query of the metric read.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricQuery {
    /// Label selector string.
    pub label_selector: Option<String>,
}

async fn get_metric(
    State(s): State<AppState>,
    Path((ns, metric)): Path<(String, String)>,
    q: Result<Query<MetricQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let q = q.map_err(|e| ApiError::bad_request(format!("invalid query: {}", e.body_text())))?;
    let sel = Selector::parse(q.label_selector.as_deref().unwrap_or(""))
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let now = now_unix();
    let targets = s.store.lookup(&ns, &metric, &sel, now).map_err(|e| {
        tracing::debug!(namespace = %ns, metric = %metric, error = %e, "metric not served");
        match e {
            LookupError::NotFound { .. } => ApiError::not_found(e.to_string()),
            LookupError::Stale { .. } => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                e.to_string(),
            ),
        }
    })?;
    let items = targets
        .into_iter()
        .map(|t| {
            s.metrics
                .freshness
                .observe((now - t.published_unix).max(0.0));
            ExternalMetricValue {
                metric_name: metric.clone(),
                metric_labels: t.labels,
                timestamp: api::rfc3339(t.published_unix.floor() as i64),
                window_seconds: None,
                value: api::quantity(t.value),
            }
        })
        .collect();
    Ok(json_body(&ExternalMetricValueList::new(items)))
}

impl TargetView {
    fn of(t: &Target, now: f64) -> Self {
        Self {
            namespace: t.namespace.clone(),
            metric: t.metric.clone(),
            labels: t.labels.clone(),
            value: t.value,
            ttl_seconds: t
                .expires_unix
                .map(|e| (e - t.published_unix).round().max(0.0) as u64),
            published_at: api::rfc3339(t.published_unix.floor() as i64),
            expires_at: t.expires_unix.map(|e| api::rfc3339(e.floor() as i64)),
            fresh: t.fresh_at(now),
            source: t.source,
        }
    }
}

/// Checks a publishable metric name: `[a-z0-9.-]`, 1..=253, not `.`/`..`.
pub fn validate_metric_name(m: &str) -> Result<(), String> {
    let ok = !m.is_empty()
        && m.len() <= 253
        && m != "."
        && m != ".."
        && m.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "metric name {m:?} must be 1-253 characters of [a-z0-9.-]"
        ))
    }
}

/// Longest accepted `ttlSeconds` (one day).
pub const MAX_TTL_SECONDS: u64 = 86_400;

/// Validates a target's identity and value (publish API and targets file).
pub fn validate_target(
    ns: &str,
    metric: &str,
    labels: &BTreeMap<String, String>,
    value: f64,
) -> Result<(), String> {
    selector::validate_dns_label(ns).map_err(|e| format!("namespace: {e}"))?;
    validate_metric_name(metric)?;
    for (k, v) in labels {
        selector::validate_label_key(k)?;
        selector::validate_label_value(v)?;
    }
    if !value.is_finite() || !(0.0..=1e9).contains(&value) {
        return Err(format!("value {value} must be a finite number in 0..=1e9"));
    }
    Ok(())
}

fn check_token(s: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let expected = s
        .publish_token
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let Some(expected) = expected else {
        Metrics::count(&s.metrics.publishes, "disabled");
        tracing::warn!("rejected publish: publishing is disabled (no --publish-token-file)");
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "publishing is disabled: start the adapter with --publish-token-file",
        ));
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match given {
        Some(g) if constant_time_eq(g.as_bytes(), expected.as_bytes()) => Ok(()),
        other => {
            let reason = if other.is_some() {
                "wrong bearer token"
            } else {
                "missing bearer token"
            };
            tracing::warn!(reason, "rejected publish: unauthorized");
            Metrics::count(&s.metrics.publishes, "unauthorized");
            Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "Unauthorized",
                reason,
            ))
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn publish(
    State(s): State<AppState>,
    Path((ns, metric)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Json<PublishBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    check_token(&s, &headers)?;
    let bad = |m: String| {
        tracing::warn!(namespace = %ns, metric = %metric, reason = %m, "rejected publish: bad request");
        Metrics::count(&s.metrics.publishes, "bad_request");
        ApiError::bad_request(m)
    };
    let Json(b) = body.map_err(|e| bad(format!("invalid body: {}", e.body_text())))?;
    validate_target(&ns, &metric, &b.labels, b.value).map_err(&bad)?;
    if !(1..=MAX_TTL_SECONDS).contains(&b.ttl_seconds) {
        return Err(bad(format!(
            "ttlSeconds {} must be in 1..={MAX_TTL_SECONDS}",
            b.ttl_seconds
        )));
    }
    let now = now_unix();
    let t = Target {
        namespace: ns,
        metric,
        labels: b.labels,
        value: b.value,
        published_unix: now,
        expires_unix: Some(now + b.ttl_seconds as f64),
        source: Source::Published,
    };
    s.store.upsert(t.clone());
    if let Some(p) = &s.persist {
        p.notify_one();
    }
    Metrics::count(&s.metrics.publishes, "ok");
    tracing::info!(namespace = %t.namespace, metric = %t.metric, labels = ?t.labels, value = t.value, ttl = b.ttl_seconds, "published");
    Ok(json_body(&TargetView::of(&t, now)))
}

async fn unpublish(
    State(s): State<AppState>,
    Path((ns, metric)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Json<UnpublishBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    check_token(&s, &headers)?;
    let Json(b) =
        body.map_err(|e| ApiError::bad_request(format!("invalid body: {}", e.body_text())))?;
    if !s.store.remove(&ns, &metric, &b.labels) {
        return Err(ApiError::not_found(format!(
            "no target {metric:?} in namespace {ns:?} with labels {:?}",
            b.labels
        )));
    }
    if let Some(p) = &s.persist {
        p.notify_one();
    }
    Ok(json_body(&serde_json::json!({"deleted": true})))
}

async fn list_targets(
    State(s): State<AppState>,
    headers: HeaderMap,
    method: Method,
) -> Result<Response, ApiError> {
    debug_assert_eq!(method, Method::GET);
    check_token(&s, &headers)?;
    let now = now_unix();
    let v: Vec<TargetView> = s
        .store
        .all()
        .iter()
        .map(|t| TargetView::of(t, now))
        .collect();
    Ok(json_body(&serde_json::json!({"targets": v})))
}
