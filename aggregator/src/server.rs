//! Running a tier: reference data, recovery of the store and the log, the
//! log writer, the flusher, the forwarder and the gRPC server, and a graceful
//! stop on SIGTERM or Ctrl-C.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use sifa_proto::period::now_unix_ms;
use sifa_proto::v1::admin_service_server::AdminServiceServer;
use sifa_proto::v1::directory_service_client::DirectoryServiceClient;
use sifa_proto::v1::directory_service_server::DirectoryServiceServer;
use sifa_proto::v1::report_service_server::ReportServiceServer;
use sifa_proto::v1::{GetCatalogRequest, GetRegistryRequest};
use sifa_proto::validate::content_digest;
use sifa_proto::{Catalog, Period, Registry, SENDER_METADATA_KEY};
use sifa_store::StoreMeta;
use sifa_store::layout;
use tokio::sync::watch;
use tokio_stream::wrappers::TcpListenerStream;

use crate::auth::TRANSPORT_MESSAGE_CAP;
use crate::auth::tls::server_security;
use crate::config::{Config, ConfigError};
use crate::flush::{self, Flusher};
use crate::forward::{self, Forwarder};
use crate::index::Index;
use crate::ingest::{self, Writer};
use crate::locks::Locks;
use crate::service::{Service, Tier};
use crate::sql;
use crate::wal::Wal;

/// Loads the catalog and registry in force: from the configured files, or
/// (below the top) from the upstream, cached in the data directory, or from
/// that cache when the upstream cannot be reached.
pub async fn reference_data(config: &Config, insecure: bool) -> anyhow::Result<(Catalog, Registry)> {
    let cached_catalog = config.data_dir.join(layout::CATALOG_FILE);
    let cached_registry = config.data_dir.join(layout::REGISTRY_FILE);
    let mut catalog = match &config.catalog {
        Some(p) => Some(Catalog::load(p).with_context(|| format!("catalog {} (key `catalog`)", p.display()))?),
        None if config.upstream.is_none() => Some(Catalog::builtin()),
        None => None,
    };
    let mut registry = match &config.registry {
        Some(p) => Some(Registry::load(p).with_context(|| format!("registry {} (key `registry`)", p.display()))?),
        None => None,
    };
    if (catalog.is_none() || registry.is_none())
        && let Some(up) = &config.upstream
    {
        match fetch_reference(up, config, insecure).await {
            Ok((c, r)) => {
                tracing::info!(upstream = %up, catalog = %c.version, units = r.len(), "fetched catalog and registry");
                catalog.get_or_insert(c);
                registry.get_or_insert(r);
            }
            Err(e) => tracing::warn!(upstream = %up, "cannot fetch the catalog and registry, using the cache: {e:#}"),
        }
    }
    let catalog = match catalog {
        Some(c) => c,
        None if cached_catalog.exists() => {
            Catalog::load(&cached_catalog).with_context(|| format!("cached catalog {}", cached_catalog.display()))?
        }
        None => bail!(
            "no catalog: the upstream {} cannot be reached and there is no cached {}; start the tier above first",
            config.upstream.as_deref().unwrap_or("-"),
            cached_catalog.display()
        ),
    };
    let registry = match registry {
        Some(r) => r,
        None if cached_registry.exists() => Registry::load(&cached_registry)
            .with_context(|| format!("cached registry {}", cached_registry.display()))?,
        None => bail!(
            "no registry: the upstream {} cannot be reached and there is no cached {}; start the tier above first",
            config.upstream.as_deref().unwrap_or("-"),
            cached_registry.display()
        ),
    };
    match registry.get(&config.unit) {
        None => {
            let why = format!("{:?} is not in the registry ({} units)", config.unit, registry.len());
            return Err(ConfigError::invalid(&config.path, "unit", why).into());
        }
        Some(u) if u.kind.is_reporting() => {
            let why = format!("{:?} is a {}, not a province, city or county", config.unit, u.kind);
            return Err(ConfigError::invalid(&config.path, "unit", why).into());
        }
        Some(_) => {}
    }
    Ok((catalog, registry))
}

