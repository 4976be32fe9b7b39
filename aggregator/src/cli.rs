//! `sifa aggregator ...`: run a tier, and talk to a running one (status, lock,
//! override, approve, unapprove).

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use sifa_proto::upstream::UpstreamError;
use sifa_proto::v1::admin_service_client::AdminServiceClient;
use sifa_proto::v1::directory_service_client::DirectoryServiceClient;
use sifa_proto::v1::{ApproveRequest, CompletenessRequest, LockRequest, OverrideRequest, UnapproveRequest};
use tonic::transport::Channel;

use crate::completeness;
use crate::config::Config;

/// `sifa aggregator`: without a subcommand, runs the tier the config describes.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = false, subcommand_negates_reqs = true)]
pub struct AggregatorArgs {
    /// The aggregator's config file (see config/aggregator.example.toml)
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Plaintext gRPC instead of mutual TLS: refused unless the address is loopback (tests, a demo)
    #[arg(long, global = true)]
    pub insecure: bool,
    /// status, lock, override, approve, unapprove: the certificate to call with (default: the tier's own
    /// from [tls]); all but status need an admin certificate (`sifa pki issue --role admin`)
    #[arg(long, global = true, value_name = "FILE", requires = "key")]
    pub cert: Option<PathBuf>,
    /// The private key of --cert
    #[arg(long, global = true, value_name = "FILE", requires = "cert")]
    pub key: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<AggregatorCommand>,
}

#[derive(Debug, Subcommand)]
pub enum AggregatorCommand {
    /// Print the completeness and timeliness of a month: expected, received, missing and late units
    Status {
        /// The month, YYYY-MM
        #[arg(long)]
        period: String,
        /// A subtree of this tier to report on (default: the whole tier)
        #[arg(long)]
        root: Option<String>,
    },
    /// Close a year (YYYY) or a month (YYYY-MM): later reports and revisions of it are refused
    Lock {
        #[arg(long)]
        period: String,
        /// Who closes it and why; recorded with the lock
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Admit one more report of a unit into a closed month; recorded with its reason
    Override {
        #[arg(long)]
        unit: String,
        #[arg(long)]
        period: String,
        #[arg(long)]
        reason: String,
    },
    /// Approve a month's figures for a subtree (审核; default: this tier's unit), or accept an approval
    /// from a tier below: the month is closed there to new reports and revisions except by override
    Approve {
        /// The month, YYYY-MM
        #[arg(long)]
        period: String,
        /// The county, city or province whose month is approved (default: this tier's unit)
        #[arg(long)]
        unit: Option<String>,
    },
    /// Withdraw an approval: the month is open again at this tier; recorded with its reason
    Unapprove {
        #[arg(long)]
        period: String,
        #[arg(long)]
        unit: Option<String>,
        #[arg(long)]
        reason: String,
    },
}

/// Runs `sifa aggregator ...`.
pub fn run(args: AggregatorArgs) -> anyhow::Result<()> {
    let path = args.config.context("--config FILE is required (see config/aggregator.example.toml)")?;
    let config = Config::load(&path)?;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    match args.command {
        None => {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
                )
                .with_writer(std::io::stderr)
                // Colours only on a terminal: not in journald or a log file.
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .try_init();
            rt.block_on(crate::server::run(config, args.insecure))
        }
        Some(cmd) => {
            let mut tls = config.tls.clone();
            if let (Some(cert), Some(key)) = (args.cert, args.key) {
                (tls.cert, tls.key) = (Some(cert), Some(key));
            }
            let caller = Caller { tls, insecure: args.insecure };
            rt.block_on(admin(&config, &caller, cmd))
        }
    }
}

/// How the admin commands reach the server: a certificate, or plaintext on loopback.
struct Caller {
    tls: sifa_proto::tls::TlsConfig,
    insecure: bool,
}

/// The address of the running server: DATA_DIR/aggregator.addr, else `listen`; `https://` unless insecure.
pub fn server_url(config: &Config, insecure: bool) -> String {
    let addr = std::fs::read_to_string(config.addr_file())
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| config.listen.to_string());
    let plaintext = insecure || config.tls.insecure;
    format!("{}://{addr}", if plaintext { "http" } else { "https" })
}

