//! The Spin host interfaces, implemented on a request's store data with the component's grants.

use crate::bindings::fermyon::spin::{key_value, variables};
use crate::bindings::spin::postgres::postgres;
use crate::calls::count;
use crate::host::RequestState;
use crate::kv::StoreHandle;
use crate::outbound::postgres_address;
use crate::pg::Connection;
use crate::variables::GetError;
use wasmtime::component::Resource;

impl key_value::Host for RequestState {}

impl key_value::HostStore for RequestState {
    async fn open(
        &mut self,
        label: String,
    ) -> wasmtime::Result<Result<Resource<StoreHandle>, key_value::Error>> {
        count(&self.grants.calls.kv_open);
        if !self.grants.key_value_stores.contains(&label) {
            return Ok(Err(key_value::Error::AccessDenied));
        }
        let Some(backend) = self.grants.stores.get(&label).cloned() else {
            return Ok(Err(key_value::Error::NoSuchStore));
        };
        // Spin's Redis store sends `PING` on every open and ignores its answer (a failed one
        // leaves the connection manager reconnecting); so does this host.
        backend.after_open().await;
        Ok(Ok(self.table.push(StoreHandle { backend })?))
    }

    async fn get(
        &mut self,
        store: Resource<StoreHandle>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, key_value::Error>> {
        count(&self.grants.calls.kv_get);
        let backend = self.table.get(&store)?.backend.clone();
        Ok(backend.get(&key).await.map_err(key_value::Error::Other))
    }

    async fn set(
        &mut self,
        store: Resource<StoreHandle>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), key_value::Error>> {
        count(&self.grants.calls.kv_set);
        let backend = self.table.get(&store)?.backend.clone();
        Ok(backend
            .set(&key, value)
            .await
            .map_err(key_value::Error::Other))
    }

    async fn delete(
        &mut self,
        store: Resource<StoreHandle>,
        key: String,
    ) -> wasmtime::Result<Result<(), key_value::Error>> {
        count(&self.grants.calls.kv_delete);
        let backend = self.table.get(&store)?.backend.clone();
        Ok(backend.delete(&key).await.map_err(key_value::Error::Other))
    }

    async fn exists(
        &mut self,
        store: Resource<StoreHandle>,
        key: String,
    ) -> wasmtime::Result<Result<bool, key_value::Error>> {
        count(&self.grants.calls.kv_other);
        let backend = self.table.get(&store)?.backend.clone();
        Ok(backend.exists(&key).await.map_err(key_value::Error::Other))
    }

    async fn get_keys(
        &mut self,
        store: Resource<StoreHandle>,
    ) -> wasmtime::Result<Result<Vec<String>, key_value::Error>> {
        count(&self.grants.calls.kv_other);
        let backend = self.table.get(&store)?.backend.clone();
        Ok(backend.keys().await.map_err(key_value::Error::Other))
    }

    async fn drop(&mut self, store: Resource<StoreHandle>) -> wasmtime::Result<()> {
        self.table.delete(store)?;
        Ok(())
    }
}

impl variables::Host for RequestState {
    async fn get(&mut self, name: String) -> wasmtime::Result<Result<String, variables::Error>> {
        count(&self.grants.calls.variables);
        Ok(self.grants.variables.get(&name).map_err(|e| match e {
            GetError::InvalidName(m) => variables::Error::InvalidName(m),
            GetError::Undefined(m) => variables::Error::Undefined(m),
        }))
    }
}

impl postgres::Host for RequestState {}

impl postgres::HostConnection for RequestState {
    async fn open(
        &mut self,
        address: String,
    ) -> wasmtime::Result<Result<Resource<Connection>, postgres::Error>> {
        count(&self.grants.calls.pg_open);
        match postgres_address(&address) {
            Ok(addr) if self.grants.allowed_hosts.allows(&addr) => {}
            Ok(addr) => {
                let message = format!("address {addr} is not permitted");
                return Ok(Err(postgres::Error::ConnectionFailed(message)));
            }
            Err(e) => {
                let message = format!("invalid address: {e}");
                return Ok(Err(postgres::Error::ConnectionFailed(message)));
            }
        }
        match self.grants.pg.open(&address).await {
            Ok(conn) => Ok(Ok(self.table.push(conn)?)),
            Err(e) => Ok(Err(e)),
        }
    }

    async fn query(
        &mut self,
        conn: Resource<Connection>,
        statement: String,
        params: Vec<postgres::ParameterValue>,
    ) -> wasmtime::Result<Result<postgres::RowSet, postgres::Error>> {
        count(&self.grants.calls.pg_query);
        let conn = self.table.get(&conn)?;
        Ok(conn.query(&statement, params).await)
    }

    async fn execute(
        &mut self,
        conn: Resource<Connection>,
        statement: String,
        params: Vec<postgres::ParameterValue>,
    ) -> wasmtime::Result<Result<u64, postgres::Error>> {
        count(&self.grants.calls.pg_execute);
        let conn = self.table.get(&conn)?;
        Ok(conn.execute(&statement, params).await)
    }

    async fn drop(&mut self, conn: Resource<Connection>) -> wasmtime::Result<()> {
        self.table.delete(conn)?;
        Ok(())
    }
}
