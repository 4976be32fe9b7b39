//! The gRPC services of a tier: ReportService (ingest), DirectoryService
//! (catalog, registry, completeness for the tiers and agents below) and
//! AdminService (period locks, overrides and approvals).

use std::pin::Pin;
use std::sync::{Arc, Mutex};

use futures::{FutureExt, Stream, StreamExt};
use prost::Message;
use sifa_proto::period::now_unix_ms;
use sifa_proto::v1::admin_service_server::AdminService;
use sifa_proto::v1::directory_service_server::DirectoryService;
use sifa_proto::v1::report_service_server::ReportService;
use sifa_proto::v1::{
    Ack, Approval, ApproveRequest, ApproveResponse, CatalogDocument, CompletenessReport, CompletenessRequest,
    GetCatalogRequest, GetRegistryRequest, LockRequest, LockResponse, OverrideRequest, OverrideResponse,
    RegistryDocument, Report, SubmitRequest, UnapproveRequest, UnapproveResponse,
};
use sifa_proto::{Catalog, Period, Registry, UnitCode};
use tonic::{Request, Response, Status};

use crate::auth::{self, Authenticator, Denied, Identity, Limits, OverLimit, RateLimiter, Role};
use sifa_proto::validate::check_unit;
use sifa_proto::{Rejection, RejectionCode};

use crate::completeness;
use crate::http::metrics::{Metrics, Outcome};
use crate::in_order::in_order;
use crate::index::Index;
use crate::ingest::{self, Ingest, Refusal};
use crate::locks::Locks;
use crate::rejections::{RecentRejections, Rejected};
use crate::status::{self, Error};

/// Reports acknowledged ahead of a slow one on a stream, at most.
pub const STREAM_WINDOW: usize = 16_384;

/// What the services share.
pub struct Tier {
    pub unit: UnitCode,
    pub catalog: Arc<Catalog>,
    pub registry: Arc<Registry>,
    pub deadline_day: u8,
    pub index: Arc<Mutex<Index>>,
    /// Set once the index is loaded at start; until then completeness is not answered.
    pub index_ready: Arc<std::sync::atomic::AtomicBool>,
    pub locks: Arc<Mutex<Locks>>,
    pub ingest: Ingest,
    /// Who is calling: the client certificate (or, on loopback in insecure mode, the caller's word).
    pub authenticator: Arc<Authenticator>,
    pub limits: Limits,
    /// Reports per second per office identity.
    pub rate: RateLimiter,
    /// What `/metrics` counts.
    pub metrics: Arc<Metrics>,
    /// The newest rejections, for the status page.
    pub rejections: Arc<RecentRejections>,
}

impl Tier {
    /// The caller of a request (UNAUTHENTICATED if it cannot be told).
    fn identify<T>(&self, request: &Request<T>) -> Result<Identity, Denied> {
        self.authenticator.identify(request, &self.registry)
    }

    /// Whether the report and its provenance are `id`'s to send to this tier (auth.rs). A refusal is
    /// the report's rejection (rule `not_authorized`): on a stream, an Ack, and the stream goes on.
    /// A unit the registry does not have, that is no reporting unit or lies outside this tier is
    /// refused as such first (`unknown_unit`, `not_reporting_unit`, `outside_subtree`), whoever sends
    /// it. A request without a report is left to ingest, which rejects it (rule `no_report`).
    fn authorize(&self, id: &Identity, record: &SubmitRequest) -> Result<(), Rejection> {
        let Some(report) = record.report.as_ref() else { return Ok(()) };
        check_unit(report, &self.registry, &self.unit)?;
        let first = record.provenance.as_ref().map_or("", |p| p.first_accepted_by.as_str());
        auth::authorize_submit(id, &report.unit_code, &self.unit, &self.registry)
            .and_then(|()| auth::authorize_provenance(id, first, &report.unit_code, &self.registry))
            .map_err(|d| Rejection::single(RejectionCode::PermissionDenied, "not_authorized", d.to_string()))
    }

    /// Whether `id` may send this message now: within the size limit and, for an office, its rate.
    /// A refusal is RESOURCE_EXHAUSTED for the call (it ends a stream: retry later).
    fn within_limits(&self, id: &Identity, record: &SubmitRequest) -> Result<(), OverLimit> {
        let size = self.limits.check_message_size(id, record.encoded_len());
        self.count_limit(size, "message_size")?;
        // Forwarding tiers send backlogs of thousands at once; the rate limit is for offices.
        if id.role == Role::Office {
            self.count_limit(self.rate.check(id), "rate")?;
        }
        Ok(())
    }

