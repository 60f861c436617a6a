//! Reading a condition's history from Prometheus: `query_range` in chunks of at most
//! [`MAX_POINTS`] points (Prometheus refuses more per series), each chunk parsed and handed on
//! point by point before the next is asked for, so memory holds one chunk at a time.

use crate::exit::Exit;
use crate::tls::ClientTls;
use crate::transport::{Transport, TransportError};
use axum::http::Method;
use serde::Deserialize;
use std::time::Duration;

/// Prometheus's own limit: "exceeded maximum resolution of 11,000 points per timeseries".
pub const MAX_POINTS: u64 = 11_000;
/// One chunk's answer may take this long.
const TIMEOUT: Duration = Duration::from_secs(60);

/// Why a range could not be read, and the exit code it means.
#[derive(Debug, Clone, PartialEq)]
pub struct PromError {
    pub exit: Exit,
    pub message: String,
}

/// A Prometheus server's HTTP API.
#[derive(Clone)]
pub struct Prometheus {
    http: Transport,
    base: String,
}

/// The half-open time range `[start_ms, end_ms]` at `step_ms`, split into chunks Prometheus
/// accepts: each at most `MAX_POINTS` points, the next starting one step after the last.
pub fn chunks(start_ms: u64, end_ms: u64, step_ms: u64) -> impl Iterator<Item = (u64, u64)> {
    let step = step_ms.max(1);
    let span = step * (MAX_POINTS - 1);
    let mut from = Some(start_ms).filter(|s| *s <= end_ms);
    std::iter::from_fn(move || {
        let f = from?;
        let to = (f + span).min(end_ms);
        from = Some(to + step).filter(|n| *n <= end_ms);
        Some((f, to))
    })
}

/// Seconds with milliseconds, as Prometheus takes times and steps.
fn seconds(ms: u64) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

/// A PromQL string literal.
pub fn quoted(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[derive(Deserialize)]
struct Reply<'a> {
    status: &'a str,
    #[serde(borrow)]
    data: Option<Data<'a>>,
    #[serde(rename = "errorType")]
    error_type: Option<String>,
    error: Option<String>,
}

#[derive(Deserialize)]
struct Data<'a> {
    #[serde(rename = "resultType")]
    result_type: &'a str,
    #[serde(borrow)]
    result: Vec<Series<'a>>,
}

#[derive(Deserialize)]
struct Series<'a> {
    #[serde(borrow)]
    values: Vec<(f64, &'a str)>,
}

/// Parses a `query_range` answer and hands each point (Unix milliseconds, the value; `None`
/// when it is not a number) to `point`, series after series. Returns how many points there
/// were.
pub fn parse_matrix(body: &[u8], mut point: impl FnMut(u64, Option<f64>)) -> Result<u64, String> {
    let reply: Reply<'_> = serde_json::from_slice(body).map_err(|e| {
        let start = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
        format!("not a Prometheus API answer ({e}): {start}")
    })?;
    if reply.status != "success" {
        return Err(format!(
            "{}: {}",
            reply.error_type.as_deref().unwrap_or("error"),
            reply.error.as_deref().unwrap_or("(no message)")
        ));
    }
    let data = reply.data.ok_or("a success without data")?;
    if data.result_type != "matrix" {
        return Err(format!("expected a matrix, got {}", data.result_type));
    }
    let mut n = 0;
    for series in data.result {
        for (t, v) in series.values {
            point((t * 1000.0).round().max(0.0) as u64, v.parse::<f64>().ok());
            n += 1;
        }
    }
    Ok(n)
}

impl Prometheus {
    pub fn new(url: &str) -> Result<Prometheus, String> {
        let tls = ClientTls {
            ca: None,
            identity: None,
        };
        let http = Transport::new(url, &tls, Duration::from_secs(5))?;
        Ok(Prometheus {
            http,
            base: url.trim_end_matches('/').to_owned(),
        })
    }

    pub fn url(&self) -> &str {
        &self.base
    }

