//! Loading an application and serving requests to its components.

use crate::bindings::SpinImports;
use crate::calls::{count, Counters, HostCalls};
use crate::kv::Backend;
use crate::manifest::Manifest;
use crate::outbound::{Address, AllowedHosts};
use crate::pg::Pools;
use crate::routes::{RouteMatch, Router};
use crate::runtime_config::{RuntimeConfig, StoreConfig};
use crate::stderr::ComponentLog;
use crate::variables::{ComponentVariables, Variables};
use anyhow::{bail, Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Body;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};

/// What one component was granted by the manifest, resolved at load.
pub(crate) struct Grants {
    pub(crate) key_value_stores: Vec<String>,
    pub(crate) stores: HashMap<String, Backend>,
    pub(crate) allowed_hosts: AllowedHosts,
    pub(crate) variables: ComponentVariables,
    pub(crate) pg: Arc<Pools>,
    /// The component's host calls, counted (`crate::calls`).
    pub(crate) calls: Counters,
}

/// The store data of one request's instance.
pub(crate) struct RequestState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    pub(crate) table: ResourceTable,
    hooks: OutboundHttp,
    pub(crate) grants: Arc<Grants>,
}

impl WasiView for RequestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for RequestState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

/// Outbound HTTP as Spin sends it: a request whose `scheme://host:port` is not in the
/// component's `allowed_outbound_hosts` fails at once with `HTTP-request-denied`; an allowed one
/// is sent with the guest's request options (connect, first-byte and between-bytes timeouts;
/// wasmtime's 600 s each when the guest sets none, as in Spin).
struct OutboundHttp {
    grants: Arc<Grants>,
}

type SendFuture = Box<
    dyn std::future::Future<
            Output = Result<
                (
                    http::Response<wasmtime_wasi_http::WasiBody>,
                    Box<
                        dyn std::future::Future<Output = Result<(), wasmtime_wasi_http::Error>>
                            + Send,
                    >,
                ),
                wasmtime_wasi_http::Error,
            >,
        > + Send,
>;

impl WasiHttpHooks for OutboundHttp {
    fn send_request(
        &mut self,
        request: http::Request<wasmtime_wasi_http::WasiBody>,
        options: Option<wasmtime_wasi_http::RequestOptions>,
        _fut: Box<dyn std::future::Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
    ) -> SendFuture {
        count(&self.grants.calls.outbound_http);
        let allowed = outbound_address(request.uri())
            .is_some_and(|addr| self.grants.allowed_hosts.allows(&addr));
        if !allowed {
            eprintln!(
                "test host: outbound HTTP to {} denied: not in allowed_outbound_hosts",
                request.uri()
            );
            return Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) });
        }
        Box::new(async move {
            let (resp, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((
                resp.map(BodyExt::boxed_unsync),
                Box::new(io)
                    as Box<
                        dyn std::future::Future<Output = Result<(), wasmtime_wasi_http::Error>>
                            + Send,
                    >,
            ))
        })
    }
}

/// The `scheme://host:port` an outbound request is checked against (the scheme's default port
/// when the URL names none), or `None` for a URL without a scheme or host.
fn outbound_address(uri: &http::Uri) -> Option<Address> {
    let scheme = uri.scheme_str()?.to_ascii_lowercase();
    let host = uri
        .host()?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = match uri.port_u16() {
        Some(p) => p,
        None => match scheme.as_str() {
            "http" => 80,
            "https" => 443,
            _ => return None,
        },
    };
    Some(Address { scheme, host, port })
}

struct Loaded {
    pre: ProxyPre<RequestState>,
    grants: Arc<Grants>,
}

struct Inner {
    name: String,
    version: String,
    router: Router,
    components: HashMap<String, Loaded>,
    component_log: Option<ComponentLog>,
}

/// A loaded application, ready to serve requests. Cheap to clone.
#[derive(Clone)]
pub struct Host {
    inner: Arc<Inner>,
}

/// The most PostgreSQL connections Spin's pool keeps per connection string
/// (`CONNECTION_POOL_SIZE` in spinframework/spin `crates/factor-outbound-pg/src/client.rs`, 64
/// since Spin began pooling them, August 2025): the test host's default.
pub const SPIN_PG_POOL_SIZE: usize = 64;

/// Configures and loads a [`Host`].
#[derive(Debug, Clone)]
pub struct HostBuilder {
    manifest: PathBuf,
    runtime_config: RuntimeConfig,
    variables: BTreeMap<String, String>,
    read_env: bool,
    pg_pool_size: usize,
    component_log: Option<ComponentLog>,
}

/// A response collected in full, for tests.
#[derive(Debug, Clone)]
pub struct TestResponse {
    /// The status code.
    pub status: u16,
    /// The response headers.
    pub headers: http::HeaderMap,
    /// The whole body.
    pub body: Bytes,
}

