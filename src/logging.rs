//! Logs on stderr, the Prometheus exporters' way: `--log.level` and `--log.format logfmt|json`,
//! with `RUST_LOG` winning when set. Colour only on a terminal, never escape codes in a file.

use clap::ValueEnum;
use std::fmt;
use std::io::IsTerminal;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

impl LogLevel {
    fn as_str(self) -> &'static str {
        match self {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// key=value pairs, one event a line.
    Logfmt,
    /// One JSON object a line.
    Json,
}

/// The logging flags of the long-running commands (serve, simulate, demo).
#[derive(clap::Args, Debug, Clone)]
pub struct LogArgs {
    /// Log events at this level and above (the default depends on the command). RUST_LOG, when
    /// set, wins (e.g. RUST_LOG=rollbackd=debug,tower_http=warn).
    #[arg(long = "log.level", value_enum, value_name = "LEVEL")]
    pub level: Option<LogLevel>,
    /// How log lines on stderr are written.
    #[arg(
        long = "log.format",
        value_enum,
        default_value = "logfmt",
        value_name = "FORMAT"
    )]
    pub format: LogFormat,
}

/// Installs the global subscriber; `default` applies without `--log.level` and `RUST_LOG`.
pub fn init(args: &LogArgs, default: LogLevel) {
    let level = args.level.unwrap_or(default);
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level.as_str()));
    let ansi = std::io::stderr().is_terminal();
    // A failed write loses the line and nothing else: the fallback report of the failure goes
    // through `eprintln!`, which panics when stderr is gone (its reader died: EPIPE), and so
    // would end whichever task logged, a rollback or the shutdown handler among them.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .log_internal_errors(false);
    match args.format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .init(),
        LogFormat::Logfmt => builder.event_format(Logfmt { ansi }).init(),
    }
}

/// logfmt lines: `ts=... level=info target=rollbackd msg="..." key=value ...`.
pub struct Logfmt {
    /// Colour the level (only when writing to a terminal).
    pub ansi: bool,
}

impl<S, N> FormatEvent<S, N> for Logfmt
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let ts = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        write!(
            w,
            "ts={ts} level={} target={}",
            self.level(*meta.level()),
            meta.target()
        )?;
        if let Some(scope) = ctx.event_scope() {
            let spans: Vec<&str> = scope.from_root().map(|s| s.name()).collect();
            if !spans.is_empty() {
                write!(w, " span={}", quote(&spans.join(":")))?;
            }
        }
        let mut fields = Fields(String::new());
        event.record(&mut fields);
        writeln!(w, "{}", fields.0)
    }
}

impl Logfmt {
    fn level(&self, level: Level) -> String {
        let name = level.as_str().to_ascii_lowercase();
        if !self.ansi {
            return name;
        }
        let colour = match level {
            Level::ERROR => "31",
            Level::WARN => "33",
            Level::INFO => "32",
            _ => "2",
        };
        format!("\x1b[{colour}m{name}\x1b[0m")
    }
}

/// The event's fields as ` key=value` pairs; `message` becomes `msg`.
struct Fields(String);

impl Fields {
    fn push(&mut self, field: &Field, value: &str) {
        let key = match field.name() {
            "message" => "msg",
            other => other,
        };
        self.0.push(' ');
        self.0.push_str(key);
        self.0.push('=');
        self.0.push_str(&quote(value));
    }
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.push(field, value);
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.push(field, &format!("{value:?}"));
    }
}

/// A logfmt value: bare when it can be, else double-quoted with `\` escapes.
pub fn quote(value: &str) -> String {
    let bare = !value.is_empty()
        && value
            .chars()
            .all(|c| c > ' ' && c != '"' && c != '=' && c != '\\' && !c.is_control());
    if bare {
        return value.to_owned();
    }
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:04x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_quoted_only_when_needed() {
        assert_eq!(quote("127.0.0.1:9100"), "127.0.0.1:9100");
        assert_eq!(quote("rollbackd serving"), "\"rollbackd serving\"");
        assert_eq!(quote(""), "\"\"");
        assert_eq!(quote("a=b"), "\"a=b\"");
        assert_eq!(quote("say \"hi\"\n"), "\"say \\\"hi\\\"\\n\"");
        assert_eq!(quote("\x1b[31m"), "\"\\u{001b}[31m\"");
    }
}
