//! A round (read the books, queue what changed, deliver) and the `run` loop
//! that repeats it on the schedule and retries delivery with backoff.

use std::time::Duration;

use sifa_proto::Period;

use crate::catalog_cache::{self, CatalogSource};
use crate::config::Config;
use crate::outbox::{CollectionRecord, Enqueued, Outbox, OutboxError, list_queue};
use crate::push::{self, Delivery, PushError};
use crate::{compute, drops};

/// What reading the books queued.
#[derive(Debug, Default, Clone)]
pub struct Collected {
    pub catalog_version: String,
    pub catalog_source: Option<CatalogSource>,
    /// "2024-03 rev 2" for each report queued.
    pub queued: Vec<String>,
    pub unchanged: usize,
    pub held: Vec<(String, Vec<String>)>,
    pub problems: Vec<String>,
    pub notes: Vec<String>,
    /// What was read: each file, its worksheet, its rows.
    pub sources: Vec<String>,
    /// What would fall away (see `drops`): when not empty, nothing changed was queued.
    pub drops: Vec<String>,
}

/// Reads the books and queues a new revision of every month whose figures
/// changed, unless figures fall away (see `drops`) and `confirm_drop` is not
/// given. Problems are recorded in the outbox for `status`.
pub async fn collect(
    outbox: &mut Outbox,
    config: &Config,
    fetch_catalog: bool,
    confirm_drop: bool,
) -> anyhow::Result<Collected> {
    let (catalog, source) = if fetch_catalog {
        catalog_cache::refresh(config).await
    } else {
        catalog_cache::cached_or_builtin(&config.outbox_dir)
    };
    let now = sifa_proto::period::now_unix_ms();
    let current = Period::containing_unix_ms(now);
    let mut collection = match compute::collect(config, &catalog, current) {
        Ok(c) => c,
        Err(e) => {
            outbox.record_collection(CollectionRecord {
                at_ms: now,
                catalog_version: catalog.version.clone(),
                error: Some(e.to_string()),
                ..Default::default()
            })?;
            return Err(e.into());
        }
    };
    let mut out =
        Collected { catalog_version: catalog.version.clone(), catalog_source: Some(source), ..Default::default() };
    out.drops = drops::find(outbox.state(), &collection);
    if confirm_drop || out.drops.is_empty() {
        for d in &out.drops {
            tracing::warn!("confirmed: {d}");
        }
        out.drops.clear();
    } else {
        let why = format!("{}: {}; {}", drops::FALL_AWAY, out.drops.join("; "), drops::HOW_TO_CONFIRM);
        for period in drops::held_months(&collection, |r| outbox.would_change(r)) {
            collection.held.entry(period).or_default().push(why.clone());
        }
        collection.reports.clear();
    }
    for report in &collection.reports {
        match outbox.enqueue(report)? {
            Enqueued::Queued(rev) => {
                tracing::info!("queued {} rev {rev}", report.period);
                out.queued.push(format!("{} rev {rev}", report.period));
            }
            Enqueued::Unchanged => out.unchanged += 1,
        }
    }
    if out.drops.is_empty() {
        // Only once what they describe is queued: a failed enqueue must not
        // make the smaller ledger the baseline the next check compares with.
        outbox.set_ledger_rows(&collection.ledger_rows)?;
    }
    out.held = collection.held.iter().map(|(p, why)| (p.to_string(), why.clone())).collect();
    out.problems = collection.problems.iter().map(|p| p.to_string()).collect();
    out.notes = collection.notes.clone();
    out.sources = collection.sources.clone();
    for p in &out.problems {
        tracing::warn!("ledger problem: {p}");
    }
    outbox.record_collection(CollectionRecord {
        at_ms: now,
        catalog_version: catalog.version.clone(),
        problems: out.problems.iter().chain(&out.notes).cloned().collect(),
        held: collection.held.iter().map(|(p, why)| (p.to_string(), why.clone())).collect(),
        queued: out.queued.clone(),
        error: None,
    })?;
    Ok(out)
}

/// What one round did.
#[derive(Debug, Default)]
pub struct Round {
    pub collected: Collected,
    pub delivery: Option<Delivery>,
    /// Why delivery did not finish, when it did not.
    pub delivery_error: Option<String>,
    /// Why the books could not be read (e.g. the mapping names a statistic the
    /// catalog in force does not have); what was queued before is delivered all the same.
    pub books_error: Option<String>,
    pub remaining: usize,
}

/// One round: collect, then deliver the whole queue now (`push --once`);
/// `confirm_drop` queues figures that fall away (`push --once --confirm-drop`).
pub async fn round(config: &Config, confirm_drop: bool) -> anyhow::Result<Round> {
    let mut outbox = Outbox::open(&config.outbox_dir, &config.unit)?;
    let mut r = Round::default();
    match collect(&mut outbox, config, true, confirm_drop).await {
        Ok(c) => r.collected = c,
        Err(e) if e.downcast_ref::<OutboxError>().is_some() => return Err(e),
        Err(e) => r.books_error = Some(format!("{e:#}")),
    }
    match push::deliver(&mut outbox, config).await {
        Ok(d) => r.delivery = Some(d),
        Err(PushError::Outbox(e)) => return Err(e.into()),
        Err(e) => r.delivery_error = Some(e.to_string()),
    }
    r.remaining = list_queue(outbox.dir())?.len();
    Ok(r)
}

/// The daemon: reads the books every `collect_interval_seconds`, delivers
/// whenever something is queued and the backoff allows, until SIGINT/SIGTERM.
pub async fn run(config: &Config) -> anyhow::Result<()> {
    let mut outbox = Outbox::open(&config.outbox_dir, &config.unit)?;
    tracing::info!(
        "sifa-agent for unit {} started: books every {} s, aggregator {}, outbox {}",
        config.unit,
        config.collect_interval_seconds,
        config.aggregator,
        config.outbox_dir.display()
    );
    let mut next_collect_ms = 0i64;
    let mut shutdown = std::pin::pin!(shutdown_signal());
    loop {
        let now = sifa_proto::period::now_unix_ms();
        if now >= next_collect_ms {
            if let Err(e) = collect(&mut outbox, config, true, false).await {
                if e.downcast_ref::<OutboxError>().is_some() {
                    return Err(e);
                }
                tracing::error!("reading the books failed: {e:#}");
            }
            next_collect_ms = now + config.collect_interval_seconds as i64 * 1000;
        }
        let queued = !list_queue(outbox.dir())?.is_empty();
        if queued && sifa_proto::period::now_unix_ms() >= outbox.retry().next_attempt_ms {
            match push::deliver(&mut outbox, config).await {
                Ok(d) if d.accepted + d.duplicate + d.rejected > 0 => tracing::info!(
                    "delivered: {} accepted, {} duplicate, {} rejected, {} still queued",
                    d.accepted,
                    d.duplicate,
                    d.rejected,
                    d.remaining
                ),
                Ok(_) => {}
                Err(PushError::Outbox(e)) => return Err(e.into()),
                Err(_) => {} // logged and backed off by `deliver`
            }
        }
        let now = sifa_proto::period::now_unix_ms();
        let mut wake = next_collect_ms;
        if !list_queue(outbox.dir())?.is_empty() {
            wake = wake.min(outbox.retry().next_attempt_ms.max(now));
        }
        let sleep = Duration::from_millis((wake - now).clamp(50, 3_600_000) as u64);
        tokio::select! {
            _ = tokio::time::sleep(sleep) => {}
            _ = &mut shutdown => {
                tracing::info!("stopping; {} report(s) wait in the outbox", list_queue(outbox.dir())?.len());
                return Ok(());
            }
        }
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
