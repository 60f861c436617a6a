//! The integration tests, one binary: the daemon end to end through its API, stream, metrics,
//! CLI and console; the daemon as a process; the real alerting loop; the shipped files.

mod harness;
