//! The gRPC services of a tier: ReportService (ingest), DirectoryService
//! (catalog, registry, completeness for the tiers and agents below) and
//! AdminService (period locks and overrides).

use std::pin::Pin;
use std::sync::{Arc, Mutex};

use futures::{FutureExt, Stream, StreamExt};
use sifa_proto::period::now_unix_ms;
use sifa_proto::v1::admin_service_server::AdminService;
use sifa_proto::v1::directory_service_server::DirectoryService;
use sifa_proto::v1::report_service_server::ReportService;
use sifa_proto::v1::{
    Ack, CatalogDocument, CompletenessReport, CompletenessRequest, GetCatalogRequest, GetRegistryRequest, LockRequest,
    LockResponse, OverrideRequest, OverrideResponse, RegistryDocument, SubmitRequest,
};
use sifa_proto::{Catalog, Period, Registry, SENDER_METADATA_KEY};
use tonic::{Request, Response, Status};

use crate::completeness;
use crate::index::Index;
use crate::ingest::{self, Ingest, Refusal};
use crate::locks::{LockError, Locks};

/// Reports acknowledged ahead of a slow one on a stream, at most.
pub const STREAM_WINDOW: usize = 16_384;

/// What the services share.
pub struct Tier {
    pub unit: String,
    pub catalog: Arc<Catalog>,
    pub registry: Arc<Registry>,
    pub deadline_day: u8,
    pub index: Arc<Mutex<Index>>,
    pub locks: Arc<Mutex<Locks>>,
    pub ingest: Ingest,
}

/// The sending unit of a request: until mutual TLS, the `x-sifa-sender`
/// metadata. The one place the sender is read.
pub fn sender_of<T>(req: &Request<T>) -> Result<String, Status> {
    let v = req.metadata().get(SENDER_METADATA_KEY).ok_or_else(|| {
        Status::permission_denied(format!(
            "no {SENDER_METADATA_KEY} metadata: a sender must name its unit (an agent its own code, \
             a forwarding aggregator its unit)"
        ))
    })?;
    let s = v.to_str().map_err(|_| Status::permission_denied(format!("{SENDER_METADATA_KEY} is not ASCII")))?;
    Ok(s.trim().to_string())
}

#[derive(Clone)]
pub struct Service(pub Arc<Tier>);

type AckStream = Pin<Box<dyn Stream<Item = Result<Ack, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl ReportService for Service {
    async fn submit(&self, request: Request<SubmitRequest>) -> Result<Response<Ack>, Status> {
        let sender = sender_of(&request)?;
        let record = request.into_inner();
        let key = SubmitRequest { report: record.report.as_ref().map(|r| key_of(r)), provenance: None };
        let decision = match self.0.ingest.submit(&sender, record) {
            Ok(rx) => rx.await.map_err(|_| ingest::unavailable())?,
            Err(refusal) => Err(refusal),
        };
        match decision {
            Err(Refusal::Rejected(r)) => Err(r.to_status(key.report.as_ref().expect("checked"))),
            other => ingest::ack(&key, other).map(Response::new),
        }
    }

    type SubmitStreamStream = AckStream;

    async fn submit_stream(
        &self,
        request: Request<tonic::Streaming<SubmitRequest>>,
    ) -> Result<Response<AckStream>, Status> {
        let sender = sender_of(&request)?;
        let ingest = self.0.ingest.clone();
        // Each request is validated and queued in stream order as it arrives;
        // its acknowledgement comes when it is durable. Acks go out in request
        // order, with many reports in flight so they share fsyncs.
        let acks = request
            .into_inner()
            .map(move |item| {
                let fut: Pin<Box<dyn Future<Output = Result<Ack, Status>> + Send>> = match item {
                    Err(status) => Box::pin(async move { Err(status) }),
                    Ok(record) => {
                        let key = SubmitRequest { report: record.report.as_ref().map(key_of), provenance: None };
                        match ingest.submit(&sender, record) {
                            Err(refusal) => Box::pin(async move { ingest::ack(&key, Err(refusal)) }),
                            Ok(rx) => Box::pin(rx.map(move |d| match d {
                                Ok(d) => ingest::ack(&key, d),
                                Err(_) => Err(ingest::unavailable()),
                            })),
                        }
                    }
                };
                fut
            })
            .buffered(STREAM_WINDOW);
        Ok(Response::new(Box::pin(acks)))
    }
}

