//! `sifa pki`: the province's certificate authority (the code is crate `sifa-pki`).

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use sifa_pki::{self as pki, Ca, IssueRequest};
use sifa_proto::Registry;
use sifa_proto::{Identity, Role, UnitCode};

#[derive(Args)]
pub struct PkiArgs {
    #[command(subcommand)]
    what: What,
}

#[derive(Subcommand)]
enum What {
    /// Create a province's certificate authority in DIR: ca.pem, ca.key (0600) and an empty crl.pem
    Init {
        /// The directory to create the CA in (never overwritten)
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// The CA's name, e.g. "甘肃省司法厅"
        #[arg(long, default_value = "province")]
        name: String,
        /// Days the CA is valid
        #[arg(long, default_value_t = pki::CA_DAYS)]
        days: u32,
    },
    /// Issue a key and certificate naming a unit and its role (urn:sifa:<role>:<unit>)
    Issue {
        /// The CA directory (`sifa pki init --out`)
        #[arg(long, value_name = "DIR")]
        ca: PathBuf,
        /// The unit's registry code, e.g. 620902001
        #[arg(long, value_name = "CODE")]
        unit: UnitCode,
        /// office (a reporting unit), aggregator (a tier: server and forwarder), analyst or admin
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// Where to write <role>-<unit>.pem and <role>-<unit>.key
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Aggregators only: a DNS name or IP address the server is reached at (repeatable);
        /// localhost, 127.0.0.1 and ::1 are always included
        #[arg(long = "name", value_name = "HOST")]
        names: Vec<String>,
        /// Days the certificate is valid
        #[arg(long, default_value_t = pki::CERT_DAYS)]
        days: u32,
        /// Check the unit against this registry CSV (it must exist, and an office must be a reporting unit)
        #[arg(long, value_name = "FILE")]
        registry: Option<PathBuf>,
    },
    /// Revoke a certificate: add it to the CA's revocation list (DIR/crl.pem), which aggregators reload
    Revoke {
        /// The CA directory
        #[arg(long, value_name = "DIR")]
        ca: PathBuf,
        /// The certificate file to revoke
        #[arg(long, value_name = "FILE", required_unless_present = "serial", conflicts_with = "serial")]
        cert: Option<PathBuf>,
        /// Or its serial number (hex, as `issue` printed it and DIR/issued.csv lists it)
        #[arg(long, value_name = "HEX")]
        serial: Option<String>,
        /// Why, recorded in DIR/revoked.toml (key-compromise, superseded, affiliation-changed,
        /// cessation-of-operation set the CRL's reason code)
        #[arg(long, default_value = "")]
        reason: String,
    },
}

fn parse_role(s: &str) -> Result<Role, String> {
    s.parse().map_err(|e: sifa_proto::identity::IdentityError| e.to_string())
}

pub fn run(args: PkiArgs) -> anyhow::Result<()> {
    match args.what {
        What::Init { out, name, days } => {
            let paths = pki::init_ca(&out, &name, days)?;
            println!("created the certificate authority {name:?}:");
            println!("  {}  the CA certificate: every unit's [tls] ca", paths.cert.display());
            println!("  {}  its private key (0600): keep it offline, never copy it to a server", paths.key.display());
            println!("  {}  the revocation list: every aggregator's [tls] crl", paths.crl.display());
            println!(
                "next: sifa pki issue --ca {} --unit CODE --role office|aggregator|analyst|admin --out DIR",
                out.display()
            );
        }
        What::Issue { ca, unit, role, out, names, days, registry } => {
            let identity = Identity::new(role, unit.clone());
            if let Some(path) = registry {
                let registry = Registry::load(&path)?;
                let u = registry
                    .get(&unit)
                    .with_context(|| format!("unit {unit} is not in the registry {}", path.display()))?;
                if !role.fits(u.kind) {
                    bail!(
                        "unit {unit} ({}) is a {}, which cannot hold the role {role}: offices are reporting units, \
                         the other roles are provinces, cities and counties",
                        u.name,
                        u.kind
                    );
                }
            }
            let ca = Ca::load(&ca)?;
            let mut req = IssueRequest::new(identity, days);
            req.names = names;
            let issued = ca.issue(&req)?;
            let (cert, key) = issued.write_to(&out)?;
            println!("issued {} (serial {}), valid {days} days:", issued.identity.uri(), issued.serial);
            println!("  {}  [tls] cert", cert.display());
            println!("  {}  [tls] key (0600)", key.display());
        }
        What::Revoke { ca, cert, serial, reason } => {
            let ca = Ca::load(&ca)?;
            let entry = match (cert, serial) {
                (Some(path), _) => {
                    let pem = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
                    ca.revoke_cert(&pem, &reason).with_context(|| format!("{}", path.display()))?
                }
                (None, Some(serial)) => ca.revoke_serial(&serial, &reason)?,
                (None, None) => bail!("name the certificate to revoke: --cert FILE or --serial HEX"),
            };
            let who = if entry.identity.is_empty() { "(identity not recorded)" } else { entry.identity.as_str() };
            println!("revoked serial {} {who}", entry.serial);
            println!(
                "  {} now lists it; aggregators reading it refuse the certificate at the next call, without restart.",
                ca.paths().crl.display()
            );
            println!("  Copy it to every aggregator whose [tls] crl is a separate copy.");
        }
    }
    Ok(())
}
