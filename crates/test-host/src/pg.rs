//! Outbound PostgreSQL (`spin:postgres/postgres@4.0.0`) over `tokio-postgres`, as Spin provides
//! it: connections pooled per connection string, each `open` taking its own backend, a
//! connection keeping its backend until dropped, and no rollback of a transaction left open
//! (the pooled backend goes back as it is, as on real Spin). A reused connection is reset on
//! checkout with the statements Spin's pool sends (`RECYCLE_CLEAN`), so a request costs the
//! database what it costs it on Spin.
//!
//! Value mapping follows what real Spin did (shared/SPIN-FACTS.md): NULL is `db-null`, BIGINT
//! `int64`, INT `int32`, BOOL `boolean`, UUID `uuid`, JSONB `jsonb`, TEXT[] `array-str`,
//! TIMESTAMP `datetime`; a TIMESTAMPTZ column fails the whole query; parameter types must match
//! the column exactly. NUMERIC, ranges and INTERVAL come back as `unsupported` and are refused
//! as parameters: Spin supports them, this app does not use them.

// The error type is the WIT-generated one handed straight to the guest; boxing it would only be
// undone at the boundary.
#![allow(clippy::result_large_err)]

use crate::bindings::spin::postgres::postgres::{
    Column, DbDataType, DbError, DbValue, Error as PgError, ParameterValue, QueryError, RowSet,
};
use bytes::BytesMut;
use std::collections::HashMap;
use std::error::Error as StdError;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_postgres::types::{to_sql_checked, FromSql, IsNull, ToSql, Type};
use tokio_postgres::{Client, NoTls, Row};

/// What Spin's pool sends on a reused connection before handing it out: deadpool-postgres's
/// `RecyclingMethod::Clean` (spinframework/spin `crates/factor-outbound-pg/src/client.rs`), as
/// one simple-query batch.
const RECYCLE_CLEAN: &str = "CLOSE ALL; SET SESSION AUTHORIZATION DEFAULT; RESET ALL; UNLISTEN *; \
     SELECT pg_advisory_unlock_all(); DISCARD TEMP; DISCARD SEQUENCES;";

/// How long `open` waits for a free pooled connection or a new one.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Pools by connection string, shared by all components of a host.
#[derive(Default)]
pub struct Pools {
    pools: Mutex<HashMap<String, Arc<Pool>>>,
    max_size: usize,
}

/// The connections to one server, idle ones kept for reuse.
pub struct Pool {
    url: String,
    idle: Mutex<Vec<Client>>,
    permits: Arc<Semaphore>,
}

/// An open connection, as the guest holds it.
pub struct Connection {
    client: Option<Client>,
    pool: Arc<Pool>,
    _permit: OwnedSemaphorePermit,
}

impl Pools {
    /// Pools of at most `max_size` connections each (Spin's is [`crate::host::SPIN_PG_POOL_SIZE`]).
    pub fn new(max_size: usize) -> Self {
        Pools {
            pools: Mutex::default(),
            max_size: max_size.max(1),
        }
    }

    /// Takes a connection to `url` from its pool, connecting when none is idle.
    pub async fn open(&self, url: &str) -> Result<Connection, PgError> {
        let pool = {
            let mut pools = self.pools.lock().unwrap_or_else(|p| p.into_inner());
            pools
                .entry(url.to_owned())
                .or_insert_with(|| {
                    Arc::new(Pool {
                        url: url.to_owned(),
                        idle: Mutex::default(),
                        permits: Arc::new(Semaphore::new(self.max_size)),
                    })
                })
                .clone()
        };
        let permit = tokio::time::timeout(CONNECT_TIMEOUT, pool.permits.clone().acquire_owned())
            .await
            .map_err(|_| {
                PgError::ConnectionFailed("timed out waiting for a pooled connection".into())
            })?
            .map_err(|_| PgError::ConnectionFailed("pool closed".into()))?;
        let client = loop {
            let reused = pool.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
            match reused {
                // As Spin's pool (deadpool-postgres with `RecyclingMethod::Clean`) does, a reused
                // connection is reset before it is handed out: one more round trip per `open`.
                // One that fails the reset is dropped and the next one tried.
                Some(c) if !c.is_closed() => {
                    if c.batch_execute(RECYCLE_CLEAN).await.is_ok() {
                        break c;
                    }
                }
                Some(_) => {}
                None => break connect(&pool.url).await?,
            }
        };
        Ok(Connection {
            client: Some(client),
            pool,
            _permit: permit,
        })
    }
}

