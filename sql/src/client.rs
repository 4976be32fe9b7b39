//! `sifa query --connect https://HOST:PORT`: the same statements, rollups and prompt as on a data
//! directory, run by a live tier's Flight SQL endpoint with the caller's certificate.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use arrow_flight::sql::client::FlightSqlServiceClient;
use datafusion::arrow::array::RecordBatch;
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use sifa_proto::config::RelativePaths;
use sifa_proto::tls::{TlsConfig, TlsFiles, TlsMode};
use sifa_queries::cli::{QueryArgs, print_answers, sql_of};
use sifa_queries::query::{self, Answer};
use sifa_queries::repl;
use tonic::transport::Channel;

/// A connection to a tier's Flight SQL endpoint.
#[derive(Debug, Clone)]
pub struct Connection {
    url: String,
    channel: Channel,
}

impl Connection {
    /// Connects to `url` (`https://HOST:PORT`) with mutual TLS: `files` are the province CA and the
    /// caller's certificate and key.
    pub async fn open(url: &str, files: TlsFiles) -> anyhow::Result<Connection> {
        let endpoint = sifa_proto::tls::endpoint(url, &TlsMode::Secure { files, crl: None })?;
        let channel = endpoint.connect().await.with_context(|| {
            format!("cannot connect to {url}: is the tier's [sql] listen this address, and the CA the province's?")
        })?;
        Ok(Connection { url: url.to_string(), channel })
    }

    /// Runs each statement of `sql` and returns each one's result.
    pub async fn run(&self, sql: &str) -> anyhow::Result<Vec<Answer>> {
        let mut answers = Vec::new();
        for statement in query::split(sql)? {
            answers.push(self.run_one(&statement).await?);
        }
        Ok(answers)
    }

    async fn run_one(&self, statement: &str) -> anyhow::Result<Answer> {
        let mut client = FlightSqlServiceClient::new(self.channel.clone());
        let refused = |e: arrow_flight::error::FlightError| anyhow::anyhow!("{}: {}", self.url, status_text(e));
        let info = client.execute(statement.to_string(), None).await.map_err(refused)?;
        let schema = Arc::new(info.clone().try_decode_schema().context("the endpoint's result schema")?);
        let mut batches: Vec<RecordBatch> = Vec::new();
        for endpoint in info.endpoint {
            let ticket = endpoint.ticket.context("the endpoint answered without a ticket")?;
            let stream = client.do_get(ticket).await.map_err(refused)?;
            batches.extend(stream.try_collect::<Vec<_>>().await.map_err(refused)?);
        }
        Ok(Answer { schema, batches })
    }
}

/// The message of a refused call: the server's words, without the transport's wrapping.
fn status_text(e: arrow_flight::error::FlightError) -> String {
    match e {
        arrow_flight::error::FlightError::Tonic(status) => status.message().to_string(),
        other => other.to_string(),
    }
}

/// `sifa query --config FILE`: which tier to ask and with which certificate
/// (config/analyst.example.toml). Relative paths are relative to the file's directory.
#[derive(Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectConfig {
    /// The tier's Flight SQL endpoint, `https://HOST:PORT` (its `[sql] listen`).
    pub connect: Option<String>,
    /// The province CA, the caller's analyst (or admin) certificate and its key.
    #[serde(default)]
    pub tls: TlsConfig,
}

impl RelativePaths for ConnectConfig {
    fn resolve_against(&mut self, base: &Path) {
        self.tls.resolve_against(base);
    }
}

impl ConnectConfig {
    /// The file of `--config` (if any) with `--connect`, `--ca`, `--cert` and `--key` laid over it.
    pub fn from_args(args: &QueryArgs) -> anyhow::Result<ConnectConfig> {
        let mut c = match &args.config {
            Some(path) => sifa_proto::config::load::<ConnectConfig>(path)?,
            None => ConnectConfig::default(),
        };
        if let Some(url) = &args.connect {
            c.connect = Some(url.clone());
        }
        for (flag, slot) in [(&args.ca, &mut c.tls.ca), (&args.cert, &mut c.tls.cert), (&args.key, &mut c.tls.key)] {
            if let Some(path) = flag {
                *slot = Some(path.clone());
            }
        }
        Ok(c)
    }

    /// The endpoint and the TLS files to reach it with, or what is missing.
    pub fn endpoint(self) -> anyhow::Result<(String, TlsFiles)> {
        let url = self.connect.context(
            "which tier? give --connect https://HOST:PORT, or `connect = \"https://HOST:PORT\"` in the --config file",
        )?;
        let missing: Vec<&str> = [("--ca", &self.tls.ca), ("--cert", &self.tls.cert), ("--key", &self.tls.key)]
            .into_iter()
            .filter(|(_, v)| v.is_none())
            .map(|(flag, _)| flag)
            .collect();
        anyhow::ensure!(
            missing.is_empty() && !self.tls.insecure,
            "{url} takes mutual TLS: give {} (the province CA, your analyst certificate from `sifa pki issue --role \
             analyst`, its key), or ca, cert and key in the [tls] table of the --config file",
            if missing.is_empty() { "--ca, --cert and --key".to_string() } else { missing.join(", ") }
        );
        match self.tls.mode(false)? {
            TlsMode::Secure { files, .. } => Ok((url, files)),
            TlsMode::Insecure => unreachable!("checked above: not insecure"),
        }
    }
}

/// Runs `sifa query --connect ...` or `sifa query --config FILE ...`.
pub fn run_query(args: QueryArgs) -> anyhow::Result<()> {
    let (url, files) = ConnectConfig::from_args(&args)?.endpoint()?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start a runtime")?;
    runtime.block_on(async move {
        let connection = Connection::open(&url, files).await?;
        let execute = async |sql: &str| connection.run(sql).await;
        match sql_of(&args.what, None)? {
            Some(sql) => print_answers(args.what.format, &execute(&sql).await?),
            None => {
                repl::run(execute, args.what.format, &format!("sifa query: {url} (live Flight SQL endpoint)")).await
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_example_names_a_tier_and_an_analyst_certificate() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/analyst.example.toml");
        let c: ConnectConfig = sifa_proto::config::load(&path).unwrap();
        let (url, files) = c.endpoint().unwrap();
        assert_eq!(url, "https://province.example.gov.cn:7443");
        assert!(files.cert.ends_with("config/certs/analyst-620982.pem"), "{}", files.cert.display());
        assert!(files.ca.is_absolute(), "relative to the file: {}", files.ca.display());
    }

    #[test]
    fn a_missing_piece_is_named() {
        let c = ConnectConfig { connect: Some("https://h:1".into()), ..ConnectConfig::default() };
        let e = c.endpoint().unwrap_err().to_string();
        assert!(e.contains("--ca, --cert, --key") && e.contains("--role analyst"), "{e}");
        let e = ConnectConfig::default().endpoint().unwrap_err().to_string();
        assert!(e.contains("which tier?"), "{e}");
    }
}
