//! The one map from what a tier refuses to the gRPC status a caller gets: the
//! code (which tells a sender what to do: `sifa_proto::upstream::classify`) and
//! the message (which tells the person reading it). Every handler's error
//! passes through here; nothing else builds a `tonic::Status` from a domain error.
//!
//! | error | code |
//! |---|---|
//! | [`Denied::Unauthenticated`] (no, foreign, expired or revoked certificate) | UNAUTHENTICATED |
//! | [`Denied::PermissionDenied`] (another unit's report, another subtree, not an admin) | PERMISSION_DENIED |
//! | [`OverLimit`] (message size, reports per stream, rate) | RESOURCE_EXHAUSTED, the rate's wait in `x-sifa-retry-after-ms` |
//! | a report's [`Rejection`] (docs/VALIDATION.md) | its `RejectionCode` (`sifa_proto::validate`): INVALID_ARGUMENT, ALREADY_EXISTS (conflict), PERMISSION_DENIED, FAILED_PRECONDITION (period locked) |
//! | [`Refusal::DiskFull`] (free space below `[disk] reserve_mb`, or a write of the log found the disk full) | RESOURCE_EXHAUSTED naming the tier and the space left, [`disk::RETRY_AFTER`] in `x-sifa-retry-after-ms` |
//! | [`Refusal::Unavailable`] (shutting down, storage trouble) | UNAVAILABLE |
//! | [`Error::Starting`] (a question the tier answers once its index is loaded at start) | UNAVAILABLE |
//! | [`LockError::Request`] (a bad lock or override request) | INVALID_ARGUMENT |
//! | [`LockError`] storing the lock book | INTERNAL |
//! | a bad request field ([`Error::BadRequest`]), a unit not in the registry ([`Error::NotFound`]) | INVALID_ARGUMENT, NOT_FOUND |

use sifa_proto::Rejection;
use sifa_proto::upstream::set_retry_after;
use sifa_proto::v1::Report;
use sifa_proto::validate::{MAX_MESSAGE_BYTES, report_label};
use tonic::Status;

use crate::auth::{Denied, OverLimit};
use crate::disk::{self, DiskLow};
use crate::ingest::Refusal;
use crate::locks::LockError;

/// Everything a tier's services refuse a call for.
#[derive(Debug)]
pub enum Error {
    Denied(Denied),
    OverLimit(OverLimit),
    /// A report refused (the report is named in the message).
    Rejected(Rejection, Report),
    /// This tier cannot take the call now; send it again later.
    Unavailable(String),
    /// No space for new reports on this tier's disk; send them again later.
    DiskFull(DiskLow),
    /// The tier is starting and cannot answer this yet.
    Starting(String),
    Lock(LockError),
    BadRequest(String),
    NotFound(String),
}

/// The status a caller gets for `error`.
pub fn to_status(error: &Error) -> Status {
    match error {
        Error::Denied(Denied::Unauthenticated(m)) => Status::unauthenticated(m.clone()),
        Error::Denied(Denied::PermissionDenied(m)) => Status::permission_denied(m.clone()),
        Error::OverLimit(e) => {
            let mut status = Status::resource_exhausted(e.message.clone());
            if let Some(wait) = e.retry_after {
                set_retry_after(&mut status, wait);
            }
            status
        }
        Error::Rejected(r, report) => {
            // Within MAX_MESSAGE_BYTES whatever the report (docs/VALIDATION.md): a status message is
            // metadata, and a client over its metadata limit would see RESOURCE_EXHAUSTED instead.
            let label = report_label(report);
            let problems = r.summary(MAX_MESSAGE_BYTES.saturating_sub(label.len() + 1));
            Status::new(r.code.grpc(), format!("{label}\n{problems}"))
        }
        Error::Unavailable(why) => Status::unavailable(format!("{why}; send the report again later")),
        Error::Starting(why) => Status::unavailable(format!("{why}; ask again in a few seconds")),
        Error::DiskFull(low) => {
            let mut status = Status::resource_exhausted(low.message());
            set_retry_after(&mut status, disk::RETRY_AFTER);
            status
        }
        Error::Lock(LockError::Request(m)) => Status::invalid_argument(m.clone()),
        Error::Lock(e) => Status::internal(e.to_string()),
        Error::BadRequest(m) => Status::invalid_argument(m.clone()),
        Error::NotFound(m) => Status::not_found(m.clone()),
    }
}

impl From<Error> for Status {
    fn from(e: Error) -> Status {
        to_status(&e)
    }
}

impl From<Denied> for Status {
    fn from(e: Denied) -> Status {
        to_status(&Error::Denied(e))
    }
}

impl From<OverLimit> for Status {
    fn from(e: OverLimit) -> Status {
        to_status(&Error::OverLimit(e))
    }
}

impl From<LockError> for Status {
    fn from(e: LockError) -> Status {
        to_status(&Error::Lock(e))
    }
}

/// The status of a report refused for `refusal` (a unary Submit).
pub fn refusal_status(refusal: Refusal, report: &Report) -> Status {
    match refusal {
        Refusal::Rejected(r) => to_status(&Error::Rejected(r, report.clone())),
        Refusal::Unavailable(why) => to_status(&Error::Unavailable(why)),
        Refusal::DiskFull(low) => to_status(&Error::DiskFull(low)),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use sifa_proto::RejectionCode;
    use tonic::Code;

    use super::*;

    #[test]
    fn each_refusal_has_its_code_and_the_rate_limit_its_wait() {
        let over = OverLimit { message: "rate limit".into(), retry_after: Some(Duration::from_millis(120)) };
        let s = Status::from(over);
        assert_eq!(s.code(), Code::ResourceExhausted);
        assert_eq!(sifa_proto::upstream::retry_after(&s), Some(Duration::from_millis(120)));
        assert_eq!(Status::from(Denied::Unauthenticated("revoked".into())).code(), Code::Unauthenticated);
        assert_eq!(Status::from(Denied::PermissionDenied("no".into())).code(), Code::PermissionDenied);
        let report =
            Report { unit_code: "620982101".into(), period: "2024-03".into(), revision: 2, ..Default::default() };
        let locked = Rejection::single(RejectionCode::FailedPrecondition, "period_locked", "2024-03 is closed".into());
        let s = refusal_status(Refusal::Rejected(locked), &report);
        assert_eq!(s.code(), Code::FailedPrecondition);
        assert_eq!(s.message(), "report 620982101 2024-03 rev 2\n- 2024-03 is closed [period_locked]");
        let s = refusal_status(Refusal::Unavailable("shutting down".into()), &report);
        assert_eq!((s.code(), s.message()), (Code::Unavailable, "shutting down; send the report again later"));
        assert_eq!(Status::from(LockError::Request("bad period".into())).code(), Code::InvalidArgument);
        let low = DiskLow { tier: "620982".into(), free_bytes: 3 << 20, reserve_bytes: 256 << 20 };
        let s = refusal_status(Refusal::DiskFull(low), &report);
        assert_eq!(s.code(), Code::ResourceExhausted);
        assert!(s.message().contains("tier 620982 is full: 3.0 MiB free, below its reserve of 256.0 MiB"), "{s:?}");
        assert_eq!(sifa_proto::upstream::retry_after(&s), Some(disk::RETRY_AFTER));
    }
}
