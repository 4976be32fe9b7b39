//! Running a tier: reference data, recovery of the store and the log, the
//! log writer, the flusher, the forwarder and the gRPC server, and a graceful
//! stop on SIGTERM or Ctrl-C.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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
use crate::auth::tls::{server_security, tls_incoming};
use crate::backlog::ForwardBacklog;
use crate::config::{Config, ConfigError};
use crate::disk::Reserve;
use crate::flush::{self, Flusher};
use crate::forward::{self, Forwarder};
use crate::http::HttpState;
use crate::http::access::Access;
use crate::http::metrics::Metrics;
use crate::http::snapshot::Sources;
use crate::index::Index;
use crate::ingest::{self, Writer};
use crate::key_files;
use crate::locks::Locks;
use crate::rejections::{RECENT_REJECTIONS, RecentRejections};
use crate::report_files::ReportFiles;
use crate::service::{Service, Tier};
use crate::sql;
use crate::wal::Wal;

/// The longest start-up waits for the tier above's catalog and registry before it uses the cache
/// (a silent link must not keep a tier from starting).
const FETCH_BOUND: Duration = Duration::from_secs(15);

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
        let bounded = tokio::time::timeout(FETCH_BOUND, fetch_reference(up, config, insecure));
        match bounded.await.unwrap_or_else(|_| Err(anyhow::anyhow!("no answer within {} s", FETCH_BOUND.as_secs()))) {
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
            let why = format!("{:?} is a {}, not a nation, province, city or county", config.unit, u.kind);
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

/// Rebuilds the index from the Parquet store: from each file's key file, or from the file itself
/// when its key file cannot be used (then written again). Returns it and how many Parquet files had
/// to be read.
fn index_from_store(data_dir: &Path, files: &ReportFiles, catalog: &Catalog) -> anyhow::Result<(Index, usize)> {
    let mut keys = Vec::new();
    let listed = files.list()?;
    let mut read = 0;
    for file in &listed {
        if key_files::load(data_dir, file.seq, file.len, &mut keys).is_some() {
            continue;
        }
        let rows = files.read(file, catalog)?;
        keys.extend(key_files::keys_of(&rows));
        key_files::write_for(data_dir, file.seq, file.len, &rows);
        read += 1;
    }
    key_files::remove_orphans(data_dir, &listed.iter().map(|f| f.seq).collect());
    Ok((Index::with_stored(keys), read))
}

/// Loading the index of what a tier holds: the Parquet store (through the key files), then the
/// records of the log on top of it. Runs on the log writer's thread before its first report.
struct IndexLoad {
    data_dir: std::path::PathBuf,
    files: Arc<ReportFiles>,
    catalog: Arc<Catalog>,
    index: Arc<Mutex<Index>>,
    unflushed: ingest::Unflushed,
    flushed: Arc<AtomicU64>,
    ready: Arc<AtomicBool>,
    log: crate::wal::Recovered,
    last_lsn: crate::wal::Lsn,
}

impl IndexLoad {
    fn run(self) {
        let t0 = std::time::Instant::now();
        let (mut index, parquet_files_read) = match index_from_store(&self.data_dir, &self.files, &self.catalog) {
            Ok(loaded) => loaded,
            Err(e) => {
                tracing::error!("cannot load the index of the store: {e:#}; stopping");
                std::process::exit(70);
            }
        };
        let in_parquet = index.len();
        let mut unflushed = Vec::new();
        for (lsn, rec) in self.log.records {
            let Some(report) = rec.report.as_ref() else { continue };
            let Ok(period) = report.period.parse::<Period>() else { continue };
            let received = rec.provenance.as_ref().map(|p| p.received_at_ms).unwrap_or(0);
            // A record whose key is already in Parquet was flushed before the log was trimmed.
            if index.insert_digest(report, period, content_digest(report), received) {
                unflushed.push((lsn, std::sync::Arc::new(rec)));
            }
        }
        let flushed_lsn = unflushed.first().map(|(l, _)| l - 1).unwrap_or(self.last_lsn);
        tracing::info!(
            in_parquet,
            parquet_files_read,
            in_log_only = unflushed.len(),
            last_lsn = self.last_lsn,
            dropped_tail = self.log.dropped_tail.is_some(),
            ms = t0.elapsed().as_millis() as u64,
            "recovered the store"
        );
        *self.index.lock().expect("index") = index;
        *self.unflushed.lock().expect("unflushed") = unflushed;
        self.flushed.store(flushed_lsn, std::sync::atomic::Ordering::SeqCst);
        self.ready.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Runs a tier until SIGTERM or Ctrl-C. `insecure`: plaintext on loopback (`--insecure`).
pub async fn run(config: Config, insecure: bool) -> anyhow::Result<()> {
    // Security first: a tier that cannot secure its listener does not start.
    let security = server_security(&config.tls, insecure, config.listen)
        .with_context(|| format!("aggregator config {}: [tls]", config.path.display()))?;
    let http_access = match config.http {
        Some(side) => Some((
            side.listen,
            Access::for_listen(side.listen, side.https, &config.tls)
                .with_context(|| format!("aggregator config {}", config.path.display()))?,
        )),
        None => None,
    };
    let started_ms = now_unix_ms();
    let metrics = Arc::new(Metrics::new(config.unit.as_str()));
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
    let files = Arc::new(match &config.store {
        None => ReportFiles::Directory(data_dir.clone()),
        Some(url) => {
            let bucket = sifa_queries::remote::Bucket::connect(url)
                .with_context(|| format!("aggregator config {}: key `store`", config.path.display()))?;
            ReportFiles::in_bucket(bucket, data_dir.clone(), tokio::runtime::Handle::current())
        }
    });

    // Recovery: the store, then the log on top of it.
    match sifa_store::remove_interrupted_writes(&data_dir) {
        Ok(removed) if removed.is_empty() => {}
        Ok(removed) => tracing::info!(files = ?removed, "removed the temporary files of writes a crash interrupted"),
        Err(e) => tracing::warn!("cannot remove the temporary files of interrupted writes: {e}"),
    }
    let next_seq = {
        let (files, data_dir) = (files.clone(), data_dir.clone());
        tokio::task::spawn_blocking(move || -> anyhow::Result<u64> {
            let moved = files.take_in_directory_files()?;
            if moved > 0 {
                tracing::info!(files = moved, "moved the report files of the data directory into the store's bucket");
            }
            files.publish_small_files()?;
            flush::recover_compaction(&data_dir, &files)?;
            Ok(flush::next_seq(&files)?)
        })
        .await?
        .context("cannot open the store")?
    };
    // The log is read here (it holds only what is not yet both in Parquet and forwarded); the index
    // of the Parquet store is loaded by the log writer before it takes the first report
    // (`IndexLoad`), while the port already answers: start-up does not grow with the store.
    let (wal, recovered) = Wal::open(&layout::wal_dir(&data_dir))?;
    let last_lsn = wal.next_lsn() - 1;
    // What waits to be forwarded since before this start: its age from its first receipt.
    let backlog = config.upstream.as_ref().map(|_| {
        let backlog = Arc::new(ForwardBacklog::new());
        let cursor = forward::read_cursor(&data_dir);
        let waiting = recovered.records.iter().find(|(lsn, _)| *lsn > cursor);
        if let Some(received) = waiting.and_then(|(_, r)| r.provenance.as_ref()).map(|p| p.received_at_ms) {
            backlog.durable(last_lsn, received);
        }
        backlog
    });

    let catalog = Arc::new(catalog);
    let registry = Arc::new(registry);
    let index = Arc::new(Mutex::new(Index::new()));
    let index_ready = Arc::new(AtomicBool::new(false));
    let locks = Arc::new(Mutex::new(Locks::open(&layout::state_dir(&data_dir), registry.clone())?));
    let unflushed = Arc::new(Mutex::new(Vec::new()));
    let (durable_tx, durable_rx) = watch::channel(last_lsn);
    // Nothing counts as flushed (so nothing is trimmed) until the index load says what is.
    let flushed = Arc::new(AtomicU64::new(0));
    let load = IndexLoad {
        data_dir: data_dir.clone(),
        files: files.clone(),
        catalog: catalog.clone(),
        index: index.clone(),
        unflushed: unflushed.clone(),
        flushed: flushed.clone(),
        ready: index_ready.clone(),
        log: recovered,
        last_lsn,
    };
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
            reserve: Reserve::new(&data_dir, &config.unit, &config.disk),
            flushed: flushed.clone(),
            forwarded: forwarded.clone(),
            metrics: metrics.clone(),
            backlog: backlog.clone(),
        },
        catalog.clone(),
        registry.clone(),
        move || load.run(),
    );
    let stop_flusher = Arc::new(AtomicBool::new(false));
    let flusher = Flusher {
        data_dir: data_dir.clone(),
        files: files.clone(),
        catalog: catalog.clone(),
        registry: registry.clone(),
        unflushed: unflushed.clone(),
        next_seq,
        flushed,
        forwarded: forwarded.clone(),
        ready: index_ready.clone(),
        metrics: metrics.clone(),
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
            durable: durable_rx.clone(),
            forwarded: forwarded.clone(),
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
            let m = metrics.clone();
            let failed = move |reason| m.tls_handshake_failed("sql", reason);
            let store = match files.as_ref() {
                ReportFiles::Directory(_) => sifa_queries::Store::open(&data_dir),
                ReportFiles::Bucket(b) => sifa_queries::Store::open_in_bucket(&data_dir, b.bucket.clone()).await,
            };
            let store = store.context("the Flight SQL endpoint cannot open the store")?;
            Some(
                sql::start(listen, &data_dir, store, security.tls.clone(), failed, callers, tail, stop_rx.clone())
                    .await?,
            )
        }
    };
    let tier = Arc::new(Tier {
        unit: config.unit.clone(),
        catalog,
        registry,
        deadline_day: config.deadline_day,
        index,
        index_ready,
        locks,
        ingest,
        authenticator,
        rate: config.limits.rate_limiter(),
        limits: config.limits.clone(),
        metrics: metrics.clone(),
        rejections: Arc::new(RecentRejections::new(RECENT_REJECTIONS, started_ms)),
    });
    let http = match http_access {
        None => None,
        Some((listen, access)) => {
            let state = Arc::new(HttpState {
                tier: Arc::downgrade(&tier),
                sources: Sources {
                    data_dir: data_dir.clone(),
                    metrics: metrics.clone(),
                    unflushed,
                    durable: durable_rx,
                    forwarding: backlog.map(|b| (forwarded, b)),
                    disk_reserve_bytes: config.disk.reserve_bytes(),
                    started_ms,
                },
                access,
                accepting: AtomicBool::new(true),
            });
            let (addr, server) = crate::http::bind(listen, state.clone())
                .await
                .with_context(|| format!("cannot listen on {listen} (key `http.listen`)"))?;
            sifa_proto::fs::write_atomic(&data_dir, layout::HTTP_ADDR_FILE, addr.to_string().as_bytes())?;
            tracing::info!("status page, metrics and health on {}://{addr}/", state.access.scheme());
            Some((state, tokio::spawn(server)))
        }
    };
    let service = Service(tier);
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {} (key `listen`)", config.listen))?;
    let addr = listener.local_addr()?;
    if let Err(e) = sifa_proto::fs::write_atomic(&data_dir, layout::ADDR_FILE, addr.to_string().as_bytes()) {
        // A full disk must not keep a tier from serving what it holds.
        tracing::error!(
            "{e}: `sifa aggregator status` and the other commands will not find this tier until it \
             restarts with space on the disk"
        );
    }
    tracing::info!(unit = %config.unit, "listening on {addr}");
    let max = TRANSPORT_MESSAGE_CAP;
    let router = tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .add_service(ReportServiceServer::new(service.clone()).max_decoding_message_size(max))
        .add_service(DirectoryServiceServer::new(service.clone()).max_decoding_message_size(max))
        .add_service(AdminServiceServer::new(service).max_decoding_message_size(max));
    let stopping = async {
        shutdown_signal().await;
        if let Some((state, _)) = &http {
            state.accepting.store(false, Ordering::SeqCst);
        }
    };
    match security.tls {
        Some(acceptor) => {
            let incoming = tls_incoming(listener, acceptor, move |reason| metrics.tls_handshake_failed("grpc", reason));
            router.serve_with_incoming_shutdown(incoming, stopping).await
        }
        None => router.serve_with_incoming_shutdown(TcpListenerStream::new(listener), stopping).await,
    }
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
    if let Some((_, server)) = http {
        server.abort();
        let _ = std::fs::remove_file(layout::http_addr_file(&data_dir));
    }
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
