//! The real Prometheus and Alertmanager tools (`promtool`, `amtool`), run from the repository
//! root. A missing tool fails the test with how to install it; it never skips.

use super::files::repo;
use std::io::{ErrorKind, Write};
use std::process::{Command, Stdio};

const INSTALL_HINT: &str =
    "install the Debian packages `prometheus` and `prometheus-alertmanager` \
     (apt-get install prometheus prometheus-alertmanager; scripts/test.sh does), which \
     provide promtool and amtool";

/// What a tool printed.
pub struct Printed {
    pub stdout: String,
    pub stderr: String,
}

/// Runs `program` with `args`, feeding it `input`; fails with its whole output unless it
/// succeeds.
pub fn run_tool(program: &str, args: &[&str], input: Option<&str>) -> Printed {
    let mut child = Command::new(program)
        .args(args)
        .current_dir(repo())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            if e.kind() == ErrorKind::NotFound {
                panic!("`{program}` is not installed or not on PATH: {INSTALL_HINT}")
            }
            panic!("cannot run `{program}`: {e}")
        });
    let mut stdin = child.stdin.take().unwrap();
    if let Some(text) = input {
        stdin.write_all(text.as_bytes()).unwrap();
    }
    drop(stdin);
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        output.status.success(),
        "`{program} {}` failed ({})\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}\n--- input ---\n{}",
        args.join(" "),
        output.status,
        input.unwrap_or("")
    );
    Printed { stdout, stderr }
}