async fn fetch_reference(upstream: &str, config: &Config, insecure: bool) -> anyhow::Result<(Catalog, Registry)> {
    let unit = config.unit.as_str();
    let ep = crate::auth::tls::client_endpoint(upstream, &config.tls, insecure)?
        .connect_timeout(Duration::from_secs(3))
        .timeout(Duration::from_secs(30));
    let mut client = DirectoryServiceClient::new(ep.connect().await?).max_decoding_message_size(256 << 20);
    fn with_sender<T>(unit: &str, message: T) -> tonic::Request<T> {
        let mut r = tonic::Request::new(message);
        r.metadata_mut().insert(SENDER_METADATA_KEY, unit.parse().expect("a unit code is ASCII digits"));
        r
    }
    let doc = client.get_catalog(with_sender(unit, GetCatalogRequest::default())).await?.into_inner();
    let catalog = Catalog::from_toml(&doc.toml).context("the catalog served by the upstream")?;
    let reg = client.get_registry(with_sender(unit, GetRegistryRequest { root: unit.to_string() })).await?.into_inner();
    let registry = Registry::from_csv_bytes(reg.csv.as_bytes()).context("the registry served by the upstream")?;
    Ok((catalog, registry))
}

/// Rebuilds the index from the Parquet store; returns it.
fn index_from_store(data_dir: &Path, catalog: &Catalog) -> anyhow::Result<Index> {
    let mut index = Index::new();
    for (_, _, path) in sifa_store::list_files(data_dir)? {
        for row in sifa_store::read_file(&path, catalog)? {
            index.insert(&row.report, row.period, row.received_at_ms);
        }
    }
    Ok(index)
}