async fn connect(url: &str) -> Result<Client, PgError> {
    let mut config: tokio_postgres::Config = url
        .parse()
        .map_err(|e| PgError::ConnectionFailed(format!("{e}")))?;
    config.connect_timeout(CONNECT_TIMEOUT);
    let (client, connection) = config
        .connect(NoTls)
        .await
        .map_err(|e| PgError::ConnectionFailed(format!("{e:?}")))?;
    tokio::spawn(async move {
        // The connection task ends when the server goes away or the client is dropped; the
        // client then reports `is_closed()` and is not reused.
        let _ = connection.await;
    });
    Ok(client)
}

impl Drop for Connection {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            if !client.is_closed() {
                self.pool
                    .idle
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(client);
            }
        }
    }
}

impl Connection {
    fn client(&self) -> &Client {
        // Invariant: `client` is only taken in `drop`.
        self.client.as_ref().expect("connection used after drop")
    }

    /// Runs a statement that returns rows.
    pub async fn query(
        &self,
        statement: &str,
        params: Vec<ParameterValue>,
    ) -> Result<RowSet, PgError> {
        let params = to_sql_params(params)?;
        let refs: Vec<&(dyn ToSql + Sync)> = params
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect();
        let stmt = self
            .client()
            .prepare(statement)
            .await
            .map_err(query_error)?;
        let rows = self
            .client()
            .query(&stmt, &refs)
            .await
            .map_err(query_error)?;
        let columns = stmt
            .columns()
            .iter()
            .map(|c| Column {
                name: c.name().to_owned(),
                data_type: data_type(c.type_()),
            })
            .collect();
        let rows = rows.iter().map(convert_row).collect::<Result<_, _>>()?;
        Ok(RowSet { columns, rows })
    }

    /// Runs a statement and returns the number of rows it affected.
    pub async fn execute(
        &self,
        statement: &str,
        params: Vec<ParameterValue>,
    ) -> Result<u64, PgError> {
        let params = to_sql_params(params)?;
        let refs: Vec<&(dyn ToSql + Sync)> = params
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect();
        self.client()
            .execute(statement, &refs)
            .await
            .map_err(query_error)
    }
}

fn query_error(e: tokio_postgres::Error) -> PgError {
    match e.as_db_error() {
        Some(db) => PgError::QueryFailed(QueryError::DbError(DbError {
            as_text: e.to_string(),
            severity: db.severity().to_owned(),
            code: db.code().code().to_owned(),
            message: db.message().to_owned(),
            detail: db.detail().map(str::to_owned),
            extras: Vec::new(),
        })),
        None => PgError::QueryFailed(QueryError::Text(format!("{e:?}"))),
    }
}

/// SQL NULL for a parameter of any type.
#[derive(Debug)]
struct Null;

