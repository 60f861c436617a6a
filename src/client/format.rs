//! Values rounded to what they mean, times as local short times and ages, durations in human
//! units. The clock is passed in so rendering is a pure function of its input.

use chrono::{DateTime, FixedOffset, Local, Utc};
use serde_json::Value;

/// Now, and the time zone times are shown in (`None`: the machine's local zone).
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    pub now: DateTime<Utc>,
    pub offset: Option<FixedOffset>,
}

impl Clock {
    pub fn system() -> Clock {
        Clock {
            now: Utc::now(),
            offset: None,
        }
    }

    /// `t` in the clock's zone: `14:03:12` today, `Nov 22 14:03` otherwise.
    fn local(&self, t: DateTime<Utc>) -> String {
        let (when, today) = match self.offset {
            Some(o) => (
                t.with_timezone(&o).naive_local(),
                self.now.with_timezone(&o).date_naive(),
            ),
            None => (
                t.with_timezone(&Local).naive_local(),
                self.now.with_timezone(&Local).date_naive(),
            ),
        };
        if when.date() == today {
            when.format("%H:%M:%S").to_string()
        } else {
            when.format("%b %d %H:%M").to_string()
        }
    }

    /// An RFC 3339 time as `14:03:12 (3m ago)`; `-` when absent, the text itself when unparsable.
    pub fn when(&self, v: Option<&Value>) -> String {
        let Some(text) = v.and_then(Value::as_str) else {
            return "-".into();
        };
        match DateTime::parse_from_rfc3339(text) {
            Ok(t) => {
                let t = t.with_timezone(&Utc);
                format!("{} ({})", self.local(t), self.age(t))
            }
            Err(_) => text.to_owned(),
        }
    }

    /// `3m ago`, `just now`, `in 5s` (a clock ahead of ours).
    pub fn age(&self, t: DateTime<Utc>) -> String {
        let secs = (self.now - t).num_milliseconds() as f64 / 1000.0;
        if secs < -1.0 {
            return format!("in {}", coarse(-secs));
        }
        if secs < 1.0 {
            return "just now".into();
        }
        format!("{} ago", coarse(secs))
    }
}

/// Seconds in the two largest units: `14m 59s`, `2h 5m`, `3d 4h`; `<1s` under a second.
pub fn duration(secs: f64) -> String {
    if !secs.is_finite() || secs <= 0.0 {
        return "0s".into();
    }
    if secs < 1.0 {
        return "<1s".into();
    }
    let s = secs.floor() as u64;
    let units = [(86_400, "d"), (3_600, "h"), (60, "m"), (1, "s")];
    let mut parts = Vec::new();
    let mut rest = s;
    for (size, name) in units {
        if rest >= size || !parts.is_empty() {
            parts.push(format!("{}{name}", rest / size));
            rest %= size;
        }
        if parts.len() == 2 {
            break;
        }
    }
    if parts.len() == 2 && parts[1].starts_with('0') {
        parts.pop();
    }
    parts.join(" ")
}

/// An age in its largest unit only: `3m`, `2h`, `45s`.
fn coarse(secs: f64) -> String {
    duration(secs).split(' ').next().unwrap_or("0s").to_owned()
}

/// Milliseconds: `850ms` under a second, `3.4s` under a minute, else `1m 3s`.
pub fn millis(ms: f64) -> String {
    if ms < 1000.0 {
        format!("{}ms", ms.round() as u64)
    } else if ms < 60_000.0 {
        format!("{:.1}s", ms / 1000.0)
    } else {
        duration(ms / 1000.0)
    }
}

/// A condition's value or threshold, rounded to what it means.
pub fn condition_value(condition: &str, v: Option<&Value>) -> String {
    let Some(x) = v.and_then(Value::as_f64) else {
        return "-".into();
    };
    match condition {
        "consecutive_losses" => format!("{}", x.round() as i64),
        "max_drawdown" => format!("{x:.2}%"),
        _ => format!("{x:.2}"),
    }
}

