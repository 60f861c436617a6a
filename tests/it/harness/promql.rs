//! Metric names in PromQL, found without a full parser.

use std::collections::BTreeSet;

/// Words that group by label lists: `by (...)`, `without`, `on`, `ignoring`, `group_left`,
/// `group_right`.
const GROUPING: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];
/// The other words that are not metric names.
const KEYWORDS: &[&str] = &[
    "and", "or", "unless", "offset", "bool", "inf", "nan", "atan2",
];

/// Metric names referenced by a PromQL expression, found without a full parser: string
/// literals, label matchers `{...}`, range/subquery brackets `[...]` and grouping label lists
/// are dropped; of the identifiers left, those not called as functions and not keywords are
/// metric names.
pub fn promql_metric_names(expr: &str) -> BTreeSet<String> {
    let tokens = tokens(&without_literals_and_brackets(expr));
    let mut names = BTreeSet::new();
    let mut i = 0;
    while i < tokens.len() {
        let t = &tokens[i];
        let lower = t.to_ascii_lowercase();
        if GROUPING.contains(&lower.as_str()) && tokens.get(i + 1).map(String::as_str) == Some("(")
        {
            // skip the label list
            while i < tokens.len() && tokens[i] != ")" {
                i += 1;
            }
            i += 1;
            continue;
        }
        let first = t.chars().next().unwrap();
        let is_ident =
            (first.is_ascii_alphabetic() || first == '_' || first == ':') && !t.contains('.');
        // A function call, or an aggregation with its grouping first: `sum by (le) (...)`.
        let called = matches!(
            tokens.get(i + 1).map(|n| n.to_ascii_lowercase()).as_deref(),
            Some("(" | "by" | "without")
        );
        let keyword = GROUPING.contains(&lower.as_str()) || KEYWORDS.contains(&lower.as_str());
        if is_ident && !called && !keyword {
            names.insert(t.clone());
        }
        i += 1;
    }
    names
}

/// The expression with string literals, bracketed parts (`{...}`, `[...]`) and comments
/// replaced by a space.
fn without_literals_and_brackets(expr: &str) -> String {
    let mut cleaned = String::new();
    let mut chars = expr.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' | '\'' | '`' => {
                skip_string(&mut chars, c);
                cleaned.push(' ');
            }
            '{' | '[' => {
                let close = if c == '{' { '}' } else { ']' };
                let mut depth = 1;
                while let Some(n) = chars.next() {
                    if n == '"' || n == '\'' || n == '`' {
                        // A '}' inside a label value is still inside the matcher.
                        skip_string(&mut chars, n);
                    } else if n == c {
                        depth += 1;
                    } else if n == close {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                }
                cleaned.push(' ');
            }
            '#' => {
                // comment to end of line
                for n in chars.by_ref() {
                    if n == '\n' {
                        break;
                    }
                }
            }
            _ => cleaned.push(c),
        }
    }
    cleaned
}

/// Skips to the end of a string literal opened by `quote`.
fn skip_string(chars: &mut impl Iterator<Item = char>, quote: char) {
    while let Some(n) = chars.next() {
        if n == '\\' && quote != '`' {
            chars.next();
        } else if n == quote {
            break;
        }
    }
}

/// Identifiers (with `:` and `.`) and single punctuation characters.
fn tokens(cleaned: &str) -> Vec<String> {
    let mut tokens: Vec<String> = Vec::new();
    let mut cur = String::new();
    for c in cleaned.chars() {
        if c.is_ascii_alphanumeric() || c == '_' || c == ':' || c == '.' {
            cur.push(c);
        } else {
            if !cur.is_empty() {
                tokens.push(std::mem::take(&mut cur));
            }
            if !c.is_whitespace() {
                tokens.push(c.to_string());
            }
        }
    }
    if !cur.is_empty() {
        tokens.push(cur);
    }
    tokens
}
