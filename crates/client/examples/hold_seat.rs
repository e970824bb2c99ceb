//! The smallest complete program that holds a seat (README.md, "Use it from your program"):
//!
//!     CAD_PRO_LICENSE_KEY=LE-... cargo run -p license-edge-client --example hold_seat -- https://licenses.example.com

use license_edge_client::{machine, Config, Seat};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = std::env::args()
        .nth(1)
        .unwrap_or("https://licenses.example.com".into());
    let key = std::env::var("CAD_PRO_LICENSE_KEY")?;
    let config = Config::new(server, key, "org_4f2c…/cad-pro", machine::fingerprint()?)
        .with_cache_dir(".cad-pro-license");
    let seat = Seat::acquire(config)?; // 409, 403, 429: typed errors with the server's details
    println!(
        "plan {:?}, features {:?}",
        seat.claims().plan,
        seat.claims().features
    );
    for _ in 0..10 {
        if !seat.is_licensed() {
            return Err("the license lapsed".into());
        }
        std::thread::sleep(std::time::Duration::from_secs(1)); // the program's work
    }
    Ok(()) // dropping the seat releases it
}
