//! `licensectl admin`: the admin API from the command line. Organizations, products, licenses,
//! sessions, the audit trail, usage figures and the key-value rebuild, each one HTTP call.
//!
//! The credential is read from `LICENSE_EDGE_ADMIN_TOKEN`, never from a flag: the operator
//! token, or an organization API key (`lek_…`), which sees only its organization. Output is a
//! readable table (lists) or `name: value` lines (one resource); `--json` prints the API's
//! answer unchanged. A refusal by the API exits 1 with its status, code and message on stderr.

use std::process::ExitCode;

use serde_json::{json, Map, Value};

use crate::admin_http::{with_query, Client, Refused};
use crate::admin_table::{details, table};

/// Arguments of `licensectl admin`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The app's origin, e.g. https://licenses.example.com (plain http only for loopback).
    #[arg(long, env = "LICENSE_EDGE_URL", global = true)]
    url: Option<String>,
    /// Print the API's JSON answer instead of a table.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Organizations (tenants).
    #[command(subcommand, name = "org")]
    Org(OrgCommand),
    /// Products of an organization.
    #[command(subcommand)]
    Product(ProductCommand),
    /// Licenses: create, list, show, change, suspend, reinstate, revoke.
    #[command(subcommand)]
    License(LicenseCommand),
    /// Sessions (seats) of a license.
    #[command(subcommand)]
    Session(SessionCommand),
    /// The audit trail of a license or an organization, newest first.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Usage figures of a license or an organization: seats in use, peak seats per hour and
    /// day (as a chart), acquires, refusals by reason, unique machines and users.
    #[command(subcommand)]
    Usage(UsageCommand),
    /// Organization API keys: issue (shown once), list, revoke.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// The edge read model in the key-value store.
    #[command(subcommand)]
    Kv(KvCommand),
    /// Create an organization, a product and a license, and print the license key with the
    /// curl lines that acquire a seat and validate its token.
    Quickstart(crate::quickstart::Args),
    /// Delete ended sessions and audit events past their retention (calls until done).
    Prune {
        /// Keep ended sessions this many days after their tokens stopped validating.
        #[arg(long, default_value_t = 90)]
        sessions_older_than_days: i64,
        /// Keep audit events this many days.
        #[arg(long, default_value_t = 365)]
        audit_older_than_days: i64,
    },
}

/// Paging of a list.
#[derive(Debug, clap::Args)]
struct Page {
    /// Items per page (1-100).
    #[arg(long)]
    limit: Option<u32>,
    /// Continue after the page that printed this cursor.
    #[arg(long)]
    cursor: Option<String>,
}

