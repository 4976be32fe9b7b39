//! The Flight SQL service: statements and prepared statements (queries only), GetSqlInfo,
//! catalogs, schemas, tables and table types, so ADBC, JDBC and ODBC tools can run SQL and browse.
//!
//! A caller's session ([`SqlService::session`]) holds only the caller's subtree; its `report_files`
//! reads the Parquet files and the tier's unflushed reports at every scan. Sessions are kept per
//! subtree and built again when a year or the approvals change. A statement's handle or ticket is
//! its SQL text, so a ticket is planned again when fetched (and sees what was acknowledged meanwhile).

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::flight_service_server::FlightService;
use arrow_flight::sql::metadata::{SqlInfoData, SqlInfoDataBuilder};
use arrow_flight::sql::server::{FlightSqlService, PeekableFlightDataStream};
use arrow_flight::sql::{
    ActionClosePreparedStatementRequest, ActionCreatePreparedStatementRequest, ActionCreatePreparedStatementResult,
    CommandGetCatalogs, CommandGetDbSchemas, CommandGetSqlInfo, CommandGetTableTypes, CommandGetTables,
    CommandPreparedStatementQuery, CommandPreparedStatementUpdate, CommandStatementIngest, CommandStatementQuery,
    CommandStatementUpdate, ProstMessageExt, SqlInfo, SqlSupportedTransaction, TicketStatementQuery,
};
use arrow_flight::{Action, FlightData, FlightDescriptor, FlightEndpoint, FlightInfo, IpcMessage, SchemaAsIpc, Ticket};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::arrow::ipc::writer::IpcWriteOptions;
use datafusion::datasource::TableType;
use datafusion::prelude::SessionContext;
use futures::{Stream, TryStreamExt};
use prost::Message;
use sifa_queries::QueryError;
use sifa_queries::Store;
use sifa_queries::query::{self, Access};
use sifa_queries::session::SessionKey;
use tonic::{Request, Response, Status};

use crate::{Callers, Unflushed};

/// The catalog every table is in (`sifa.store.reports`; `sifa-queries` names it).
pub const CATALOG: &str = "sifa";

type DataStream = Pin<Box<dyn Stream<Item = Result<FlightData, Status>> + Send + 'static>>;

/// The Flight SQL service of one tier.
pub struct SqlService {
    store: Store,
    callers: Arc<dyn Callers>,
    unflushed: Arc<dyn Unflushed>,
    info: SqlInfoData,
    /// The session of each subtree queried, and what it was built for.
    sessions: Mutex<HashMap<String, (SessionKey, SessionContext)>>,
}

impl SqlService {
    /// The service over the tier's opened `store`.
    pub fn new(store: Store, callers: Arc<dyn Callers>, unflushed: Arc<dyn Unflushed>) -> SqlService {
        SqlService { store, callers, unflushed, info: sql_info(), sessions: Mutex::default() }
    }

    /// The caller of `request`'s session: the store and the unflushed reports, its subtree only.
    async fn session<T>(&self, request: &Request<T>) -> Result<SessionContext, Status> {
        let certs = request.peer_certs();
        let scope = self.callers.scope(certs.as_deref().map(Vec::as_slice), request.metadata())?;
        let mut store = self.store.scoped_to(&scope).map_err(|e| Status::permission_denied(e.to_string()))?;
        store.refresh_years().await.map_err(internal)?;
        let key = store.session_key(self.unflushed.as_ref()).map_err(internal)?;
        if let Some((built_for, ctx)) = self.sessions.lock().expect("sessions").get(&scope)
            && *built_for == key
        {
            return Ok(ctx.clone());
        }
        let ctx = store.session_with(Some(self.unflushed.clone())).await.map_err(internal)?;
        self.sessions.lock().expect("sessions").insert(scope, (key, ctx.clone()));
        Ok(ctx)
    }

    /// The schema of the single read-only statement `sql`.
    async fn plan_schema<T>(&self, sql: &str, request: &Request<T>) -> Result<SchemaRef, Status> {
        let ctx = self.session(request).await?;
        let plan = query::plan_one(&ctx, sql, Access::ReadOnly).await.map_err(refused)?;
        Ok(plan.schema().inner().clone())
    }