impl ToSql for Null {
    fn to_sql(
        &self,
        _: &Type,
        _: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn StdError + Sync + Send>> {
        Ok(IsNull::Yes)
    }
    fn accepts(_: &Type) -> bool {
        true
    }
    to_sql_checked!();
}

type Param = Box<dyn ToSql + Sync + Send>;

fn to_sql_params(params: Vec<ParameterValue>) -> Result<Vec<Param>, PgError> {
    params
        .into_iter()
        .enumerate()
        .map(|(i, p)| to_sql(i, p))
        .collect()
}

fn to_sql(index: usize, p: ParameterValue) -> Result<Param, PgError> {
    let bad = |what: &str| PgError::BadParameter(format!("parameter ${}: {what}", index + 1));
    Ok(match p {
        ParameterValue::Boolean(v) => Box::new(v),
        ParameterValue::Int8(v) => Box::new(v),
        ParameterValue::Int16(v) => Box::new(v),
        ParameterValue::Int32(v) => Box::new(v),
        ParameterValue::Int64(v) => Box::new(v),
        ParameterValue::Floating32(v) => Box::new(v),
        ParameterValue::Floating64(v) => Box::new(v),
        ParameterValue::Str(v) => Box::new(v),
        ParameterValue::Binary(v) => Box::new(v),
        ParameterValue::Date((y, m, d)) => Box::new(
            chrono::NaiveDate::from_ymd_opt(y, m.into(), d.into())
                .ok_or_else(|| bad("invalid date"))?,
        ),
        ParameterValue::Time((h, m, s, ns)) => Box::new(
            chrono::NaiveTime::from_hms_nano_opt(h.into(), m.into(), s.into(), ns)
                .ok_or_else(|| bad("invalid time"))?,
        ),
        ParameterValue::Datetime((y, mo, d, h, mi, s, ns)) => {
            let date = chrono::NaiveDate::from_ymd_opt(y, mo.into(), d.into());
            let time = chrono::NaiveTime::from_hms_nano_opt(h.into(), mi.into(), s.into(), ns);
            match (date, time) {
                (Some(date), Some(time)) => Box::new(chrono::NaiveDateTime::new(date, time)),
                _ => return Err(bad("invalid datetime")),
            }
        }
        ParameterValue::Timestamp(secs) => Box::new(
            chrono::DateTime::<chrono::Utc>::from_timestamp(secs, 0)
                .ok_or_else(|| bad("timestamp out of range"))?,
        ),
        ParameterValue::Uuid(v) => {
            Box::new(uuid::Uuid::parse_str(&v).map_err(|_| bad("invalid uuid"))?)
        }
        ParameterValue::Jsonb(v) => Box::new(
            serde_json::from_slice::<serde_json::Value>(&v)
                .map_err(|_| bad("invalid JSON for jsonb"))?,
        ),
        ParameterValue::ArrayInt32(v) => Box::new(v),
        ParameterValue::ArrayInt64(v) => Box::new(v),
        ParameterValue::ArrayStr(v) => Box::new(v),
        ParameterValue::DbNull => Box::new(Null),
        ParameterValue::Decimal(_)
        | ParameterValue::ArrayDecimal(_)
        | ParameterValue::RangeInt32(_)
        | ParameterValue::RangeInt64(_)
        | ParameterValue::RangeDecimal(_)
        | ParameterValue::Interval(_) => {
            return Err(bad("this type is not supported by the test host"))
        }
    })
}

fn data_type(t: &Type) -> DbDataType {
    match *t {
        Type::BOOL => DbDataType::Boolean,
        Type::CHAR => DbDataType::Int8,
        Type::INT2 => DbDataType::Int16,
        Type::INT4 => DbDataType::Int32,
        Type::INT8 => DbDataType::Int64,
        Type::FLOAT4 => DbDataType::Floating32,
        Type::FLOAT8 => DbDataType::Floating64,
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => DbDataType::Str,
        Type::BYTEA => DbDataType::Binary,
        Type::DATE => DbDataType::Date,
        Type::TIME => DbDataType::Time,
        Type::TIMESTAMP => DbDataType::Datetime,
        Type::TIMESTAMPTZ => DbDataType::Timestamp,
        Type::UUID => DbDataType::Uuid,
        Type::JSONB => DbDataType::Jsonb,
        Type::NUMERIC => DbDataType::Decimal,
        Type::INT4_ARRAY => DbDataType::ArrayInt32,
        Type::INT8_ARRAY => DbDataType::ArrayInt64,
        Type::TEXT_ARRAY | Type::VARCHAR_ARRAY => DbDataType::ArrayStr,
        Type::INTERVAL => DbDataType::Interval,
        ref other => DbDataType::Other(other.name().to_owned()),
    }
}

/// The raw bytes of a value of a type the host does not convert.
struct RawBytes(Vec<u8>);

impl<'a> FromSql<'a> for RawBytes {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn StdError + Sync + Send>> {
        Ok(RawBytes(raw.to_vec()))
    }
    fn accepts(_: &Type) -> bool {
        true
    }
}

fn convert_row(row: &Row) -> Result<Vec<DbValue>, PgError> {
    (0..row.len()).map(|i| convert_value(row, i)).collect()
}

fn convert_value(row: &Row, i: usize) -> Result<DbValue, PgError> {
    fn get<'a, T: FromSql<'a>>(row: &'a Row, i: usize) -> Result<Option<T>, PgError> {
        row.try_get::<_, Option<T>>(i)
            .map_err(|e| PgError::ValueConversionFailed(format!("column {i}: {e}")))
    }
    let t = row.columns()[i].type_();
    let value = match *t {
        Type::BOOL => get::<bool>(row, i)?.map(DbValue::Boolean),
        Type::CHAR => get::<i8>(row, i)?.map(DbValue::Int8),
        Type::INT2 => get::<i16>(row, i)?.map(DbValue::Int16),
        Type::INT4 => get::<i32>(row, i)?.map(DbValue::Int32),
        Type::INT8 => get::<i64>(row, i)?.map(DbValue::Int64),
        Type::FLOAT4 => get::<f32>(row, i)?.map(DbValue::Floating32),
        Type::FLOAT8 => get::<f64>(row, i)?.map(DbValue::Floating64),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => {
            get::<String>(row, i)?.map(DbValue::Str)
        }
        Type::BYTEA => get::<Vec<u8>>(row, i)?.map(DbValue::Binary),
        Type::DATE => get::<chrono::NaiveDate>(row, i)?.map(|d| {
            use chrono::Datelike;
            DbValue::Date((d.year(), d.month() as u8, d.day() as u8))
        }),
        Type::TIME => get::<chrono::NaiveTime>(row, i)?.map(|t| {
            use chrono::Timelike;
            DbValue::Time((
                t.hour() as u8,
                t.minute() as u8,
                t.second() as u8,
                t.nanosecond(),
            ))
        }),
        Type::TIMESTAMP => get::<chrono::NaiveDateTime>(row, i)?.map(|dt| {
            use chrono::{Datelike, Timelike};
            DbValue::Datetime((
                dt.year(),
                dt.month() as u8,
                dt.day() as u8,
                dt.hour() as u8,
                dt.minute() as u8,
                dt.second() as u8,
                dt.nanosecond(),
            ))
        }),
        Type::TIMESTAMPTZ => {
            // Real Spin reads this column as a NaiveDateTime and fails the whole query.
            return Err(PgError::ValueConversionFailed(format!(
                "column {i}: cannot convert TIMESTAMPTZ to NaiveDateTime"
            )));
        }
        Type::UUID => get::<uuid::Uuid>(row, i)?.map(|u| DbValue::Uuid(u.to_string())),
        Type::JSONB => {
            get::<serde_json::Value>(row, i)?.map(|v| DbValue::Jsonb(v.to_string().into_bytes()))
        }
        Type::INT4_ARRAY => get::<Vec<Option<i32>>>(row, i)?.map(DbValue::ArrayInt32),
        Type::INT8_ARRAY => get::<Vec<Option<i64>>>(row, i)?.map(DbValue::ArrayInt64),
        Type::TEXT_ARRAY | Type::VARCHAR_ARRAY => {
            get::<Vec<Option<String>>>(row, i)?.map(DbValue::ArrayStr)
        }
        _ => get::<RawBytes>(row, i)?.map(|b| DbValue::Unsupported(b.0)),
    };
    Ok(value.unwrap_or(DbValue::DbNull))
}