impl Page {
    fn params(&self) -> [(&'static str, Option<String>); 2] {
        [
            ("limit", self.limit.map(|l| l.to_string())),
            ("cursor", self.cursor.clone()),
        ]
    }
}

#[derive(Debug, clap::Subcommand)]
enum OrgCommand {
    /// Create an organization.
    Create {
        /// Its name.
        #[arg(long)]
        name: String,
    },
    /// List organizations.
    List {
        #[command(flatten)]
        page: Page,
    },
    /// Show an organization.
    Get {
        /// Organization id (org_...).
        id: String,
    },
}

#[derive(Debug, clap::Subcommand)]
enum KeysCommand {
    /// Issue an API key for an organization; the key is printed once and never again.
    Create {
        /// Organization id (org_...).
        #[arg(long = "org")]
        organization_id: String,
        /// What the key is for (shown in lists).
        #[arg(long)]
        name: String,
        /// `read` (lists, gets, audit trail) or `admin` (everything in the organization).
        #[arg(long, default_value = "read", value_parser = ["read", "admin"])]
        role: String,
    },
    /// List an organization's keys (prefixes, never the keys).
    List {
        /// Organization id (org_...).
        #[arg(long = "org")]
        organization_id: String,
        #[command(flatten)]
        page: Page,
    },
    /// Revoke a key: every later request with it is refused.
    Revoke {
        /// Key id (key_...).
        key_id: String,
    },
}

#[derive(Debug, clap::Subcommand)]
enum ProductCommand {
    /// Create a product in an organization.
    Create {
        /// Organization id (org_...).
        #[arg(long = "org")]
        organization_id: String,
        /// Product code: lower-case letters, digits, `.`, `_`, `-` (tokens name the product as
        /// `{organization_id}/{code}` in their audience).
        #[arg(long)]
        code: String,
        /// Display name.
        #[arg(long)]
        name: String,
    },
    /// List products.
    List {
        /// Only this organization's.
        #[arg(long = "org")]
        organization_id: Option<String>,
        #[command(flatten)]
        page: Page,
    },
    /// Show a product.
    Get {
        /// Product id (prod_...).
        id: String,
    },
}

/// License terms, for create and update.
#[derive(Debug, clap::Args)]
struct Terms {
    /// Seat limit.
    #[arg(long)]
    max_seats: Option<i64>,
    /// Plan name.
    #[arg(long)]
    plan: Option<String>,
    /// An enabled feature (repeat for several).
    #[arg(long = "feature")]
    features: Vec<String>,
    /// End of the license, RFC 3339 (e.g. 2027-12-31T23:59:59Z).
    #[arg(long)]
    expires_at: Option<String>,
    /// Seat lease length, seconds (30-86400).
    #[arg(long)]
    lease_seconds: Option<i64>,
    /// Longest offline borrow, seconds (0 forbids borrowing).
    #[arg(long)]
    max_borrow_seconds: Option<i64>,
    /// Acquire attempts per minute.
    #[arg(long)]
    rate_limit_per_minute: Option<i64>,
    /// How long after a token's exp a program working offline may still accept it, seconds
    /// (0-604800; 86400 by default).
    #[arg(long)]
    offline_grace_seconds: Option<i64>,
}

impl Terms {
    fn into_body(self, body: &mut Map<String, Value>) {
        let mut put = |k: &str, v: Option<Value>| {
            if let Some(v) = v {
                body.insert(k.to_owned(), v);
            }
        };
        put("max_seats", self.max_seats.map(Value::from));
        put("plan", self.plan.map(Value::from));
        put(
            "features",
            (!self.features.is_empty()).then(|| Value::from(self.features)),
        );
        put("expires_at", self.expires_at.map(Value::from));
        put("lease_seconds", self.lease_seconds.map(Value::from));
        put(
            "max_borrow_seconds",
            self.max_borrow_seconds.map(Value::from),
        );
        put(
            "rate_limit_per_minute",
            self.rate_limit_per_minute.map(Value::from),
        );
        put(
            "offline_grace_seconds",
            self.offline_grace_seconds.map(Value::from),
        );
    }
}

#[derive(Debug, clap::Subcommand)]
enum LicenseCommand {
    /// Create a license; prints its key, which is shown this once.
    Create {
        /// Product id (prod_...).
        #[arg(long = "product")]
        product_id: String,
        #[command(flatten)]
        terms: Terms,
    },
    /// List licenses, newest first.
    List {
        /// Only this organization's.
        #[arg(long = "org")]
        organization_id: Option<String>,
        /// Only this product's.
        #[arg(long = "product")]
        product_id: Option<String>,
        /// Only licenses with this status.
        #[arg(long, value_parser = ["active", "suspended", "revoked"])]
        status: Option<String>,
        #[command(flatten)]
        page: Page,
    },
    /// Show a license, its seats and live sessions.
    Get {
        /// License id (lic_...).
        id: String,
    },
    /// Change a license's terms. Lowering --max-seats ends no session.
    Update {
        /// License id (lic_...).
        id: String,
        #[command(flatten)]
        terms: Terms,
        /// Remove every feature.
        #[arg(long, conflicts_with = "features")]
        no_features: bool,
        /// Remove the end date.
        #[arg(long, conflicts_with = "expires_at")]
        no_expiry: bool,
    },
    /// Suspend a license: its tokens stop validating at once.
    Suspend(StatusArgs),
    /// Reinstate a suspended license.
    Reinstate(StatusArgs),
    /// Revoke a license, for good.
    Revoke(StatusArgs),
}

#[derive(Debug, clap::Args)]
struct StatusArgs {
    /// License id (lic_...).
    id: String,
    /// Why, for the audit trail.
    #[arg(long)]
    reason: Option<String>,
}

#[derive(Debug, clap::Subcommand)]
enum SessionCommand {
    /// List a license's sessions, newest first.
    List {
        /// License id (lic_...).
        license_id: String,
        /// Which sessions.
        #[arg(long, value_parser = ["live", "ended", "all"], default_value = "live")]
        status: String,
        #[command(flatten)]
        page: Page,
    },
    /// Force-release a session: its seat is free and its tokens stop validating at once.
    Release {
        /// Session id (ses_...).
        session_id: String,
    },
}

#[derive(Debug, clap::Subcommand)]
enum AuditCommand {
    /// A license's events.
    License {
        /// License id (lic_...).
        id: String,
        #[command(flatten)]
        page: Page,
    },
    /// An organization's events.
    Org {
        /// Organization id (org_...).
        id: String,
        #[command(flatten)]
        page: Page,
    },
}

/// The range of a usage report.
#[derive(Debug, clap::Args)]
struct UsageRange {
    /// Start (RFC 3339, taken down to its hour); default: 7 days before `--to`.
    #[arg(long)]
    from: Option<String>,
    /// End (RFC 3339, taken up to the next hour); default: the end of the current hour.
    #[arg(long)]
    to: Option<String>,
}

impl UsageRange {
    fn params(&self) -> [(&'static str, Option<String>); 2] {
        [("from", self.from.clone()), ("to", self.to.clone())]
    }
}

#[derive(Debug, clap::Subcommand)]
enum UsageCommand {
    /// A license's usage.
    License {
        /// License id (lic_...).
        id: String,
        #[command(flatten)]
        range: UsageRange,
    },
    /// An organization's usage, over all its licenses.
    Org {
        /// Organization id (org_...).
        id: String,
        #[command(flatten)]
        range: UsageRange,
    },
}

#[derive(Debug, clap::Subcommand)]
enum KvCommand {
    /// Rewrite the edge read model from PostgreSQL (after the key-value store lost its data).
    Rebuild,
    /// Delete the entries no token can use any more (calls the sweep until nothing is left).
    Sweep,
}

/// The most calls one `kv sweep` or `prune` makes (each handles a bounded batch).
const MAX_REPEATED_CALLS: u32 = 10_000;

const LICENSE_COLUMNS: &[(&str, &str)] = &[
    ("ID", "id"),
    ("STATUS", "status"),
    ("PRODUCT", "product_code"),
    ("PLAN", "plan"),
    ("SEATS", "max_seats"),
    ("EXPIRES", "expires_at"),
];
const LICENSE_FIELDS: &[&str] = &[
    "id",
    "status",
    "organization_id",
    "product_id",
    "product_code",
    "plan",
    "max_seats",
    "active_seats",
    "free_seats",
    "features",
    "expires_at",
    "lease_seconds",
    "max_borrow_seconds",
    "rate_limit_per_minute",
    "created_at",
    "updated_at",
];
const SESSION_COLUMNS: &[(&str, &str)] = &[
    ("ID", "id"),
    ("LIVE", "live"),
    ("STARTED", "started_at"),
    ("EXPIRES", "expires_at"),
    ("ENDED", "ended_at"),
    ("REASON", "end_reason"),
    ("USER AGENT", "user_agent"),
];

/// What one command asks of the API and how its answer is shown.
struct Call {
    method: &'static str,
    path: String,
    body: Option<Value>,
    show: fn(&Value) -> String,
    /// Call again while the answer says `"more": true` (the sweep, the prune), adding up the
    /// answers' counts.
    repeat: bool,
}

fn call(
    method: &'static str,
    path: String,
    body: Option<Value>,
    show: fn(&Value) -> String,
) -> Call {
    Call {
        method,
        path,
        body,
        show,
        repeat: false,
    }
}

const A: &str = "/api/v1/admin";

fn show_org(v: &Value) -> String {
    details(v, &["id", "name", "created_at"])
}

fn show_product(v: &Value) -> String {
    details(v, &["id", "organization_id", "code", "name", "created_at"])
}

fn show_license(v: &Value) -> String {
    let mut out = details(v, LICENSE_FIELDS);
    if let Some(sessions) = v["sessions"].as_array() {
        out.push_str("\nlive sessions:\n");
        out.push_str(&table(SESSION_COLUMNS, sessions));
    }
    out
}

fn show_created_license(v: &Value) -> String {
    format!(
        "license key (shown this once; store it now): {}\n\n{}",
        v["license_key"].as_str().unwrap_or("?"),
        show_license(v)
    )
}

fn show_status_change(v: &Value) -> String {
    let (id, status) = (
        v["id"].as_str().unwrap_or("?"),
        v["status"].as_str().unwrap_or("?"),
    );
    if v["changed"] == json!(true) {
        format!("license {id} is now {status}\n")
    } else {
        format!("license {id} was already {status}\n")
    }
}

fn show_list(columns: &'static [(&'static str, &'static str)]) -> impl Fn(&Value) -> String {
    move |v| {
        let rows = v["data"].as_array().cloned().unwrap_or_default();
        let mut out = table(columns, &rows);
        if let Some(next) = v["next_cursor"].as_str() {
            out.push_str(&format!("(more: --cursor {next})\n"));
        }
        out
    }
}

const KEY_FIELDS: &[&str] = &[
    "id",
    "organization_id",
    "prefix",
    "name",
    "role",
    "created_at",
    "created_by",
    "last_used_at",
    "revoked_at",
];

fn show_key(v: &Value) -> String {
    let mut out = details(v, KEY_FIELDS);
    if let Some(key) = v["key"].as_str() {
        out.push_str(&format!(
            "\nkey: {key}\nThis is the only time the key is shown; store it now.\n"
        ));
    }
    out
}

fn show_keys(v: &Value) -> String {
    show_list(&[
        ("ID", "id"),
        ("PREFIX", "prefix"),
        ("NAME", "name"),
        ("ROLE", "role"),
        ("CREATED", "created_at"),
        ("LAST USED", "last_used_at"),
        ("REVOKED", "revoked_at"),
    ])(v)
}

fn show_orgs(v: &Value) -> String {
    show_list(&[("ID", "id"), ("NAME", "name"), ("CREATED", "created_at")])(v)
}

fn show_products(v: &Value) -> String {
    show_list(&[
        ("ID", "id"),
        ("ORGANIZATION", "organization_id"),
        ("CODE", "code"),
        ("NAME", "name"),
    ])(v)
}

fn show_licenses(v: &Value) -> String {
    show_list(LICENSE_COLUMNS)(v)
}

fn show_sessions(v: &Value) -> String {
    show_list(SESSION_COLUMNS)(v)
}

fn show_events(v: &Value) -> String {
    show_list(&[
        ("ID", "id"),
        ("TIME", "occurred_at"),
        ("ACTOR", "actor"),
        ("ACTION", "action"),
        ("OUTCOME", "outcome"),
        ("SESSION", "session_id"),
    ])(v)
}

fn show_released(v: &Value) -> String {
    let id = v["session_id"].as_str().unwrap_or("?");
    match v["outcome"].as_str() {
        Some("released") => format!(
            "session {id} released (license {})\n",
            v["license_id"].as_str().unwrap_or("?")
        ),
        _ => format!(
            "session {id} had already ended at {}\n",
            v["ended_at"].as_str().unwrap_or("?")
        ),
    }
}

fn show_prune(v: &Value) -> String {
    format!(
        "deleted {} sessions and {} audit events in {} calls{}\n",
        v["sessions_deleted"],
        v["audit_events_deleted"],
        v["calls"],
        if v["more"] == true {
            "; more are waiting (run it again)"
        } else {
            ""
        }
    )
}

fn show_sweep(v: &Value) -> String {
    format!(
        "swept the entries of {} sessions in {} calls{}\n",
        v["sessions_swept"],
        v["calls"],
        if v["more"] == true {
            "; more are waiting (run it again)"
        } else {
            ""
        }
    )
}

fn show_rebuild(v: &Value) -> String {
    format!(
        "wrote {} entries: {} licenses, {} ended sessions ({} licenses rechecked)\n",
        v["entries_written"], v["licenses_written"], v["sessions_written"], v["licenses_rechecked"]
    )
}

fn plan(command: Command) -> Call {
    match command {
        Command::Org(OrgCommand::Create { name }) => call(
            "POST",
            format!("{A}/organizations"),
            Some(json!({ "name": name })),
            show_org,
        ),
        Command::Org(OrgCommand::List { page }) => call(
            "GET",
            with_query(&format!("{A}/organizations"), &page.params()),
            None,
            show_orgs,
        ),
        Command::Org(OrgCommand::Get { id }) => {
            call("GET", format!("{A}/organizations/{id}"), None, show_org)
        }
        Command::Product(ProductCommand::Create {
            organization_id,
            code,
            name,
        }) => call(
            "POST",
            format!("{A}/products"),
            Some(json!({ "organization_id": organization_id, "code": code, "name": name })),
            show_product,
        ),
        Command::Product(ProductCommand::List {
            organization_id,
            page,
        }) => {
            let [limit, cursor] = page.params();
            let query = [("organization_id", organization_id), limit, cursor];
            call(
                "GET",
                with_query(&format!("{A}/products"), &query),
                None,
                show_products,
            )
        }
        Command::Product(ProductCommand::Get { id }) => {
            call("GET", format!("{A}/products/{id}"), None, show_product)
        }
        Command::License(LicenseCommand::Create { product_id, terms }) => {
            let mut body = Map::new();
            body.insert("product_id".into(), product_id.into());
            terms.into_body(&mut body);
            call(
                "POST",
                format!("{A}/licenses"),
                Some(Value::Object(body)),
                show_created_license,
            )
        }
        Command::License(LicenseCommand::List {
            organization_id,
            product_id,
            status,
            page,
        }) => {
            let [limit, cursor] = page.params();
            let query = [
                ("organization_id", organization_id),
                ("product_id", product_id),
                ("status", status),
                limit,
                cursor,
            ];
            call(
                "GET",
                with_query(&format!("{A}/licenses"), &query),
                None,
                show_licenses,
            )
        }
        Command::License(LicenseCommand::Get { id }) => {
            call("GET", format!("{A}/licenses/{id}"), None, show_license)
        }
        Command::License(LicenseCommand::Update {
            id,
            terms,
            no_features,
            no_expiry,
        }) => {
            let mut body = Map::new();
            terms.into_body(&mut body);
            if no_features {
                body.insert("features".into(), json!([]));
            }
            if no_expiry {
                body.insert("expires_at".into(), Value::Null);
            }
            call(
                "PATCH",
                format!("{A}/licenses/{id}"),
                Some(Value::Object(body)),
                show_license,
            )
        }
        Command::License(LicenseCommand::Suspend(a)) => status_change("suspend", a),
        Command::License(LicenseCommand::Reinstate(a)) => status_change("reinstate", a),
        Command::License(LicenseCommand::Revoke(a)) => status_change("revoke", a),
        Command::Session(SessionCommand::List {
            license_id,
            status,
            page,
        }) => {
            let [limit, cursor] = page.params();
            let query = [("status", Some(status)), limit, cursor];
            call(
                "GET",
                with_query(&format!("{A}/licenses/{license_id}/sessions"), &query),
                None,
                show_sessions,
            )
        }
        Command::Session(SessionCommand::Release { session_id }) => call(
            "DELETE",
            format!("{A}/sessions/{session_id}"),
            None,
            show_released,
        ),
        Command::Audit(AuditCommand::License { id, page }) => call(
            "GET",
            with_query(&format!("{A}/licenses/{id}/audit-events"), &page.params()),
            None,
            show_events,
        ),
        Command::Audit(AuditCommand::Org { id, page }) => call(
            "GET",
            with_query(
                &format!("{A}/organizations/{id}/audit-events"),
                &page.params(),
            ),
            None,
            show_events,
        ),
        Command::Usage(UsageCommand::License { id, range }) => call(
            "GET",
            with_query(&format!("{A}/licenses/{id}/usage"), &range.params()),
            None,
            crate::usage_chart::show_usage,
        ),
        Command::Usage(UsageCommand::Org { id, range }) => call(
            "GET",
            with_query(&format!("{A}/organizations/{id}/usage"), &range.params()),
            None,
            crate::usage_chart::show_usage,
        ),
        Command::Keys(KeysCommand::Create {
            organization_id,
            name,
            role,
        }) => call(
            "POST",
            format!("{A}/organizations/{organization_id}/keys"),
            Some(json!({ "name": name, "role": role })),
            show_key,
        ),
        Command::Keys(KeysCommand::List {
            organization_id,
            page,
        }) => call(
            "GET",
            with_query(
                &format!("{A}/organizations/{organization_id}/keys"),
                &page.params(),
            ),
            None,
            show_keys,
        ),
        Command::Keys(KeysCommand::Revoke { key_id }) => {
            call("DELETE", format!("{A}/keys/{key_id}"), None, show_key)
        }
        Command::Kv(KvCommand::Rebuild) => {
            call("POST", format!("{A}/kv/rebuild"), None, show_rebuild)
        }
        Command::Kv(KvCommand::Sweep) => Call {
            repeat: true,
            ..call("POST", format!("{A}/kv/sweep"), None, show_sweep)
        },
        Command::Prune {
            sessions_older_than_days,
            audit_older_than_days,
        } => Call {
            repeat: true,
            ..call(
                "POST",
                format!("{A}/prune"),
                Some(json!({
                    "sessions_older_than_days": sessions_older_than_days,
                    "audit_older_than_days": audit_older_than_days,
                })),
                show_prune,
            )
        },
        // Invariant: run() handles quickstart (three calls) before it plans a single call.
        Command::Quickstart(_) => unreachable!("quickstart is not a single call"),
    }
}

fn status_change(action: &str, args: StatusArgs) -> Call {
    let body = args.reason.map(|r| json!({ "reason": r }));
    call(
        "POST",
        format!("{A}/licenses/{}/{action}", args.id),
        body,
        show_status_change,
    )
}

/// Runs the subcommand.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let url = args.url.ok_or_else(|| {
        anyhow::anyhow!("give --url (or set LICENSE_EDGE_URL) to the app's origin")
    })?;
    let command = match args.command {
        Command::Quickstart(quick) => {
            return crate::quickstart::run(&url, args.json, quick).or_else(refused_exit)
        }
        other => other,
    };
    let client = Client::from_env(&url)?;
    let Call {
        method,
        path,
        body,
        show,
        repeat,
    } = plan(command);
    let answer = client
        .call(method, &path, body.as_ref())
        .and_then(|mut answer| {
            if repeat {
                let mut totals = answer.clone();
                let mut calls = 1;
                while answer["more"] == true && calls < MAX_REPEATED_CALLS {
                    answer = client.call(method, &path, body.as_ref())?;
                    for (name, n) in answer.as_object().into_iter().flatten() {
                        if let (Some(n), Some(total)) = (n.as_u64(), totals[name].as_u64()) {
                            totals[name] = json!(total + n);
                        }
                    }
                    totals["more"] = answer["more"].clone();
                    calls += 1;
                }
                answer = totals;
                answer["calls"] = json!(calls);
            }
            Ok(answer)
        });
    match answer {
        Ok(answer) => {
            if args.json {
                println!("{}", serde_json::to_string_pretty(&answer)?);
            } else {
                print!("{}", show(&answer));
            }
            for warning in answer["warnings"].as_array().into_iter().flatten() {
                eprintln!(
                    "licensectl: warning: {}",
                    warning.as_str().unwrap_or_default()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => refused_exit(e),
    }
}

/// A refusal by the API exits 1 with its status, code and message on stderr; any other error
/// stays an error (exit 2).
fn refused_exit(e: anyhow::Error) -> anyhow::Result<ExitCode> {
    match e.downcast::<Refused>() {
        Ok(refused) => {
            eprintln!("licensectl: refused: {refused}");
            Ok(ExitCode::from(crate::EXIT_REFUSED))
        }
        Err(other) => Err(other),
    }
}
