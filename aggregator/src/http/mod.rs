//! A tier's HTTP side (`[http] listen`), for its operators:
//!
//! - `/metrics`: Prometheus metrics, OpenMetrics text ([`metrics`]);
//! - `/healthz`: the process is alive; `/readyz`: the log is replayed and reports are accepted;
//! - `/`: the status page, Chinese first, `?lang=en` in English ([`page`]).
//!
//! Plaintext on loopback, HTTPS with client certificates elsewhere ([`access`]).
//! It starts once the store and the log are recovered, beside the gRPC server,
//! and reads the tier's state from its parts ([`snapshot`]).

pub mod access;
pub mod metrics;
pub mod page;
pub mod snapshot;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use sifa_proto::identity::Identity;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;

use crate::auth::tls::tls_incoming;

use crate::auth::{self, Denied, authenticate};
use crate::service::Tier;
use access::Access;
use snapshot::Sources;

/// The `[http]` table of an aggregator's config.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// `HOST:PORT` of the HTTP side, e.g. "127.0.0.1:9400" (plaintext) or "0.0.0.0:9400" (HTTPS).
    pub listen: String,
    /// HTTPS with client certificates on a loopback address too (always off loopback).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub https: bool,
}

/// The checked `[http]` table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpSide {
    pub listen: SocketAddr,
    /// HTTPS even on loopback (`https = true`).
    pub https: bool,
}

/// What the handlers share.
pub struct HttpState {
    /// The tier's services' state. Weak: a stopping tier's log writer ends once the gRPC server and
    /// its ingest handles are gone, whatever connections the HTTP side still holds.
    pub tier: Weak<Tier>,
    pub sources: Sources,
    pub access: Access,
    /// False once the tier stops taking reports (shutting down).
    pub accepting: AtomicBool,
}

/// Binds `listen`; returns the bound address and the server to spawn.
pub async fn bind(
    listen: SocketAddr,
    state: Arc<HttpState>,
) -> std::io::Result<(SocketAddr, impl Future<Output = ()> + Send + 'static)> {
    let listener = TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    Ok((addr, serve(listener, state)))
}

async fn serve(listener: TcpListener, state: Arc<HttpState>) {
    let acceptor = match &state.access {
        Access::Tls { acceptor, .. } => acceptor.clone(),
        Access::Plaintext => loop {
            match listener.accept().await {
                Ok((tcp, peer)) => {
                    let _ = tcp.set_nodelay(true);
                    let state = state.clone();
                    tokio::spawn(async move {
                        let svc = hyper::service::service_fn(|req| handle(state.clone(), Ok(None), req));
                        let served =
                            hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tcp), svc);
                        if let Err(e) = served.await {
                            tracing::debug!(%peer, "HTTP side: connection ended: {e}");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!("HTTP side: cannot accept a connection: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        },
    };
    let metrics = state.sources.metrics.clone();
    let incoming = tls_incoming(listener, acceptor, move |reason| metrics.tls_handshake_failed("http", reason));
    let mut incoming = std::pin::pin!(incoming);
    while let Some(Ok(tls)) = incoming.next().await {
        tokio::spawn(tls_connection(tls, state.clone()));
    }
}

/// One HTTPS connection: its caller, from its certificate, then its requests.
async fn tls_connection(tls: TlsStream<TcpStream>, state: Arc<HttpState>) {
    let Access::Tls { revocations, .. } = &state.access else { return };
    let peer = tls.get_ref().0.peer_addr().ok();
    let Some(tier) = state.tier.upgrade() else { return };
    let caller = authenticate(tls.get_ref().1.peer_certificates(), revocations).and_then(|id| {
        auth::authorize_operator(&id, &tier.unit, &tier.registry)?;
        Ok(Some(id))
    });
    drop(tier);
    if let Err(e) = &caller {
        tracing::info!(?peer, "HTTP side: refused: {e}");
    }
    let svc = hyper::service::service_fn(|req| handle(state.clone(), caller.clone(), req));
    if let Err(e) = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tls), svc).await {
        tracing::debug!(?peer, "HTTP side: connection ended: {e}");
    }
}

fn text(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .header("cache-control", "no-store")
        .body(Full::new(body.into()))
        .expect("a valid response")
}

const PLAIN: &str = "text/plain; charset=utf-8";

async fn handle(
    state: Arc<HttpState>,
    caller: Result<Option<Identity>, Denied>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if let Err(denied) = caller {
        let status = match denied {
            Denied::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            Denied::PermissionDenied(_) => StatusCode::FORBIDDEN,
        };
        return Ok(text(status, PLAIN, format!("{denied}\n")));
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return Ok(text(StatusCode::METHOD_NOT_ALLOWED, PLAIN, "only GET is served here\n"));
    }
    let response = match req.uri().path() {
        "/healthz" => text(StatusCode::OK, PLAIN, "ok: the aggregator process is alive\n"),
        "/readyz" if !state.accepting.load(Ordering::SeqCst) => {
            text(StatusCode::SERVICE_UNAVAILABLE, PLAIN, "not ready: the aggregator is stopping\n")
        }
        "/readyz" if !state.tier.upgrade().is_some_and(|t| t.index_ready.load(Ordering::SeqCst)) => text(
            StatusCode::SERVICE_UNAVAILABLE,
            PLAIN,
            "not ready: loading the index of the store (reports wait until it is loaded)\n",
        ),
        "/readyz" => text(StatusCode::OK, PLAIN, "ready: the log is replayed and reports are accepted\n"),
        "/metrics" => {
            text(StatusCode::OK, metrics::CONTENT_TYPE, state.sources.metrics.encode(&state.sources.snapshot()))
        }
        "/" => match state.tier.upgrade() {
            Some(tier) => {
                let lang = page::Lang::from_query(req.uri().query().unwrap_or(""));
                let html = page::render(&page::collect(&tier, &state.sources.snapshot()), lang);
                text(StatusCode::OK, "text/html; charset=utf-8", html)
            }
            None => text(StatusCode::SERVICE_UNAVAILABLE, PLAIN, "the aggregator is stopping\n"),
        },
        other => text(
            StatusCode::NOT_FOUND,
            PLAIN,
            format!("{other}: not here; this tier serves / (status page), /metrics, /healthz and /readyz\n"),
        ),
    };
    Ok(response)
}
