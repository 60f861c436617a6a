//! A real PostgreSQL for one test: Debian's binaries (the newest /usr/lib/postgresql/*/bin),
//! a fresh cluster in a temporary directory on a free loopback port, run as an unprivileged
//! user (PostgreSQL refuses to run as root: as root the harness runs it as `rollbackd-test`,
//! created when missing). Stopped at once when dropped. A missing PostgreSQL fails the test:
//! scripts/test.sh installs it.

use super::stack::free_port;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

/// The unprivileged user the server runs as when the tests run as root.
pub const USER: &str = "rollbackd-test";

/// The newest installed PostgreSQL's bin directory.
pub fn bin_dir() -> PathBuf {
    let mut dirs: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    dirs.sort();
    dirs.pop().map(|(_, bin)| bin).expect(
        "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): scripts/test.sh installs it with apt-get install postgresql",
    )
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn check(what: &str, out: std::io::Result<Output>) -> Output {
    let out = out.unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Creates the unprivileged user once, when running as root.
fn ensure_user() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let exists = Command::new("id")
            .arg("-u")
            .arg(USER)
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if !exists {
            let out = Command::new("useradd")
                .args([
                    "--system",
                    "--no-create-home",
                    "--shell",
                    "/usr/sbin/nologin",
                    USER,
                ])
                .output();
            // Another test binary may have created it meanwhile.
            let raced = Command::new("id").arg("-u").arg(USER).output();
            if !raced.map(|o| o.status.success()).unwrap_or(false) {
                check("useradd rollbackd-test", out);
            }
        }
    });
}

/// A server cluster of its own, on `127.0.0.1:port`, user `postgres` trusted.
pub struct Postgres {
    pub port: u16,
    bin: PathBuf,
    root: bool,
    dir: tempfile::TempDir,
}

impl Postgres {
    /// initdb and start; returns once it takes connections.
    pub fn start() -> Postgres {
        let bin = bin_dir();
        let root = is_root();
        let dir = tempfile::tempdir().unwrap();
        if root {
            ensure_user();
            check(
                "chown the cluster directory",
                Command::new("chown")
                    .args(["-R", &format!("{USER}:")])
                    .arg(dir.path())
                    .output(),
            );
        }
        let pg = Postgres {
            port: free_port(),
            bin,
            root,
            dir,
        };
        check(
            "initdb",
            pg.tool("initdb")
                .arg("-D")
                .arg(pg.data())
                .args([
                    "-U",
                    "postgres",
                    "-A",
                    "trust",
                    "-E",
                    "UTF8",
                    "--locale=C",
                    "--no-sync",
                ])
                .output(),
        );
        pg.up();
        pg
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn log(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    /// A PostgreSQL program, run as the unprivileged user when this is root.
    fn tool(&self, name: &str) -> Command {
        let program = self.bin.join(name);
        if self.root {
            let mut c = Command::new("runuser");
            c.args(["-u", USER, "--"]).arg(program);
            c
        } else {
            Command::new(program)
        }
    }

    /// Starts the server (again) on the same port and data; waits until it takes connections.
    pub fn up(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=200",
            self.port,
            self.dir.path().display()
        );
        check(
            "pg_ctl start",
            self.tool("pg_ctl")
                .arg("-D")
                .arg(self.data())
                .arg("-l")
                .arg(self.log())
                .args(["-w", "-t", "30", "-o", &options, "start"])
                .output(),
        );
    }

    /// Stops the server: `fast` ends the sessions and checkpoints, as a restart does.
    pub fn down(&self) {
        check(
            "pg_ctl stop",
            self.tool("pg_ctl")
                .arg("-D")
                .arg(self.data())
                .args(["-w", "-t", "30", "-m", "fast", "stop"])
                .output(),
        );
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Runs SQL through psql; Ok(stdout) or Err(stderr).
    pub fn sql(&self, sql: &str) -> Result<String, String> {
        let out = Command::new(self.bin.join("psql"))
            .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1"])
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-c",
                sql,
            ])
            .output()
            .unwrap();
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
        }
    }

    /// The storage section selecting this database.
    pub fn storage_yaml(&self) -> String {
        format!(
            "storage: {{ postgres: {{ url: \"{}\", pool_size: 8, statement_timeout: 5s }} }}\n",
            self.url()
        )
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self
            .tool("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "stop"])
            .output();
        // Give the server a moment to leave before its directory goes.
        std::thread::sleep(Duration::from_millis(50));
    }
}
