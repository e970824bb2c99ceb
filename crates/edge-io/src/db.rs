//! PostgreSQL through Spin's `pg4`, as the components use it: open the configured database and
//! read the single row a seat or admin function answers. Every failure becomes
//! [`ApiError::DatabaseUnavailable`] (or `Internal` for a row of the wrong shape), logged with
//! its detail and never shown to the client.

use license_edge::api::ApiError;
use spin_sdk::pg4::{Connection, DbValue, ParameterValue, RowSet};
use spin_sdk::variables;

/// Opens the database named by the component's `database_url` variable.
pub fn open() -> Result<Connection, ApiError> {
    let url = variables::get("database_url").map_err(|e| {
        eprintln!("database_url variable: {e}");
        ApiError::Internal
    })?;
    open_url(&url)
}

/// Opens the database at `url` (for a component that read its URL with other settings in one
/// variable: `license_edge::settings`).
pub fn open_url(url: &str) -> Result<Connection, ApiError> {
    Connection::open(url).map_err(|e| {
        eprintln!("database open: {e}");
        ApiError::DatabaseUnavailable
    })
}

/// Runs a query; any failure is `DatabaseUnavailable`.
pub fn query(conn: &Connection, sql: &str, params: &[ParameterValue]) -> Result<RowSet, ApiError> {
    conn.query(sql, params).map_err(|e| {
        eprintln!("database query failed: {e}");
        ApiError::DatabaseUnavailable
    })
}

/// Runs a statement; any failure is `DatabaseUnavailable`.
pub fn execute(conn: &Connection, sql: &str, params: &[ParameterValue]) -> Result<u64, ApiError> {
    conn.execute(sql, params).map_err(|e| {
        eprintln!("database statement failed: {e}");
        ApiError::DatabaseUnavailable
    })
}

/// A text parameter, or NULL.
pub fn text_or_null(value: Option<&str>) -> ParameterValue {
    value.map_or(ParameterValue::DbNull, |v| {
        ParameterValue::Str(v.to_owned())
    })
}

/// One row of a result, read by column name.
pub struct Row<'a> {
    set: &'a RowSet,
    index: usize,
}

fn shape(what: &str) -> ApiError {
    eprintln!("database answered a row of the wrong shape: {what}");
    ApiError::Internal
}

impl<'a> Row<'a> {
    /// The first row; a set with none is a wrong shape (the functions always answer one).
    pub fn first(set: &'a RowSet) -> Result<Self, ApiError> {
        if set.rows.is_empty() {
            return Err(shape("no row"));
        }
        Ok(Row { set, index: 0 })
    }

    /// Every row.
    pub fn all(set: &'a RowSet) -> impl Iterator<Item = Row<'a>> {
        (0..set.rows.len()).map(move |index| Row { set, index })
    }

    fn value(&self, column: &str) -> Result<&'a DbValue, ApiError> {
        let i = self
            .set
            .columns
            .iter()
            .position(|c| c.name == column)
            .ok_or_else(|| shape(column))?;
        self.set.rows[self.index]
            .get(i)
            .ok_or_else(|| shape(column))
    }

    /// A TEXT column (NULL is `None`).
    pub fn text(&self, column: &str) -> Result<Option<String>, ApiError> {
        match self.value(column)? {
            DbValue::Str(s) => Ok(Some(s.clone())),
            DbValue::DbNull => Ok(None),
            _ => Err(shape(column)),
        }
    }

    /// The row's `o_outcome`, read with `parse` (`SeatOutcome::parse`, `AdminOutcome::parse`):
    /// a string the enum does not know is an internal error, logged, never a guess.
    pub fn outcome<T>(&self, parse: fn(&str) -> Option<T>) -> Result<T, ApiError> {
        let text = self.required_text("o_outcome")?;
        parse(&text).ok_or_else(|| shape(&format!("o_outcome '{text}' is no known outcome")))
    }

    /// A TEXT column that must not be NULL.
    pub fn required_text(&self, column: &str) -> Result<String, ApiError> {
        self.text(column)?.ok_or_else(|| shape(column))
    }

    /// An INT or BIGINT column (NULL is `None`).
    pub fn int(&self, column: &str) -> Result<Option<i64>, ApiError> {
        match self.value(column)? {
            DbValue::Int32(v) => Ok(Some(i64::from(*v))),
            DbValue::Int64(v) => Ok(Some(*v)),
            DbValue::DbNull => Ok(None),
            _ => Err(shape(column)),
        }
    }

    /// An INT or BIGINT column that must not be NULL.
    pub fn required_int(&self, column: &str) -> Result<i64, ApiError> {
        self.int(column)?.ok_or_else(|| shape(column))
    }

    /// A non-negative INT column that must not be NULL, as `u32`.
    pub fn count(&self, column: &str) -> Result<u32, ApiError> {
        u32::try_from(self.required_int(column)?).map_err(|_| shape(column))
    }

    /// A TEXT[] column (NULL is empty).
    pub fn text_array(&self, column: &str) -> Result<Vec<String>, ApiError> {
        match self.value(column)? {
            DbValue::ArrayStr(items) => Ok(items.iter().flatten().cloned().collect()),
            DbValue::DbNull => Ok(Vec::new()),
            _ => Err(shape(column)),
        }
    }

    /// A BOOLEAN column that must not be NULL.
    pub fn boolean(&self, column: &str) -> Result<bool, ApiError> {
        match self.value(column)? {
            DbValue::Boolean(b) => Ok(*b),
            _ => Err(shape(column)),
        }
    }

    /// A JSONB column (NULL is `null`).
    pub fn json(&self, column: &str) -> Result<serde_json::Value, ApiError> {
        match self.value(column)? {
            DbValue::Jsonb(bytes) => serde_json::from_slice(bytes).map_err(|_| shape(column)),
            DbValue::DbNull => Ok(serde_json::Value::Null),
            _ => Err(shape(column)),
        }
    }
}