    /// Counts a refusal by the `[limits]` gauge `limit`.
    fn count_limit(&self, checked: Result<(), OverLimit>, limit: &str) -> Result<(), OverLimit> {
        checked.inspect_err(|_| self.metrics.over_limit(limit))
    }

    /// Counts what became of a report from `id` (`key`: its identity, [`key_of`]) and keeps a
    /// rejection for the page.
    fn answered(&self, id: &Identity, key: &Report, decision: &ingest::Decision) {
        let outcome = match decision {
            Ok(ingest::Stored::Accepted) => Outcome::Accepted,
            Ok(ingest::Stored::Duplicate) => Outcome::Duplicate,
            Err(Refusal::Unavailable(_) | Refusal::DiskFull(_)) => Outcome::Unavailable,
            Err(Refusal::Rejected(r)) => {
                let first = r.problems.first();
                let rule = first.map_or("rejected", |p| p.rule.as_str());
                self.rejections.record(Rejected {
                    at_ms: now_unix_ms(),
                    unit: key.unit_code.clone(),
                    period: key.period.clone(),
                    revision: key.revision,
                    sender: id.to_string(),
                    rule: rule.to_string(),
                    message: r.problems.iter().map(|p| p.message.as_str()).collect::<Vec<_>>().join("; "),
                });
                Outcome::Rejected(rule)
            }
        };
        self.metrics.report_answered(id.role.as_str(), outcome);
    }
}

#[derive(Clone)]
pub struct Service(pub Arc<Tier>);

type AckStream = Pin<Box<dyn Stream<Item = Result<Ack, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl ReportService for Service {
    async fn submit(&self, request: Request<SubmitRequest>) -> Result<Response<Ack>, Status> {
        let id = self.0.identify(&request)?;
        let record = request.into_inner();
        self.0.within_limits(&id, &record)?;
        let Some(report) = record.report.as_ref() else {
            return Err(Error::BadRequest(
                "the request carries no report: set SubmitRequest.report to the report to submit [no_report]".into(),
            )
            .into());
        };
        let key = key_of(report);
        let decision = match self.0.authorize(&id, &record) {
            Err(rejection) => Err(Refusal::Rejected(rejection)),
            Ok(()) => match self.0.ingest.submit(&id.unit, record) {
                Ok(rx) => rx.await.map_err(|_| ingest::unavailable())?,
                Err(refusal) => Err(refusal),
            },
        };
        self.0.answered(&id, &key, &decision);
        match decision {
            Err(refusal @ Refusal::Rejected(_)) => Err(status::refusal_status(refusal, &key)),
            other => ingest::ack(&key, other).map(Response::new),
        }
    }

    type SubmitStreamStream = AckStream;

    async fn submit_stream(
        &self,
        request: Request<tonic::Streaming<SubmitRequest>>,
    ) -> Result<Response<AckStream>, Status> {
        let id = self.0.identify(&request)?;
        let tier = self.0.clone();
        let ingest = self.0.ingest.clone();
        let mut n = 0u64;
        // Set at the first request over a limit: the stream ends there with RESOURCE_EXHAUSTED, and
        // nothing the sender sent after it is stored (its reports are never acknowledged).
        let mut refused = false;
        // Each request is validated and queued in stream order as it arrives;
        // its acknowledgement comes when it is durable. Acks go out in request
        // order, with many reports in flight so they share fsyncs (in_order.rs).
        let acks = request.into_inner().map(move |item| {
            let fut: Pin<Box<dyn Future<Output = Result<Ack, Status>> + Send>> =
                match item {
                    Err(status) => Box::pin(async move { Err(status) }),
                    Ok(_) if refused => Box::pin(async move {
                        Err(Status::resource_exhausted("the stream was refused at an earlier report"))
                    }),
                    Ok(record) => {
                        n += 1;
                        let key = record.report.as_ref().map(key_of).unwrap_or_default();
                        // Over a limit, the stream ends with RESOURCE_EXHAUSTED; a report that is not
                        // the caller's to send is rejected like an invalid one, and the stream goes on.
                        let counted = tier.limits.check_stream_count(&id, n);
                        let limited = tier
                            .count_limit(counted, "stream_count")
                            .and_then(|()| tier.within_limits(&id, &record))
                            .map_err(Status::from);
                        refused = limited.is_err();
                        let submitted = limited.map(|()| {
                            tier.authorize(&id, &record)
                                .map_err(Refusal::Rejected)
                                .and_then(|()| ingest.submit(&id.unit, record))
                        });
                        match submitted {
                            Err(status) => Box::pin(async move { Err(status) }),
                            Ok(submitted) => match submitted {
                                Err(refusal) => {
                                    let refusal = Err(refusal);
                                    tier.answered(&id, &key, &refusal);
                                    Box::pin(async move { ingest::ack(&key, refusal) })
                                }
                                Ok(rx) => {
                                    let (tier, id) = (tier.clone(), id.clone());
                                    Box::pin(rx.map(move |d| match d {
                                        Ok(d) => {
                                            tier.answered(&id, &key, &d);
                                            ingest::ack(&key, d)
                                        }
                                        Err(_) => Err(ingest::unavailable()),
                                    }))
                                }
                            },
                        }
                    }
                };
            fut
        });
        Ok(Response::new(Box::pin(in_order(acks, STREAM_WINDOW))))
    }
}