async fn channel(config: &Config, caller: &Caller) -> anyhow::Result<Channel> {
    let url = server_url(config, caller.insecure);
    let endpoint = crate::auth::tls::client_endpoint(&url, &caller.tls, caller.insecure)?
        .connect_timeout(std::time::Duration::from_secs(5));
    endpoint.connect().await.map_err(|e| {
        let e = UpstreamError::transport(&url, &e);
        anyhow::anyhow!("{e}; is `sifa aggregator --config {}` running?", config.path.display())
    })
}

/// A refusal by the tier, named like every other sender's (`sifa_proto::upstream`).
fn status_error(config: &Config, insecure: bool) -> impl Fn(tonic::Status) -> anyhow::Error {
    let url = server_url(config, insecure);
    move |s| anyhow::Error::new(UpstreamError::from_status(&url, &s))
}

/// A request as this caller: in plaintext mode it names itself (an admin of this tier), which the
/// server believes only on loopback; with TLS the certificate speaks and this header is ignored.
fn request<T>(config: &Config, message: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(message);
    let uri = crate::auth::Identity::new(crate::auth::Role::Admin, config.unit.clone()).uri();
    if let Ok(v) = uri.parse() {
        r.metadata_mut().insert(crate::auth::IDENTITY_METADATA_KEY, v);
    }
    r
}

async fn admin(config: &Config, caller: &Caller, cmd: AggregatorCommand) -> anyhow::Result<()> {
    let ch = channel(config, caller).await?;
    let status_error = status_error(config, caller.insecure);
    match cmd {
        AggregatorCommand::Status { period, root } => {
            let mut c = DirectoryServiceClient::new(ch);
            let r = c
                .get_completeness(request(
                    config,
                    CompletenessRequest { period, root: root.clone().unwrap_or_default() },
                ))
                .await
                .map_err(&status_error)?
                .into_inner();
            let root = root.unwrap_or_else(|| config.unit.to_string());
            // The registry the tier cached (docs/STORAGE.md): names and counties; without it, codes only.
            let registry = sifa_proto::Registry::load(&config.data_dir.join(sifa_store::layout::REGISTRY_FILE)).ok();
            let name = registry.as_ref().and_then(|r| r.get(&root)).map(|u| u.name.as_str()).unwrap_or_default();
            print!("{}", completeness::render(&r, format!("{root} {name}").trim_end(), registry.as_ref()));
            if config.upstream.is_some() {
                match crate::forward::LinkState::read(&config.data_dir) {
                    Some(link) => println!("{}", link.describe()),
                    None => {
                        println!("上级 Upstream {}: nothing forwarded yet", config.upstream.as_deref().unwrap_or(""))
                    }
                }
            }
        }
        AggregatorCommand::Lock { period, reason } => {
            let r = AdminServiceClient::new(ch)
                .lock_period(request(config, LockRequest { period, reason }))
                .await
                .map_err(&status_error)?
                .into_inner();
            println!("locked {} month(s): {}", r.locked.len(), r.locked.join(" "));
        }
        AggregatorCommand::Override { unit, period, reason } => {
            AdminServiceClient::new(ch)
                .grant_override(request(
                    config,
                    OverrideRequest { unit_code: unit.clone(), period: period.clone(), reason },
                ))
                .await
                .map_err(&status_error)?;
            println!("override granted: the next report of {unit} for {period} is admitted despite the lock");
        }
        AggregatorCommand::Approve { period, unit } => {
            let r = AdminServiceClient::new(ch)
                .approve(request(config, ApproveRequest { period, unit_code: unit.unwrap_or_default() }))
                .await
                .map_err(status_error)?;
            print_approval(r.into_inner().approval)?;
        }
        AggregatorCommand::Unapprove { period, unit, reason } => {
            let r = AdminServiceClient::new(ch)
                .unapprove(request(config, UnapproveRequest { period, unit_code: unit.unwrap_or_default(), reason }))
                .await
                .map_err(status_error)?;
            print_approval(r.into_inner().approval)?;
        }
    }
    Ok(())
}

fn print_approval(a: Option<sifa_proto::v1::Approval>) -> anyhow::Result<()> {
    let a = a.context("the aggregator answered without the approval; is it the same version as this sifa?")?;
    println!("{}", completeness::approval_line(&a));
    Ok(())
}