/// Runs a tier until SIGTERM or Ctrl-C. `insecure`: plaintext on loopback (`--insecure`).
pub async fn run(config: Config, insecure: bool) -> anyhow::Result<()> {
    // Security first: a tier that cannot secure its listener does not start.
    let security = server_security(&config.tls, insecure, config.listen)
        .with_context(|| format!("aggregator config {}: [tls]", config.path.display()))?;
    let data_dir = config.data_dir.clone();
    std::fs::create_dir_all(layout::state_dir(&data_dir))
        .with_context(|| format!("cannot create the data directory {}", data_dir.display()))?;
    let (catalog, registry) = reference_data(&config, insecure).await?;
    let meta = StoreMeta {
        root_unit: config.unit.to_string(),
        deadline_day: config.deadline_day,
        catalog_version: catalog.version.clone(),
    };
    sifa_store::write_reference_files(&data_dir, &meta, &catalog, &registry)?;

    // Recovery: the store, then the log on top of it.
    flush::recover_compaction(&data_dir)?;
    let t0 = std::time::Instant::now();
    let mut index = index_from_store(&data_dir, &catalog)?;
    let in_parquet = index.len();
    let (wal, recovered) = Wal::open(&layout::wal_dir(&data_dir))?;
    let last_lsn = wal.next_lsn() - 1;
    let mut unflushed = Vec::new();
    for (lsn, rec) in recovered.records {
        let Some(report) = rec.report.as_ref() else { continue };
        let Ok(period) = report.period.parse::<Period>() else { continue };
        let received = rec.provenance.as_ref().map(|p| p.received_at_ms).unwrap_or(0);
        // A record whose key is already in Parquet was flushed before the log was trimmed.
        if index.insert_digest(report, period, content_digest(report), received) {
            unflushed.push((lsn, rec));
        }
    }
    let flushed_lsn = unflushed.first().map(|(l, _)| l - 1).unwrap_or(last_lsn);
    tracing::info!(
        unit = %config.unit, in_parquet, in_log_only = unflushed.len(), last_lsn,
        dropped_tail = recovered.dropped_tail.is_some(), ms = t0.elapsed().as_millis() as u64,
        "recovered the store"
    );

    let catalog = Arc::new(catalog);
    let registry = Arc::new(registry);
    let index = Arc::new(Mutex::new(index));
    let locks = Arc::new(Mutex::new(Locks::open(&layout::state_dir(&data_dir), registry.clone())?));
    let unflushed = Arc::new(Mutex::new(unflushed));
    let (durable_tx, durable_rx) = watch::channel(last_lsn);
    let flushed = Arc::new(AtomicU64::new(flushed_lsn));
    let forwarded = Arc::new(AtomicU64::new(match config.upstream {
        Some(_) => forward::read_cursor(&data_dir),
        None => u64::MAX,
    }));

    let (ingest, writer_thread) = ingest::start(
        Writer {
            wal,
            index: index.clone(),
            locks: locks.clone(),
            unflushed: unflushed.clone(),
            durable: durable_tx,
            unit: config.unit.to_string(),
        },
        catalog.clone(),
        registry.clone(),
    );
    let stop_flusher = Arc::new(AtomicBool::new(false));
    let flusher = Flusher {
        data_dir: data_dir.clone(),
        catalog: catalog.clone(),
        registry: registry.clone(),
        unflushed: unflushed.clone(),
        next_seq: flush::next_seq(&data_dir)?,
        flushed,
        forwarded: forwarded.clone(),
    };
    let interval = Duration::from_millis(config.flush_interval_ms);
    let stop = stop_flusher.clone();
    let flusher_thread =
        std::thread::Builder::new().name("flusher".into()).spawn(move || flusher.run(interval, stop))?;

    let (stop_tx, stop_rx) = watch::channel(false);
    let forwarder = config.upstream.clone().map(|upstream| {
        let f = Forwarder {
            upstream,
            tls: config.tls.clone(),
            insecure,
            unit: config.unit.clone(),
            data_dir: data_dir.clone(),
            durable: durable_rx,
            forwarded,
            locks: locks.clone(),
        };
        tokio::spawn(f.run(stop_rx.clone()))
    });

    let authenticator = Arc::new(security.authenticator);
    let sql = match config.sql_listen {
        None => None,
        Some(listen) => {
            let callers = sql::TierCallers {
                unit: config.unit.clone(),
                registry: registry.clone(),
                authenticator: authenticator.clone(),
            };
            let tail = sql::LogTail { unflushed: unflushed.clone(), registry: registry.clone() };
            Some(sql::start(listen, &data_dir, security.tls.clone(), callers, tail, stop_rx.clone()).await?)
        }
    };
    let tier = Arc::new(Tier {
        unit: config.unit.clone(),
        catalog,
        registry,
        deadline_day: config.deadline_day,
        index,
        locks,
        ingest,
        authenticator,
        rate: config.limits.rate_limiter(),
        limits: config.limits.clone(),
    });
    let service = Service(tier);
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {} (key `listen`)", config.listen))?;
    let addr = listener.local_addr()?;
    sifa_proto::fs::write_atomic(&data_dir, layout::ADDR_FILE, addr.to_string().as_bytes())?;
    tracing::info!(unit = %config.unit, "listening on {addr}");
    let max = TRANSPORT_MESSAGE_CAP;
    let mut server = tonic::transport::Server::builder().tcp_nodelay(true);
    if let Some(tls) = security.tls {
        server = server.tls_config(tls).context("the server's TLS configuration")?;
    }
    server
        .add_service(ReportServiceServer::new(service.clone()).max_decoding_message_size(max))
        .add_service(DirectoryServiceServer::new(service.clone()).max_decoding_message_size(max))
        .add_service(AdminServiceServer::new(service).max_decoding_message_size(max))
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown_signal())
        .await
        .context("gRPC server")?;

    tracing::info!("stopping: finishing the log and flushing it to Parquet");
    let _ = stop_tx.send(true);
    if let Some(f) = forwarder {
        let _ = tokio::time::timeout(Duration::from_secs(5), f).await;
    }
    if let Some(s) = sql {
        let _ = tokio::time::timeout(Duration::from_secs(5), s).await;
        let _ = std::fs::remove_file(layout::sql_addr_file(&data_dir));
    }
    // The server (and with it every ingest handle) is gone: the writer drains and stops.
    tokio::task::spawn_blocking(move || {
        let _ = writer_thread.join();
        stop_flusher.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = flusher_thread.join();
    })
    .await?;
    let _ = std::fs::remove_file(layout::addr_file(&data_dir));
    tracing::info!(at_ms = now_unix_ms(), "stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
