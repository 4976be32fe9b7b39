//! `sifa query --connect https://HOST:PORT`: the same statements, rollups and prompt as on a data
//! directory, run by a live tier's Flight SQL endpoint with the caller's certificate.

use std::sync::Arc;

use anyhow::Context;
use arrow_flight::sql::client::FlightSqlServiceClient;
use datafusion::arrow::array::RecordBatch;
use futures::TryStreamExt;
use sifa_proto::tls::{TlsFiles, TlsMode};
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

/// Runs `sifa query --connect ...`.
pub fn run_query(args: QueryArgs) -> anyhow::Result<()> {
    let url = args.connect.clone().context("--connect https://HOST:PORT")?;
    let files = TlsFiles {
        ca: args.ca.clone().context("--ca (the province CA's certificate)")?,
        cert: args.cert.clone().context("--cert (your certificate)")?,
        key: args.key.clone().context("--key (your certificate's key)")?,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start a runtime")?;
    runtime.block_on(async move {
        let connection = Connection::open(&url, files).await?;
        let execute = async |sql: &str| connection.run(sql).await;
        match sql_of(&args, None)? {
            Some(sql) => print_answers(args.format, &execute(&sql).await?),
            None => repl::run(execute, args.format, &format!("sifa query: {url} (live Flight SQL endpoint)")).await,
        }
    })
}