impl TestResponse {
    /// The body parsed as JSON; panics with the body in the message when it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("response body is not JSON ({e}): {:?}", self.text()))
    }

    /// The body as (lossy) UTF-8 text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// A header's value as text, if present and valid UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl HostBuilder {
    /// A builder for the application described by `manifest` (a `spin.toml`).
    pub fn new(manifest: impl Into<PathBuf>) -> Self {
        HostBuilder {
            manifest: manifest.into(),
            runtime_config: RuntimeConfig::default().with_default(),
            variables: BTreeMap::new(),
            read_env: true,
            pg_pool_size: SPIN_PG_POOL_SIZE,
            component_log: None,
        }
    }

    /// Uses this runtime configuration (Spin's `--runtime-config-file`).
    pub fn runtime_config(mut self, config: RuntimeConfig) -> Self {
        self.runtime_config = config.with_default();
        self
    }

    /// Sets an application variable, as `spin up --variable name=value` does.
    pub fn variable(mut self, name: &str, value: impl Into<String>) -> Self {
        self.variables.insert(name.to_owned(), value.into());
        self
    }

    /// Whether `SPIN_VARIABLE_<NAME>` environment variables are read (default: yes). Tests that
    /// must not be affected by the environment turn this off.
    pub fn read_env(mut self, read: bool) -> Self {
        self.read_env = read;
        self
    }

    /// The most connections each PostgreSQL pool keeps (default: 4 per CPU, as Spin's pool).
    pub fn pg_pool_size(mut self, size: usize) -> Self {
        self.pg_pool_size = size;
        self
    }

    /// Also copies what the components write to stderr into `log` (it still reaches the
    /// host's stderr, as Spin shows it on its terminal), so a test can read it.
    pub fn component_log(mut self, log: ComponentLog) -> Self {
        self.component_log = Some(log);
        self
    }

    /// Loads the manifest, resolves variables and grants, and compiles every component.
    pub async fn build(self) -> Result<Host> {
        let manifest = Manifest::load(&self.manifest)?;
        let read_env = self.read_env;
        let vars = Variables::resolve(
            &manifest.variables,
            |k| {
                if read_env {
                    std::env::var(k).ok()
                } else {
                    None
                }
            },
            &self.variables,
        )?;
        let mut backends = HashMap::new();
        for (label, config) in &self.runtime_config.key_value_stores {
            let backend = match config {
                StoreConfig::Spin => Backend::memory(),
                StoreConfig::Redis { url } => Backend::redis(url)
                    .with_context(|| format!("key_value_store.{label}: bad redis url"))?,
            };
            backends.insert(label.clone(), backend);
        }
        let pg = Arc::new(Pools::new(self.pg_pool_size));
        let engine = engine()?;
        let mut components = HashMap::new();
        for (id, decl) in &manifest.components {
            let mut stores = HashMap::new();
            for label in &decl.key_value_stores {
                let Some(b) = backends.get(label) else {
                    bail!("unknown key_value_stores label {label:?} for component {id:?}");
                };
                stores.insert(label.clone(), b.clone());
            }
            let hosts = decl
                .allowed_outbound_hosts
                .iter()
                .map(|h| vars.expand(h))
                .collect::<Result<Vec<_>>>()
                .with_context(|| format!("component {id:?}"))?;
            let grants = Grants {
                key_value_stores: decl.key_value_stores.clone(),
                stores,
                allowed_hosts: AllowedHosts::parse(&hosts)
                    .with_context(|| format!("component {id:?}"))?,
                variables: ComponentVariables::new(&vars, &decl.variables)
                    .with_context(|| format!("component {id:?}"))?,
                pg: pg.clone(),
                calls: Counters::default(),
            };
            let path = manifest.base_dir.join(&decl.source);
            let component = compile(engine, &path).with_context(|| format!("component {id:?}"))?;
            let pre = link(engine, &component).with_context(|| format!("component {id:?}"))?;
            components.insert(
                id.clone(),
                Loaded {
                    pre,
                    grants: Arc::new(grants),
                },
            );
        }
        let router = Router::new(
            manifest
                .routes
                .iter()
                .map(|r| (r.route.as_str(), r.component.as_str())),
        )?;
        Ok(Host {
            inner: Arc::new(Inner {
                name: manifest.name,
                version: manifest.version,
                router,
                components,
                component_log: self.component_log,
            }),
        })
    }
}

