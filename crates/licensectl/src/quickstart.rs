//! `licensectl admin quickstart`: a first license on a running app in one step.
//!
//! It creates an organization, a product and a license through the admin API (three calls, the
//! same ones `org create`, `product create` and `license create` make) and prints the license
//! key with the shell lines that sell a seat (`acquire`) and check its token (`validate`), the
//! app's URL, the key and the machine id filled in, so they can be pasted as they are. It sells
//! no seat itself.

use std::process::ExitCode;

use serde_json::{json, Value};

use crate::admin_http::Client;

/// Arguments of `licensectl admin quickstart`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The organization's name.
    #[arg(long, default_value = "Acme")]
    org_name: String,
    /// The product's code (tokens name the product `{organization_id}/{code}` in their audience).
    #[arg(long, default_value = "cad-pro")]
    product_code: String,
    /// The product's display name.
    #[arg(long, default_value = "CAD Pro")]
    product_name: String,
    /// The license's seat limit.
    #[arg(long, default_value_t = 2)]
    max_seats: i64,
    /// The machine id the printed lines acquire and validate for (letters, digits, `.`, `_`,
    /// `-`).
    #[arg(long, default_value = "laptop-1", value_parser = machine_id)]
    machine_id: String,
}

fn machine_id(s: &str) -> Result<String, String> {
    let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if !s.is_empty() && s.len() <= 64 && s.chars().all(plain) {
        Ok(s.to_owned())
    } else {
        Err("1 to 64 letters, digits, '.', '_' or '-' (it is printed inside shell lines)".into())
    }
}

/// Quotes `s` for a POSIX shell (single quotes; a `'` becomes `'\''`).
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// `s` as one shell word: as it is when it holds nothing a shell would expand or split.
fn shell_word(s: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._-+:@%=,".contains(c);
    if !s.is_empty() && s.chars().all(plain) {
        s.to_owned()
    } else {
        shell_quote(s)
    }
}

/// The line that acquires a seat and keeps the license token in `$TOKEN` (the answer is shown
/// on stderr as it passes).
fn acquire_line(base: &str, key: &str, machine: &str) -> String {
    format!(
        "TOKEN=\"$(curl -s -X POST {url} -H {auth} -H 'content-type: application/json' -d {body} \
         | tee /dev/stderr | sed -n 's/.*\"license_token\":\"\\([^\"]*\\)\".*/\\1/p')\"",
        url = shell_quote(&format!("{base}/api/v1/licenses/acquire/")),
        auth = shell_quote(&format!("authorization: Bearer {key}")),
        body = shell_quote(&json!({ "machine_id": machine }).to_string()),
    )
}

/// The line that validates `$TOKEN` for the machine.
fn validate_line(base: &str, machine: &str) -> String {
    format!(
        "curl -s -X POST {url} -H 'content-type: application/json' \
         -d \"{{\\\"token\\\": \\\"$TOKEN\\\", \\\"machine_id\\\": \\\"{machine}\\\"}}\"",
        url = shell_quote(&format!("{base}/api/v1/licenses/validate/")),
    )
}

/// Runs the quickstart against `url` with the admin token from the environment.
pub fn run(url: &str, json_output: bool, args: Args) -> anyhow::Result<ExitCode> {
    let client = Client::from_env(url)?;
    let base = url.trim_end_matches('/');
    let org = client.call(
        "POST",
        "/api/v1/admin/organizations",
        Some(&json!({ "name": args.org_name })),
    )?;
    let product = client.call(
        "POST",
        "/api/v1/admin/products",
        Some(&json!({
            "organization_id": org["id"],
            "code": args.product_code,
            "name": args.product_name,
        })),
    )?;
    let license = client.call(
        "POST",
        "/api/v1/admin/licenses",
        Some(&json!({ "product_id": product["id"], "max_seats": args.max_seats })),
    )?;
    let text = |v: &Value, k: &str| v[k].as_str().unwrap_or("?").to_owned();
    let key = text(&license, "license_key");
    let acquire = acquire_line(base, &key, &args.machine_id);
    let validate = validate_line(base, &args.machine_id);
    if json_output {
        let all = json!({
            "organization": org,
            "product": product,
            "license": license,
            "acquire": acquire,
            "validate": validate,
        });
        println!("{}", serde_json::to_string_pretty(&all)?);
        return Ok(ExitCode::SUCCESS);
    }
    let license_id = text(&license, "id");
    println!(
        "Created on {base}:\n  \
         organization  {org_id}  {org_name}\n  \
         product       {product_id}  {code} ({product_name})\n  \
         license       {license_id}  {seats} seats\n  \
         license key   {key}  (shown this once: only its hash is stored)\n\n\
         Sell a seat to {machine} (the answer is a 201 with a license_token, kept in $TOKEN):\n\n\
         {acquire}\n\n\
         Check that token ({{\"valid\":true,\"code\":\"VALID\",...}}):\n\n\
         {validate}\n\n\
         Suspend the license, and the same check answers LICENSE_SUSPENDED \
         (with {token_env} set):\n\n\
         {exe} admin --url {base} license suspend {license_id}",
        org_id = text(&org, "id"),
        org_name = text(&org, "name"),
        product_id = text(&product, "id"),
        code = text(&product, "code"),
        product_name = text(&product, "name"),
        seats = license["max_seats"],
        machine = args.machine_id,
        token_env = crate::admin_http::TOKEN_ENV,
        exe = std::env::current_exe()
            .ok()
            .and_then(|p| p.to_str().map(shell_word))
            .unwrap_or_else(|| "licensectl".into()),
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machine_ids_are_plain_words() {
        assert!(machine_id("laptop-1").is_ok());
        assert!(machine_id("a.b_c-D9").is_ok());
        for bad in ["", "a b", "it's", "x\"y", "$(rm)", &"x".repeat(65)] {
            assert!(machine_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn lines_quote_what_the_shell_would_expand() {
        assert_eq!(shell_quote("a'b"), r"'a'\''b'");
        assert_eq!(shell_word("/usr/bin/licensectl"), "/usr/bin/licensectl");
        assert_eq!(shell_word("/my dir/licensectl"), "'/my dir/licensectl'");
        let line = acquire_line("http://127.0.0.1:3000", "LE-ABC", "laptop-1");
        assert!(line.starts_with(
            "TOKEN=\"$(curl -s -X POST 'http://127.0.0.1:3000/api/v1/licenses/acquire/' \
             -H 'authorization: Bearer LE-ABC' -H 'content-type: application/json' \
             -d '{\"machine_id\":\"laptop-1\"}' | tee /dev/stderr | sed -n "
        ));
        assert_eq!(
            validate_line("http://127.0.0.1:3000", "laptop-1"),
            "curl -s -X POST 'http://127.0.0.1:3000/api/v1/licenses/validate/' \
             -H 'content-type: application/json' \
             -d \"{\\\"token\\\": \\\"$TOKEN\\\", \\\"machine_id\\\": \\\"laptop-1\\\"}\""
        );
    }
}