    /// Runs the single read-only statement `sql` and streams its result.
    async fn run<T>(&self, sql: &str, request: &Request<T>) -> Result<Response<DataStream>, Status> {
        let t0 = std::time::Instant::now();
        let ctx = self.session(request).await?;
        let session_ms = t0.elapsed().as_secs_f64() * 1000.0;
        let answer = query::run_one_with(&ctx, sql, Access::ReadOnly).await.map_err(refused)?;
        tracing::debug!(
            session_ms,
            total_ms = t0.elapsed().as_secs_f64() * 1000.0,
            rows = answer.num_rows(),
            "ran a statement"
        );
        Ok(Response::new(stream(answer.schema, answer.batches)))
    }

    /// The tables of the caller's session, as (schema, table, type, columns).
    async fn tables<T>(&self, request: &Request<T>) -> Result<Vec<(String, String, &'static str, Schema)>, Status> {
        let ctx = self.session(request).await?;
        let catalog = ctx.catalog(CATALOG).ok_or_else(|| Status::internal("the session has no catalog sifa"))?;
        let mut out = Vec::new();
        for schema_name in catalog.schema_names() {
            let Some(schema) = catalog.schema(&schema_name) else { continue };
            let mut names = schema.table_names();
            names.sort();
            for name in names {
                let Some(table) = schema.table(&name).await.map_err(|e| internal(e.to_string()))? else { continue };
                let kind = match table.table_type() {
                    TableType::View => "VIEW",
                    TableType::Base | TableType::Temporary => "TABLE",
                };
                out.push((schema_name.clone(), name, kind, table.schema().as_ref().clone()));
            }
        }
        Ok(out)
    }
}

/// What GetSqlInfo answers: who the server is, and that it is read-only.
fn sql_info() -> SqlInfoData {
    let mut b = SqlInfoDataBuilder::new();
    b.append(SqlInfo::FlightSqlServerName, "sifa");
    b.append(SqlInfo::FlightSqlServerVersion, env!("CARGO_PKG_VERSION"));
    b.append(SqlInfo::FlightSqlServerArrowVersion, "1.3");
    b.append(SqlInfo::FlightSqlServerReadOnly, true);
    b.append(SqlInfo::FlightSqlServerSql, true);
    b.append(SqlInfo::FlightSqlServerSubstrait, false);
    b.append(SqlInfo::FlightSqlServerTransaction, SqlSupportedTransaction::None as i32);
    b.append(SqlInfo::FlightSqlServerCancel, false);
    b.append(SqlInfo::SqlDdlCatalog, false);
    b.append(SqlInfo::SqlDdlSchema, false);
    b.append(SqlInfo::SqlDdlTable, false);
    b.append(SqlInfo::SqlIdentifierQuoteChar, "\"");
    b.append(SqlInfo::SqlAllTablesAreSelectable, true);
    b.build().expect("a fixed list of SqlInfo values")
}

fn internal(e: impl std::fmt::Display) -> Status {
    Status::internal(e.to_string())
}

/// A refused or failed statement as a status: a write is permission denied, anything else the SQL's
/// own (DataFusion's) message.
fn refused(e: QueryError) -> Status {
    match e {
        QueryError::ReadOnly(_) => Status::permission_denied(e.to_string()),
        QueryError::Sql(_) | QueryError::UnknownRollup { .. } | QueryError::RollupParameter { .. } => {
            Status::invalid_argument(e.to_string())
        }
        other => Status::internal(other.to_string()),
    }
}

/// Refuses every call that would write.
fn read_only(what: &str) -> Status {
    Status::permission_denied(format!(
        "{what} is refused: this Flight SQL endpoint is read-only (queries over the tables, views and rollup(...)); \
         reports enter a tier only from its offices' agents"
    ))
}

fn stream(schema: SchemaRef, batches: Vec<RecordBatch>) -> DataStream {
    let batches = futures::stream::iter(batches.into_iter().map(Ok));
    Box::pin(FlightDataEncoderBuilder::new().with_schema(schema).build(batches).map_err(Status::from))
}

fn one_batch<E: std::fmt::Display>(schema: SchemaRef, batch: Result<RecordBatch, E>) -> Result<DataStream, Status> {
    Ok(stream(schema, vec![batch.map_err(internal)?]))
}

/// A FlightInfo whose one endpoint's ticket is `ticket`, its result having `schema`.
fn flight_info(schema: &Schema, ticket: Vec<u8>, descriptor: FlightDescriptor) -> Result<FlightInfo, Status> {
    Ok(FlightInfo::new()
        .try_with_schema(schema)
        .map_err(internal)?
        .with_endpoint(FlightEndpoint::new().with_ticket(Ticket::new(ticket)))
        .with_descriptor(descriptor))
}