    /// One chunk of `query` from `start_ms` to `end_ms` at `step_ms`, each point handed to
    /// `point`; the number of points.
    pub async fn range(
        &self,
        query: &str,
        (start_ms, end_ms): (u64, u64),
        step_ms: u64,
        point: impl FnMut(u64, Option<f64>),
    ) -> Result<u64, PromError> {
        let mut url =
            reqwest::Url::parse(&format!("{}/api/v1/query_range", self.base)).map_err(|e| {
                PromError {
                    exit: Exit::Usage,
                    message: format!("--prometheus {:?} is not a URL: {e}", self.base),
                }
            })?;
        url.query_pairs_mut()
            .append_pair("query", query)
            .append_pair("start", &seconds(start_ms))
            .append_pair("end", &seconds(end_ms))
            .append_pair("step", &seconds(step_ms));
        let answer = self
            .http
            .send(Method::GET, url.as_str(), &[], None, TIMEOUT)
            .await
            .map_err(|e| PromError {
                exit: match e {
                    TransportError::TooLarge => Exit::Failed,
                    _ => Exit::Unreachable,
                },
                message: format!("cannot reach Prometheus at {}: {e}", self.base),
            })?;
        let status = answer.status.as_u16();
        let parsed = parse_matrix(&answer.body, point);
        match parsed {
            Ok(n) if answer.status.is_success() => Ok(n),
            Ok(_) => Err(self.refused(status, format!("status {status}"))),
            Err(why) => Err(self.refused(status, why)),
        }
    }

    fn refused(&self, status: u16, why: String) -> PromError {
        PromError {
            exit: match status {
                400 => Exit::Usage,
                503 => Exit::Unreachable,
                _ => Exit::Failed,
            },
            message: format!("Prometheus at {} answered {status}: {why}", self.base),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_the_range_without_overlap_and_within_the_limit() {
        let step = 1000;
        let end = 3 * MAX_POINTS * step + 500;
        let c: Vec<(u64, u64)> = chunks(0, end, step).collect();
        assert_eq!(c.len(), 4);
        for w in c.windows(2) {
            assert_eq!(w[1].0, w[0].1 + step, "the next starts one step on");
        }
        for (f, t) in &c {
            assert!((t - f) / step < MAX_POINTS, "at most MAX_POINTS points");
        }
        assert_eq!(c.last().unwrap().1, end);
        assert_eq!(chunks(5, 5, 1000).collect::<Vec<_>>(), vec![(5, 5)]);
        assert_eq!(chunks(6, 5, 1000).count(), 0);
    }

    #[test]
    fn a_matrix_is_read_point_by_point_and_not_a_number_is_unknown() {
        let body = br#"{"status":"success","data":{"resultType":"matrix","result":[
            {"metric":{},"values":[[1700000000,"5.5"],[1700000015.5,"NaN"],[1700000031,"x"]]}]}}"#;
        let mut got = vec![];
        let n = parse_matrix(body, |t, v| got.push((t, v))).unwrap();
        assert_eq!(n, 3);
        assert_eq!(got[0], (1_700_000_000_000, Some(5.5)));
        assert_eq!(got[1].0, 1_700_000_015_500);
        assert!(got[1].1.unwrap().is_nan());
        assert_eq!(got[2].1, None);
    }

    #[test]
    fn an_error_answer_says_what_prometheus_said() {
        let body = br#"{"status":"error","errorType":"bad_data","error":"exceeded maximum resolution of 11,000 points per timeseries"}"#;
        let e = parse_matrix(body, |_, _| {}).unwrap_err();
        assert!(e.contains("bad_data") && e.contains("11,000"), "{e}");
        assert!(parse_matrix(b"<html>", |_, _| {})
            .unwrap_err()
            .contains("not a Prometheus API answer"));
    }

    #[test]
    fn labels_are_quoted_for_promql() {
        assert_eq!(quoted("max_drawdown"), "\"max_drawdown\"");
        assert_eq!(quoted("a\"b\\"), "\"a\\\"b\\\\\"");
    }
}
