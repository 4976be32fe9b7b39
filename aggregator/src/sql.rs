//! The tier's Arrow Flight SQL endpoint (`[sql] listen`, docs/SQL.md), served by crate `sifa-sql`
//! over this tier's store: here are who may query ([`TierCallers`], the rule is
//! `auth::authorize_sql`) and the log's tail it adds to the Parquet files ([`LogTail`]).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use sifa_proto::{Registry, UnitCode};
use sifa_sql::{Callers, SqlService, Unflushed};
use sifa_store::{StoredReport, layout};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::Status;
use tonic::metadata::MetadataMap;
use tonic::transport::CertificateDer;

use crate::auth::tls::tls_incoming;
use crate::auth::{Authenticator, authorize_sql};
use crate::flush::stored_report;
use crate::ingest;

/// Who may query this tier: the caller's certificate, then `authorize_sql`.
pub struct TierCallers {
    pub unit: UnitCode,
    pub registry: Arc<Registry>,
    pub authenticator: Arc<Authenticator>,
}

impl Callers for TierCallers {
    fn scope(&self, peer_certs: Option<&[CertificateDer<'_>]>, metadata: &MetadataMap) -> Result<String, Status> {
        let id = self.authenticator.identify_parts(peer_certs, metadata, &self.registry)?;
        Ok(authorize_sql(&id, &self.unit, &self.registry)?)
    }
}

/// The reports acknowledged (in the log) and not yet in Parquet.
#[derive(Debug)]
pub struct LogTail {
    pub unflushed: ingest::Unflushed,
    pub registry: Arc<Registry>,
}

impl Unflushed for LogTail {
    fn reports(&self) -> Vec<StoredReport> {
        let pending = self.unflushed.lock().expect("unflushed").clone();
        pending.iter().map(|(_, rec)| stored_report(rec, &self.registry)).collect()
    }
}

/// Binds `listen`, records the bound address in the data directory (`sql.addr`) and serves the
/// tier's `store` until `stop` turns true. `tls`: the tier's TLS acceptor (`None` only with
/// `--insecure`); a handshake that fails is given to `handshake_failed` with its reason.
pub async fn start(
    listen: SocketAddr,
    data_dir: &Path,
    store: sifa_queries::Store,
    tls: Option<TlsAcceptor>,
    handshake_failed: impl Fn(&'static str) + Send + Sync + 'static,
    callers: TierCallers,
    tail: LogTail,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen} (key `sql.listen`)"))?;
    let addr = listener.local_addr()?;
    sifa_proto::fs::write_atomic(data_dir, layout::SQL_ADDR_FILE, addr.to_string().as_bytes())?;
    tracing::info!(unit = %callers.unit, "Flight SQL endpoint on {addr}");
    let service = SqlService::new(store, Arc::new(callers), Arc::new(tail));
    let shutdown = async move {
        let _ = stop.wait_for(|stopping| *stopping).await;
    };
    Ok(tokio::spawn(async move {
        let served = match tls {
            Some(acceptor) => {
                sifa_sql::serve(tls_incoming(listener, acceptor, handshake_failed), service, shutdown).await
            }
            None => sifa_sql::serve(TcpListenerStream::new(listener), service, shutdown).await,
        };
        if let Err(e) = served {
            tracing::error!("{e}");
        }
    }))
}
