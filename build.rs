//! Stamps the binary with the source revision it was built from, for `rollbackd_build_info`:
//! `ROLLBACKD_REVISION` when set (a container build without `.git`), else git's short commit
//! id, else "unknown".

use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=ROLLBACKD_REVISION");
    for watched in [".git/HEAD", ".git/index"] {
        if Path::new(watched).exists() {
            println!("cargo:rerun-if-changed={watched}");
        }
    }
    let revision = std::env::var("ROLLBACKD_REVISION")
        .ok()
        .filter(|r| !r.trim().is_empty())
        .or_else(|| {
            let out = Command::new("git")
                .args(["rev-parse", "--short=12", "HEAD"])
                .output()
                .ok()?;
            out.status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=ROLLBACKD_REVISION={revision}");
}