/// A report's identity without its values (what an Ack needs).
fn key_of(r: &sifa_proto::v1::Report) -> sifa_proto::v1::Report {
    sifa_proto::v1::Report {
        unit_code: r.unit_code.clone(),
        period: r.period.clone(),
        revision: r.revision,
        ..Default::default()
    }
}

#[tonic::async_trait]
impl DirectoryService for Service {
    async fn get_catalog(&self, request: Request<GetCatalogRequest>) -> Result<Response<CatalogDocument>, Status> {
        let c = &self.0.catalog;
        let toml = if request.get_ref().cached_version == c.version { String::new() } else { c.source().to_string() };
        Ok(Response::new(CatalogDocument { version: c.version.clone(), toml }))
    }

    async fn get_registry(&self, request: Request<GetRegistryRequest>) -> Result<Response<RegistryDocument>, Status> {
        let root = self.root(&request.get_ref().root)?;
        Ok(Response::new(RegistryDocument { csv: self.0.registry.restricted_to(&root).to_csv() }))
    }

    async fn get_completeness(
        &self,
        request: Request<CompletenessRequest>,
    ) -> Result<Response<CompletenessReport>, Status> {
        let req = request.into_inner();
        let root = self.root(&req.root)?;
        let period: Period = req.period.parse().map_err(|e| Status::invalid_argument(format!("{e}")))?;
        let index = self.0.index.lock().expect("index");
        Ok(Response::new(completeness::completeness(&self.0.registry, &index, &root, period, self.0.deadline_day)))
    }
}

impl Service {
    /// A requested subtree root: empty means this tier's; otherwise it must lie in it.
    fn root(&self, root: &str) -> Result<String, Status> {
        let root = root.trim();
        if root.is_empty() {
            return Ok(self.0.unit.clone());
        }
        if self.0.registry.get(root).is_none() {
            return Err(Status::not_found(format!("unit {root} is not in the registry")));
        }
        if !self.0.registry.is_within(root, &self.0.unit) {
            return Err(Status::permission_denied(format!(
                "unit {root} is not under this tier's unit {}",
                self.0.unit
            )));
        }
        Ok(root.to_string())
    }
}

fn lock_status(e: LockError) -> Status {
    match e {
        LockError::Request(m) => Status::invalid_argument(m),
        other => Status::internal(other.to_string()),
    }
}

#[tonic::async_trait]
impl AdminService for Service {
    async fn lock_period(&self, request: Request<LockRequest>) -> Result<Response<LockResponse>, Status> {
        let req = request.into_inner();
        let locked = self
            .0
            .locks
            .lock()
            .expect("locks")
            .lock(req.period.trim(), &req.reason, now_unix_ms())
            .map_err(lock_status)?;
        tracing::info!(period = %req.period, reason = %req.reason, "period locked");
        Ok(Response::new(LockResponse { locked }))
    }

    async fn grant_override(&self, request: Request<OverrideRequest>) -> Result<Response<OverrideResponse>, Status> {
        let req = request.into_inner();
        let period: Period = req.period.trim().parse().map_err(|e| Status::invalid_argument(format!("{e}")))?;
        let unit = req.unit_code.trim();
        match self.0.registry.get(unit) {
            Some(u) if u.kind.is_reporting() && self.0.registry.is_within(unit, &self.0.unit) => {}
            _ => {
                return Err(Status::invalid_argument(format!(
                    "unit {unit} is not a reporting unit of this tier's subtree ({})",
                    self.0.unit
                )));
            }
        }
        self.0
            .locks
            .lock()
            .expect("locks")
            .grant_override(unit, period, &req.reason, now_unix_ms())
            .map_err(lock_status)?;
        tracing::info!(unit, %period, reason = %req.reason, "override granted");
        Ok(Response::new(OverrideResponse {}))
    }
}