/// A report's identity without its values (what an Ack needs).
fn key_of(r: &Report) -> Report {
    Report { unit_code: r.unit_code.clone(), period: r.period.clone(), revision: r.revision, ..Default::default() }
}

#[tonic::async_trait]
impl DirectoryService for Service {
    async fn get_catalog(&self, request: Request<GetCatalogRequest>) -> Result<Response<CatalogDocument>, Status> {
        let id = self.0.identify(&request)?;
        auth::authorize_catalog(&id, &self.0.unit, &self.0.registry)?;
        let c = &self.0.catalog;
        let toml = if request.get_ref().cached_version == c.version { String::new() } else { c.source().to_string() };
        Ok(Response::new(CatalogDocument { version: c.version.clone(), toml }))
    }

    async fn get_registry(&self, request: Request<GetRegistryRequest>) -> Result<Response<RegistryDocument>, Status> {
        let id = self.0.identify(&request)?;
        let root = auth::authorize_subtree(&id, &request.get_ref().root, &self.0.unit, &self.0.registry)?;
        let root = self.root(&root)?;
        Ok(Response::new(RegistryDocument { csv: self.0.registry.restricted_to(&root).to_csv() }))
    }

    async fn get_completeness(
        &self,
        request: Request<CompletenessRequest>,
    ) -> Result<Response<CompletenessReport>, Status> {
        let id = self.0.identify(&request)?;
        let req = request.into_inner();
        let root = auth::authorize_subtree(&id, &req.root, &self.0.unit, &self.0.registry)?;
        let root = self.root(&root)?;
        let period: Period = req.period.parse().map_err(|e| Error::BadRequest(format!("{e}")))?;
        if !self.0.index_ready.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(
                Error::Starting("the tier has just started and is loading the index of what it holds".into()).into()
            );
        }
        let mut report = {
            let index = self.0.index.lock().expect("index");
            completeness::completeness(&self.0.registry, &index, &root, period, self.0.deadline_day)
        };
        let locks = self.0.locks.lock().expect("locks");
        report.approvals = locks
            .book()
            .approvals
            .for_period(period, &root, &self.0.registry)
            .into_iter()
            .map(|a| a.to_proto())
            .collect();
        Ok(Response::new(report))
    }
}

impl Service {
    /// Approve and Unapprove: the admin calling, the month, the subtree (empty:
    /// this tier's unit) and the reason, from a request split by `parts`.
    fn approval_target<T>(
        &self,
        request: Request<T>,
        parts: impl FnOnce(T) -> (String, String, String),
    ) -> Result<(Identity, Period, String, String), Status> {
        let id = self.0.identify(&request)?;
        auth::authorize_admin(&id, &self.0.unit, &self.0.registry)?;
        let (period, unit, reason) = parts(request.into_inner());
        let period: Period = period.trim().parse().map_err(|e| Status::invalid_argument(format!("{e}")))?;
        let unit = self.root(&unit)?;
        Ok((id, period, unit, reason))
    }