/// One engine per process, with the pooling allocator and the on-disk compilation cache.
fn engine() -> Result<&'static Engine> {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    if let Some(e) = ENGINE.get() {
        return Ok(e);
    }
    let mut config = wasmtime::Config::new();
    let mut pool = wasmtime::PoolingAllocationConfig::default();
    pool.total_component_instances(1000)
        .total_core_instances(2000)
        .total_memories(2000)
        .total_tables(2000)
        // Reset a reused slot's first pages with memset instead of handing them back to the
        // kernel, so the next instance takes no page faults on them (a request touches about
        // 1 MiB of linear memory).
        .linear_memory_keep_resident(2 << 20)
        .table_keep_resident(64 << 10)
        .async_stack_keep_resident(128 << 10);
    config.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
    if let Ok(cache) = wasmtime::Cache::from_file(None) {
        config.cache(Some(cache));
    }
    let engine = Engine::new(&config)?;
    Ok(ENGINE.get_or_init(|| engine))
}

/// Compiles a component once per process for each version of its file.
fn compile(engine: &Engine, path: &Path) -> Result<Component> {
    type Key = (PathBuf, Option<SystemTime>, u64);
    static CACHE: OnceLock<Mutex<HashMap<Key, Component>>> = OnceLock::new();
    let meta = std::fs::metadata(path).with_context(|| {
        format!(
            "reading {} (build the components first: see README)",
            path.display()
        )
    })?;
    let key = (path.to_path_buf(), meta.modified().ok(), meta.len());
    // Held across compilation so that tests starting hosts at once compile each file once.
    let mut cache = CACHE
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some(c) = cache.get(&key) {
        return Ok(c.clone());
    }
    let component = Component::from_file(engine, path)?;
    cache.insert(key, component.clone());
    Ok(component)
}

fn link(engine: &Engine, component: &Component) -> Result<ProxyPre<RequestState>> {
    let mut linker = Linker::<RequestState>::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    SpinImports::add_to_linker::<RequestState, HasSelf<RequestState>>(&mut linker, |s| s)?;
    Ok(ProxyPre::new(linker.instantiate_pre(component)?)?)
}

fn full_body(bytes: impl Into<Bytes>) -> HyperOutgoingBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// Whether a request names its authority, as Spin needs to make the component's URL: a Host
/// header that parses as one, or an absolute-form URI.
fn has_authority<B>(req: &hyper::Request<B>) -> bool {
    match req.headers().get(http::header::HOST) {
        Some(h) => h
            .to_str()
            .ok()
            .filter(|s| !s.is_empty())
            .is_some_and(|s| s.parse::<http::uri::Authority>().is_ok()),
        None => req.uri().authority().is_some(),
    }
}

fn plain(
    status: u16,
    content_type: Option<&str>,
    body: impl Into<Bytes>,
) -> hyper::Response<HyperOutgoingBody> {
    let body = body.into();
    let mut builder = hyper::Response::builder()
        .status(status)
        .header("content-length", body.len());
    if let Some(ct) = content_type {
        builder = builder.header("content-type", ct);
    }
    // Invariant: the status is a valid code and the header values are ASCII.
    builder
        .body(full_body(body))
        .expect("a valid static response")
}

impl Host {
    /// Serves one request as Spin would, from a client at `client`.
    pub async fn handle<B>(
        &self,
        req: hyper::Request<B>,
        client: SocketAddr,
    ) -> hyper::Response<HyperOutgoingBody>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<wasmtime_wasi_http::Error>,
    {
        let path = req.uri().path().to_owned();
        if let Some(rest) = path.strip_prefix("/.well-known/spin/") {
            return match rest {
                // Spin sends no content-type with it.
                "health" => plain(200, None, "OK"),
                "info" => plain(
                    200,
                    Some("application/json"),
                    serde_json::json!({"name": self.inner.name, "version": self.inner.version})
                        .to_string(),
                ),
                _ => plain(404, None, Bytes::new()),
            };
        }
        let Some(route) = self.inner.router.route(&path) else {
            return plain(404, None, Bytes::new());
        };
        // Spin answers an empty 500 to a request for a component with a header value that is
        // not UTF-8 (Latin-1 bytes, say): the component never runs.
        if req
            .headers()
            .values()
            .any(|v| std::str::from_utf8(v.as_bytes()).is_err())
        {
            eprintln!("spin-test-host: a header value is not UTF-8: 500, as Spin answers");
            return plain(500, None, Bytes::new());
        }
        match self.call(route, req, client).await {
            Ok(resp) => resp,
            Err(e) => {
                eprintln!("spin-test-host: component failed: {e:#}");
                plain(500, None, Bytes::new())
            }
        }
    }

    /// The host calls each component has made since the host was built, by component id. Read
    /// it before and after some requests and subtract ([`HostCalls`] implements `Sub`) for what
    /// those requests cost.
    pub fn host_calls(&self) -> BTreeMap<String, HostCalls> {
        self.inner
            .components
            .iter()
            .map(|(id, loaded)| (id.clone(), loaded.grants.calls.read()))
            .collect()
    }