fn utf8(handle: &[u8]) -> Result<&str, Status> {
    std::str::from_utf8(handle).map_err(|_| Status::invalid_argument("a statement handle of this server is UTF-8 SQL"))
}

#[tonic::async_trait]
impl FlightSqlService for SqlService {
    type FlightService = SqlService;

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = self.plan_schema(&query.query, &request).await?;
        let ticket = TicketStatementQuery { statement_handle: query.query.into_bytes().into() };
        Ok(Response::new(flight_info(&schema, ticket.as_any().encode_to_vec(), request.into_inner())?))
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.run(utf8(&ticket.statement_handle)?, &request).await
    }

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        request: Request<Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        let schema = self.plan_schema(&query.query, &request).await?;
        let IpcMessage(dataset_schema) =
            SchemaAsIpc::new(&schema, &IpcWriteOptions::default()).try_into().map_err(internal)?;
        Ok(ActionCreatePreparedStatementResult {
            prepared_statement_handle: query.query.into_bytes().into(),
            dataset_schema,
            parameter_schema: Default::default(),
        })
    }

    async fn do_action_close_prepared_statement(
        &self,
        _query: ActionClosePreparedStatementRequest,
        _request: Request<Action>,
    ) -> Result<(), Status> {
        // A handle is its SQL: nothing is held for it.
        Ok(())
    }

    async fn get_flight_info_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = self.plan_schema(utf8(&query.prepared_statement_handle)?, &request).await?;
        Ok(Response::new(flight_info(&schema, query.as_any().encode_to_vec(), request.into_inner())?))
    }

    async fn do_get_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.run(utf8(&query.prepared_statement_handle)?, &request).await
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.session(&request).await?;
        let schema = query.clone().into_builder(&self.info).schema();
        Ok(Response::new(flight_info(&schema, query.as_any().encode_to_vec(), request.into_inner())?))
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.session(&request).await?;
        let builder = query.into_builder(&self.info);
        Ok(Response::new(one_batch(builder.schema(), builder.build())?))
    }

    async fn get_flight_info_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder().schema();
        Ok(Response::new(flight_info(&schema, query.as_any().encode_to_vec(), request.into_inner())?))
    }

    async fn do_get_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.session(&request).await?;
        let mut builder = query.into_builder();
        builder.append(CATALOG);
        Ok(Response::new(one_batch(builder.schema(), builder.build())?))
    }

    async fn get_flight_info_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder().schema();
        Ok(Response::new(flight_info(&schema, query.as_any().encode_to_vec(), request.into_inner())?))
    }

    async fn do_get_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let ctx = self.session(&request).await?;
        let mut builder = query.into_builder();
        for name in ctx.catalog(CATALOG).map(|c| c.schema_names()).unwrap_or_default() {
            builder.append(CATALOG, name);
        }
        Ok(Response::new(one_batch(builder.schema(), builder.build())?))
    }

    async fn get_flight_info_tables(
        &self,
        query: CommandGetTables,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder().schema();
        Ok(Response::new(flight_info(&schema, query.as_any().encode_to_vec(), request.into_inner())?))
    }

    async fn do_get_tables(
        &self,
        query: CommandGetTables,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let tables = self.tables(&request).await?;
        let mut builder = query.into_builder();
        for (schema, name, kind, columns) in tables {
            builder.append(CATALOG, schema, name, kind, &columns).map_err(internal)?;
        }
        Ok(Response::new(one_batch(builder.schema(), builder.build())?))
    }

    async fn get_flight_info_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder().schema();
        Ok(Response::new(flight_info(&schema, query.as_any().encode_to_vec(), request.into_inner())?))
    }

    async fn do_get_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.session(&request).await?;
        let mut builder = query.into_builder();
        builder.append("TABLE");
        builder.append("VIEW");
        Ok(Response::new(one_batch(builder.schema(), builder.build())?))
    }

    async fn do_put_statement_update(
        &self,
        ticket: CommandStatementUpdate,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        self.session(&request).await?;
        let head: String = ticket.query.split_whitespace().take(3).collect::<Vec<_>>().join(" ");
        Err(read_only(&format!("`{head} ...`")))
    }

    async fn do_put_statement_ingest(
        &self,
        _ticket: CommandStatementIngest,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        self.session(&request).await?;
        Err(read_only("bulk ingestion"))
    }

    async fn do_put_prepared_statement_update(
        &self,
        _query: CommandPreparedStatementUpdate,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        self.session(&request).await?;
        Err(read_only("a prepared update"))
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}