    /// A requested subtree root: empty means this tier's; otherwise it must lie in it.
    fn root(&self, root: &str) -> Result<String, Status> {
        let root = root.trim();
        if root.is_empty() {
            return Ok(self.0.unit.to_string());
        }
        if self.0.registry.get(root).is_none() {
            return Err(Error::NotFound(format!("unit {root} is not in the registry")).into());
        }
        if !self.0.registry.is_within(root, &self.0.unit) {
            return Err(
                Denied::PermissionDenied(format!("unit {root} is not under this tier's unit {}", self.0.unit)).into()
            );
        }
        Ok(root.to_string())
    }
}

#[tonic::async_trait]
impl AdminService for Service {
    async fn lock_period(&self, request: Request<LockRequest>) -> Result<Response<LockResponse>, Status> {
        let id = self.0.identify(&request)?;
        auth::authorize_admin(&id, &self.0.unit, &self.0.registry)?;
        let req = request.into_inner();
        let locked =
            self.0.locks.lock().expect("locks").lock(req.period.trim(), &req.reason, &id.to_string(), now_unix_ms())?;
        tracing::info!(period = %req.period, reason = %req.reason, by = %id, "period locked");
        Ok(Response::new(LockResponse { locked }))
    }

    async fn grant_override(&self, request: Request<OverrideRequest>) -> Result<Response<OverrideResponse>, Status> {
        let id = self.0.identify(&request)?;
        auth::authorize_admin(&id, &self.0.unit, &self.0.registry)?;
        let req = request.into_inner();
        let period: Period = req.period.trim().parse().map_err(|e| Error::BadRequest(format!("{e}")))?;
        let unit = req.unit_code.trim();
        match self.0.registry.get(unit) {
            Some(u) if u.kind.is_reporting() && self.0.registry.is_within(unit, &self.0.unit) => {}
            _ => {
                return Err(Error::BadRequest(format!(
                    "unit {unit} is not a reporting unit of this tier's subtree ({})",
                    self.0.unit
                ))
                .into());
            }
        }
        self.0.locks.lock().expect("locks").grant_override(
            unit,
            period,
            &req.reason,
            &id.to_string(),
            now_unix_ms(),
        )?;
        tracing::info!(unit, %period, reason = %req.reason, by = %id, "override granted");
        Ok(Response::new(OverrideResponse {}))
    }

    async fn approve(&self, request: Request<ApproveRequest>) -> Result<Response<ApproveResponse>, Status> {
        let (id, period, unit, _) = self.approval_target(request, |r| (r.period, r.unit_code, String::new()))?;
        let mut locks = self.0.locks.lock().expect("locks");
        let record = locks.approve(period, &unit, self.0.unit.as_str(), &id.to_string(), now_unix_ms())?;
        tracing::info!(unit, %period, state = %record.state, by = %id, "approval recorded");
        Ok(Response::new(ApproveResponse { approval: Some(record.to_proto()) }))
    }

    async fn unapprove(&self, request: Request<UnapproveRequest>) -> Result<Response<UnapproveResponse>, Status> {
        let (id, period, unit, reason) = self.approval_target(request, |r| (r.period, r.unit_code, r.reason))?;
        let mut locks = self.0.locks.lock().expect("locks");
        let record = locks.unapprove(period, &unit, &id.to_string(), &reason, now_unix_ms())?;
        tracing::info!(unit, %period, reason, by = %id, "approval withdrawn");
        Ok(Response::new(UnapproveResponse { approval: Some(record.to_proto()) }))
    }

    async fn report_approval(&self, request: Request<Approval>) -> Result<Response<ApproveResponse>, Status> {
        let id = self.0.identify(&request)?;
        let a = request.into_inner();
        auth::authorize_forward(&id, &a.unit_code, &self.0.unit, &self.0.registry)?;
        let unit = self.root(&a.unit_code)?;
        let _: Period = a.period.parse().map_err(|e| Error::BadRequest(format!("{e}")))?;
        let record = self.0.locks.lock().expect("locks").record_from_below(&a, &id.unit)?;
        tracing::info!(unit, period = %a.period, state = %record.state, via = %id.unit, "approval reported from below");
        Ok(Response::new(ApproveResponse { approval: Some(record.to_proto()) }))
    }
}