    /// Whether a request for `path` reaches a component (not Spin's own routes, not a 404).
    fn routes_to_component(&self, path: &str) -> bool {
        !path.starts_with("/.well-known/spin/") && self.inner.router.route(path).is_some()
    }

    async fn call<B>(
        &self,
        route: RouteMatch,
        req: hyper::Request<B>,
        client: SocketAddr,
    ) -> Result<hyper::Response<HyperOutgoingBody>>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<wasmtime_wasi_http::Error>,
    {
        let loaded = self
            .inner
            .components
            .get(&route.component)
            .context("route names a component that is not loaded")?;
        let (mut parts, body) = req.into_parts();
        let authority = parts
            .headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_owned)
            .or_else(|| parts.uri.authority().map(|a| a.to_string()))
            .unwrap_or_else(|| "127.0.0.1:3000".to_owned());
        let path_and_query = parts
            .uri
            .path_and_query()
            .map_or("/", |pq| pq.as_str())
            .to_owned();
        let full_url = format!("http://{authority}{path_and_query}");
        parts.uri = full_url.parse().context("building the request URL")?;
        parts.headers.remove(http::header::HOST);
        // Spin appends its headers after any the client sent with the same names.
        let mut add = |name: String, value: &str| -> Result<()> {
            parts.headers.append(
                http::HeaderName::from_bytes(name.as_bytes())?,
                http::HeaderValue::from_str(value)?,
            );
            Ok(())
        };
        add("spin-full-url".into(), &full_url)?;
        add("spin-path-info".into(), &route.path_info)?;
        add("spin-matched-route".into(), &route.matched_route)?;
        add("spin-raw-component-route".into(), &route.matched_route)?;
        add("spin-component-route".into(), &route.component_route)?;
        add("spin-base-path".into(), "/")?;
        add("spin-client-addr".into(), &client.to_string())?;
        for (name, value) in &route.captures {
            add(format!("spin-path-match-{name}"), value)?;
        }
        let req = hyper::Request::from_parts(parts, body);

        count(&loaded.grants.calls.requests);
        let mut wasi = WasiCtx::builder();
        wasi.inherit_stdout();
        match &self.inner.component_log {
            Some(log) => wasi.stderr(log.clone()),
            None => wasi.inherit_stderr(),
        };
        let state = RequestState {
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            hooks: OutboundHttp {
                grants: loaded.grants.clone(),
            },
            grants: loaded.grants.clone(),
        };
        let mut store = Store::new(loaded.pre.engine(), state);
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let req = store
            .data_mut()
            .http()
            .new_incoming_request(Scheme::Http, req)?;
        let out = store.data_mut().http().new_response_outparam(sender)?;
        let pre = loaded.pre.clone();
        let task = tokio::task::spawn(async move {
            let proxy = pre.instantiate_async(&mut store).await?;
            proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut store, req, out)
                .await
        });
        match receiver.await {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(code)) => bail!("the component answered with an error code: {code:?}"),
            Err(_) => match task.await {
                Ok(Ok(())) => bail!("the component never set a response"),
                Ok(Err(e)) => Err(anyhow::Error::from(e).context("the component trapped")),
                Err(e) => Err(e.into()),
            },
        }
    }

    /// Sends one request in-process and collects the whole response. `headers` are added as
    /// given; the body is sent as is. A `HEAD` response comes back without its body, as over
    /// the wire.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Result<TestResponse> {
        let mut builder = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "127.0.0.1:3000");
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        let req = builder.body(Full::new(body.into()))?;
        let resp = self
            .handle(req, SocketAddr::from(([127, 0, 0, 1], 40000)))
            .await;
        let (parts, body) = resp.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| anyhow::anyhow!("reading the response body: {e:?}"))?
            .to_bytes();
        let body = if method == "HEAD" { Bytes::new() } else { body };
        Ok(TestResponse {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body,
        })
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Result<TestResponse> {
        self.request("GET", path, &[], Bytes::new()).await
    }

    /// Serves HTTP/1.1 on `addr`, which must be a loopback address, until the returned task is
    /// aborted. Returns the bound address (pass port 0 for a free port).
    pub async fn listen(
        &self,
        addr: SocketAddr,
    ) -> Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
        if !addr.ip().is_loopback() {
            bail!("the test host listens on loopback addresses only, not {addr}");
        }
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let bound = listener.local_addr()?;
        let host = self.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, client)) = listener.accept().await else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let host = host.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let host = host.clone();
                        async move {
                            // Spin closes the connection without an answer when a request for
                            // a component has no Host, an empty one or one that is not an
                            // authority (it cannot make the component's URL); its own routes
                            // and a 404 still answer.
                            if !has_authority(&req) && host.routes_to_component(req.uri().path()) {
                                return Err("a request for a component without a usable Host");
                            }
                            Ok(host.handle(req, client).await)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .keep_alive(true)
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok((bound, task))
    }
}
