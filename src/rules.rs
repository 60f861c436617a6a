//! The shipped alert rules and notification template, rendered with the operator's runbook
//! address. The files in alerting/ carry the default base, the runbook installed with the
//! binary; `rollbackd render-rules` swaps it for a wiki or a repository the on-call can open.

use std::path::{Path, PathBuf};

/// Where packaging installs docs/runbook.md (the Dockerfile and README's install steps).
pub const DEFAULT_RUNBOOK_BASE: &str = "file:///usr/share/doc/rollbackd/runbook.md";

/// The rule files of alerting/rules, by file name.
pub const RULE_FILES: [(&str, &str); 6] = [
    (
        "conditions.yml",
        include_str!("../alerting/rules/conditions.yml"),
    ),
    ("guard.yml", include_str!("../alerting/rules/guard.yml")),
    ("holds.yml", include_str!("../alerting/rules/holds.yml")),
    (
        "operations.yml",
        include_str!("../alerting/rules/operations.yml"),
    ),
    ("reviews.yml", include_str!("../alerting/rules/reviews.yml")),
    (
        "rollbackd.yml",
        include_str!("../alerting/rules/rollbackd.yml"),
    ),
];

/// The Alertmanager template, which links to the runbook too.
pub const TEMPLATE: (&str, &str) = (
    "rollbackd.tmpl",
    include_str!("../alerting/templates/rollbackd.tmpl"),
);

#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    #[error("--runbook-base-url {0:?}: {1}")]
    BadBase(String, &'static str),
    #[error("cannot write {0}: {1}")]
    Write(PathBuf, std::io::Error),
}

/// Refuses a base that would break the YAML strings or Go templates it is written into.
pub fn check_base(base: &str) -> Result<&str, RulesError> {
    let bad = |why| Err(RulesError::BadBase(base.to_owned(), why));
    if base.is_empty() {
        return bad("must not be empty");
    }
    if base.contains('#') {
        return bad("must not contain '#': each alert appends #<its name in lower case>");
    }
    if base.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad("must not contain spaces or control characters");
    }
    if base.contains(['"', '\\', '{', '}', '`']) {
        return bad("must not contain quotes, backslashes, braces or backticks");
    }
    Ok(base)
}

/// `text` with every runbook link under `base` instead of the default.
pub fn rebase(text: &str, base: &str) -> String {
    text.replace(DEFAULT_RUNBOOK_BASE, base)
}

/// All rule groups as one rule file.
pub fn merged(base: &str) -> Result<String, RulesError> {
    let base = check_base(base)?;
    let mut out = format!(
        "# rollbackd {} alert rules, rendered by `rollbackd render-rules`.\n\
         # Runbook links: {base}#<alert name in lower case>.\n\
         # Comments explaining each rule are in alerting/rules/ of the source.\n\
         groups:\n",
        env!("CARGO_PKG_VERSION")
    );
    for (name, text) in RULE_FILES {
        let body = text
            .split_once("\ngroups:\n")
            .map(|(_, body)| body)
            .unwrap_or_else(|| panic!("alerting/rules/{name} has a top-level `groups:`"));
        out.push_str(&rebase(body, base));
    }
    Ok(out)
}

/// Writes `dir/rules/*.yml` and `dir/templates/rollbackd.tmpl`; returns the paths written.
pub fn write_dir(dir: &Path, base: &str) -> Result<Vec<PathBuf>, RulesError> {
    let base = check_base(base)?;
    let files = RULE_FILES
        .iter()
        .map(|(name, text)| (dir.join("rules").join(name), *text))
        .chain([(dir.join("templates").join(TEMPLATE.0), TEMPLATE.1)]);
    let mut written = Vec::new();
    for (path, text) in files {
        let parent = path.parent().expect("a file under dir");
        std::fs::create_dir_all(parent).map_err(|e| RulesError::Write(parent.to_owned(), e))?;
        std::fs::write(&path, rebase(text, base))
            .map_err(|e| RulesError::Write(path.clone(), e))?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runbook_urls(text: &str) -> Vec<&str> {
        text.lines()
            .filter_map(|l| l.trim().strip_prefix("runbook_url: "))
            .map(|v| v.trim_matches('"'))
            .collect()
    }

    #[test]
    fn shipped_rules_link_to_the_installed_runbook() {
        for (name, text) in RULE_FILES {
            let urls = runbook_urls(text);
            assert!(!urls.is_empty(), "{name} has no runbook_url");
            for u in urls {
                assert!(
                    u.starts_with(&format!("{DEFAULT_RUNBOOK_BASE}#")),
                    "{name}: {u}"
                );
            }
        }
        assert!(TEMPLATE.1.contains(DEFAULT_RUNBOOK_BASE));
    }

    #[test]
    fn merged_rules_carry_every_group_under_the_new_base() {
        let base = "https://wiki.example.org/ops/rollbackd";
        let text = merged(base).unwrap();
        let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
        let groups = doc["groups"].as_sequence().unwrap().len();
        let shipped: usize = RULE_FILES
            .iter()
            .map(|(_, t)| {
                let d: serde_yaml_ng::Value = serde_yaml_ng::from_str(t).unwrap();
                d["groups"].as_sequence().unwrap().len()
            })
            .sum();
        assert_eq!(groups, shipped);
        let urls = runbook_urls(&text);
        assert!(urls.len() >= 20, "{}", urls.len());
        assert!(
            urls.iter().all(|u| u.starts_with(&format!("{base}#"))),
            "{urls:?}"
        );
        assert!(!text.contains(DEFAULT_RUNBOOK_BASE));
    }

    #[test]
    fn a_base_that_would_break_the_files_is_refused_by_name() {
        for bad in [
            "",
            "https://x/runbook#top",
            "https://x/a b",
            "https://x/\"q",
            "{{ .x }}",
        ] {
            let err = merged(bad).unwrap_err().to_string();
            assert!(err.starts_with("--runbook-base-url"), "{err}");
        }
        assert!(check_base("docs/runbook.md").is_ok());
    }
}