/// A validation score: whole numbers as such, else one decimal.
pub fn score(v: Option<&Value>) -> String {
    match v.and_then(Value::as_f64) {
        None => "-".into(),
        Some(x) if (x - x.round()).abs() < 0.05 => format!("{}", x.round() as i64),
        Some(x) => format!("{x:.1}"),
    }
}

/// A profile parameter map as `confidence_threshold 0.55, risk_reward_ratio 1.8`.
pub fn parameters(v: Option<&Value>) -> String {
    let Some(map) = v.and_then(Value::as_object) else {
        return "-".into();
    };
    if map.is_empty() {
        return "-".into();
    }
    map.iter()
        .map(|(k, v)| match v.as_f64() {
            Some(x) => format!("{k} {}", trim_float(x)),
            None => format!("{k} {}", text(Some(v))),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Up to four decimals, trailing zeros dropped: `0.55`, `1.8`, `2`.
pub fn trim_float(x: f64) -> String {
    let s = format!("{x:.4}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// A JSON value as plain text: strings bare, `-` for null or missing.
pub fn text(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "-".into(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// `yes` / `no` / `-`.
pub fn yes_no(v: Option<&Value>) -> &'static str {
    match v.and_then(Value::as_bool) {
        Some(true) => "yes",
        Some(false) => "no",
        None => "-",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn clock() -> Clock {
        Clock {
            now: "2026-11-23T10:06:15Z".parse().unwrap(),
            offset: Some(FixedOffset::east_opt(3600).unwrap()),
        }
    }

    #[test]
    fn durations_read_as_people_say_them() {
        assert_eq!(duration(899.944), "14m 59s");
        assert_eq!(duration(900.0), "15m");
        assert_eq!(duration(59.2), "59s");
        assert_eq!(duration(3_725.0), "1h 2m");
        assert_eq!(duration(90_000.0), "1d 1h");
        assert_eq!(duration(0.3), "<1s");
        assert_eq!(duration(0.0), "0s");
        assert_eq!(millis(12.0), "12ms");
        assert_eq!(millis(3_420.0), "3.4s");
        assert_eq!(millis(63_000.0), "1m 3s");
    }

    #[test]
    fn times_are_local_short_times_with_an_age() {
        let c = clock();
        assert_eq!(
            c.when(Some(&json!("2026-11-23T10:03:12.5Z"))),
            "11:03:12 (3m ago)"
        );
        assert_eq!(
            c.when(Some(&json!("2026-11-23T10:06:15Z"))),
            "11:06:15 (just now)"
        );
        assert_eq!(
            c.when(Some(&json!("2026-11-21T08:00:00Z"))),
            "Nov 21 09:00 (2d ago)"
        );
        assert_eq!(c.when(None), "-");
        assert_eq!(c.when(Some(&json!("yesterday"))), "yesterday");
    }

    #[test]
    fn values_are_rounded_to_their_meaning() {
        let v = |x: f64| Some(json!(x));
        assert_eq!(
            condition_value("walk_forward_stability", v(39.450475100000006).as_ref()),
            "39.45"
        );
        assert_eq!(
            condition_value("overfitting_score", v(0.2100000001).as_ref()),
            "0.21"
        );
        assert_eq!(condition_value("consecutive_losses", v(5.0).as_ref()), "5");
        assert_eq!(condition_value("max_drawdown", v(5.2).as_ref()), "5.20%");
        assert_eq!(condition_value("max_drawdown", None), "-");
        assert_eq!(score(v(100.0).as_ref()), "100");
        assert_eq!(score(v(87.5).as_ref()), "87.5");
        assert_eq!(
            parameters(Some(
                &json!({"confidence_threshold": 0.55, "risk_reward_ratio": 1.8000000001})
            )),
            "confidence_threshold 0.55, risk_reward_ratio 1.8"
        );
    }
}
