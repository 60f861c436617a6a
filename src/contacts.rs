//! The seed's contact directory (`contacts.json`) made real: rendered into the shipped
//! Alertmanager config's people receivers. The shipped receivers' integration settings
//! (templates, headers, send_resolved) are kept; only the recipients come from the directory.
//!
//! Who hears what, by priority (the seed's escalation order):
//! - priority 1 (primary): the emergency notification, critical and high alerts, and the
//!   alerts for them alone (`notify="primary"`: a critical condition during a freeze);
//! - priority 2 (technical): the emergency notification, critical and high alerts, warnings;
//! - priority 3 (management): the emergency notification only.
//!
//! Drills and notification tests (`drills-and-tests`) go to priorities 1 and 2 on every channel
//! they list, SMS included: they prove the way the emergency notification would take to the
//! people who act on it.
//!
//! The primary contacts' own receiver also posts to every Slack channel of the directory: Slack
//! is where the team sees an alert, and the primary contacts list none of their own.
//!
//! Channels: `email` (needs `email`), `sms` (needs `phone`; sent through SNS to the number),
//! `slack` (needs `slack_channel`), `phone` (needs `phone`; Alertmanager has no voice calls, so
//! it is delivered as an SMS to the same number). Warnings never go by SMS (the seed's channels).

use serde::Deserialize;
use serde_yaml_ng::{Mapping, Value};
use std::collections::BTreeMap;
use std::path::Path;

/// The shipped Alertmanager config the directory is rendered into.
pub const SHIPPED_ALERTMANAGER: &str = include_str!("../alerting/alertmanager.yml");

/// Text that marks a value as not configured yet (contacts, tokens).
pub const PLACEHOLDERS: [&str; 2] = ["TO BE CONFIGURED", "CHANGE-ME"];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Directory {
    pub emergency_contacts: BTreeMap<String, Vec<Contact>>,
    #[serde(default)]
    pub notification_templates: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Contact {
    pub role: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub slack_channel: Option<String>,
    pub channels: Vec<String>,
    pub priority: u8,
}

/// The receivers the directory fills: which priorities each one reaches by email and SMS,
/// whether SMS is sent at all, and whose Slack channels it posts to.
const RECEIVERS: [(&str, &[u8], bool, &[u8]); 6] = [
    ("emergency-rollback", &[1, 2, 3], true, &[1, 2, 3]),
    ("primary-contacts", &[1], true, &[1, 2, 3]),
    ("drills-and-tests", &[1, 2], true, &[1, 2]),
    ("team-critical", &[1, 2], true, &[1, 2]),
    ("team-high", &[1, 2], true, &[1, 2]),
    ("team-warning", &[2], false, &[2]),
];

#[derive(Default, Debug, PartialEq)]
struct Recipients {
    emails: Vec<String>,
    phones: Vec<String>,
    slack: Vec<String>,
}

fn push_unique(v: &mut Vec<String>, s: &str) {
    if !v.iter().any(|x| x == s) {
        v.push(s.to_owned());
    }
}

/// The field a channel is delivered to, and its trimmed value (empty when missing); `None`
/// for a channel this directory does not know. `sms` and `phone` both go to the phone number.
fn channel<'a>(c: &'a Contact, ch: &str) -> Option<(&'static str, &'a str)> {
    let (field, value) = match ch {
        "email" => ("email", &c.email),
        "sms" | "phone" => ("phone", &c.phone),
        "slack" => ("slack_channel", &c.slack_channel),
        _ => return None,
    };
    Some((field, value.as_deref().map(str::trim).unwrap_or("")))
}

/// Checks every contact; the first mistake is named with its group, index and role.
pub fn validate(dir: &Directory, production: bool) -> Result<(), String> {
    if dir.emergency_contacts.values().all(Vec::is_empty) {
        return Err("emergency_contacts has no contacts".into());
    }
    for (group, contacts) in &dir.emergency_contacts {
        for (i, c) in contacts.iter().enumerate() {
            let who = format!("emergency_contacts.{group}[{i}] ({})", c.role);
            if !(1..=3).contains(&c.priority) {
                return Err(format!("{who}: priority {} must be 1, 2 or 3", c.priority));
            }
            if c.channels.is_empty() {
                return Err(format!(
                    "{who}: has no channels; expected some of email, sms, slack, phone"
                ));
            }
            for ch in &c.channels {
                let Some((field, value)) = channel(c, ch) else {
                    return Err(format!(
                        "{who}: unknown channel {ch:?}; expected email, sms, slack or phone"
                    ));
                };
                if value.is_empty() {
                    return Err(format!(
                        "{who}: channel {ch:?} needs `{field}`, which is missing"
                    ));
                }
                let placeholder = PLACEHOLDERS.iter().any(|p| value.contains(p));
                if placeholder && production {
                    return Err(format!("{who}: `{field}` is still the placeholder {value:?}; set it before production"));
                }
                if !placeholder && field == "email" && !value.contains('@') {
                    return Err(format!("{who}: email {value:?} is not an address"));
                }
                if !placeholder && field == "phone" && !value.starts_with('+') {
                    return Err(format!(
                        "{who}: phone {value:?} must be in E.164 form, such as +15550100"
                    ));
                }
                if !placeholder
                    && field == "slack_channel"
                    && !value.starts_with('#')
                    && !value.starts_with('@')
                {
                    return Err(format!(
                        "{who}: slack_channel {value:?} must start with # or @"
                    ));
                }
            }
            if production {
                if let Some(n) = c
                    .name
                    .as_deref()
                    .filter(|n| PLACEHOLDERS.iter().any(|p| n.contains(p)))
                {
                    return Err(format!(
                        "{who}: `name` is still the placeholder {n:?}; set it before production"
                    ));
                }
            }
        }
    }
    Ok(())
}

fn recipients(dir: &Directory, priorities: &[u8], sms_allowed: bool) -> Recipients {
    let mut r = Recipients::default();
    // Highest priority first, so the people to reach first are listed first.
    let mut contacts: Vec<&Contact> = dir
        .emergency_contacts
        .values()
        .flatten()
        .filter(|c| priorities.contains(&c.priority))
        .collect();
    contacts.sort_by_key(|c| c.priority);
    for c in contacts {
        for (field, address) in c.channels.iter().filter_map(|ch| channel(c, ch)) {
            let list = match field {
                "email" => &mut r.emails,
                "phone" if sms_allowed => &mut r.phones,
                "slack_channel" => &mut r.slack,
                _ => continue,
            };
            push_unique(list, address);
        }
    }
    r
}

/// One integration list rebuilt from the shipped receiver's first entry, once per recipient.
fn integrations(
    base: Option<&Value>,
    recipients: &[String],
    field: &str,
    remove: &[&str],
) -> Option<Value> {
    if recipients.is_empty() {
        return None;
    }
    let template = base
        .and_then(Value::as_sequence)
        .and_then(|s| s.first())
        .cloned()
        .unwrap_or(Value::Mapping(Mapping::new()));
    let items = recipients
        .iter()
        .map(|to| {
            let mut m = template.as_mapping().cloned().unwrap_or_default();
            for k in remove {
                m.remove(*k);
            }
            m.insert(Value::from(field), Value::from(to.as_str()));
            Value::Mapping(m)
        })
        .collect();
    Some(Value::Sequence(items))
}

/// Renders the directory into the shipped Alertmanager config; returns the whole config as YAML.
pub fn render(dir: &Directory, production: bool) -> Result<String, String> {
    validate(dir, production)?;
    let mut config: Value = serde_yaml_ng::from_str(SHIPPED_ALERTMANAGER)
        .map_err(|e| format!("the shipped Alertmanager config does not parse: {e}"))?;
    let receivers = config
        .get_mut("receivers")
        .and_then(Value::as_sequence_mut)
        .ok_or("the shipped Alertmanager config has no receivers")?;
    let mut summary = Vec::new();
    for (name, priorities, sms_allowed, slack_from) in RECEIVERS {
        let Some(receiver) = receivers
            .iter_mut()
            .find(|r| r.get("name").and_then(Value::as_str) == Some(name))
        else {
            return Err(format!(
                "the shipped Alertmanager config has no receiver {name:?}"
            ));
        };
        let r = Recipients {
            slack: recipients(dir, slack_from, false).slack,
            ..recipients(dir, priorities, sms_allowed)
        };
        // Emails go in one message (one `to` list); SMS one per number; Slack one per channel.
        let emails = if r.emails.is_empty() {
            vec![]
        } else {
            vec![r.emails.join(", ")]
        };
        let new = [
            (
                "email_configs",
                integrations(receiver.get("email_configs"), &emails, "to", &[]),
            ),
            (
                "sns_configs",
                integrations(
                    receiver.get("sns_configs"),
                    &r.phones,
                    "phone_number",
                    &["topic_arn", "target_arn"],
                ),
            ),
            (
                "slack_configs",
                integrations(receiver.get("slack_configs"), &r.slack, "channel", &[]),
            ),
        ];
        let m = receiver
            .as_mapping_mut()
            .ok_or("a shipped receiver is not a mapping")?;
        for (key, value) in new {
            match value {
                Some(v) => {
                    m.insert(Value::from(key), v);
                }
                None => {
                    m.remove(key);
                }
            }
        }
        summary.push(format!(
            "#   {name:<19} email: {} | sms: {} | slack: {}",
            list(&r.emails),
            list(&r.phones),
            list(&r.slack)
        ));
    }
    let body = serde_yaml_ng::to_string(&config).map_err(|e| e.to_string())?;
    Ok(format!(
        "# Alertmanager config rendered by `rollbackd contacts render` from the contact directory\n# into the shipped alerting/alertmanager.yml. Routes, timings and templates are the shipped ones.\n{}\n{body}",
        summary.join("\n")
    ))
}

fn list(v: &[String]) -> String {
    if v.is_empty() {
        "-".into()
    } else {
        v.join(", ")
    }
}

pub fn parse(text: &str) -> Result<Directory, String> {
    let mut de = serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(&mut de).map_err(|e| format!("{}: {}", e.path(), e.inner()))
}

pub fn render_file(path: &Path, production: bool) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    let dir = parse(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    render(&dir, production).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The seed's template, verbatim.
    pub const SEED: &str = include_str!("../alerting/contacts.example.json");

    fn filled() -> String {
        SEED.replacen("\"name\": \"[TO BE CONFIGURED]\"", "\"name\": \"Ada\"", 1)
            .replace("\"name\": \"[TO BE CONFIGURED]\"", "\"name\": \"Someone\"")
            .replacen(
                "\"email\": \"[TO BE CONFIGURED]\"",
                "\"email\": \"sysadmin@example.com\"",
                1,
            )
            .replacen(
                "\"phone\": \"[TO BE CONFIGURED]\"",
                "\"phone\": \"+15550101\"",
                1,
            )
            .replacen(
                "\"email\": \"[TO BE CONFIGURED]\"",
                "\"email\": \"risk@example.com\"",
                1,
            )
            .replacen(
                "\"phone\": \"[TO BE CONFIGURED]\"",
                "\"phone\": \"+15550102\"",
                1,
            )
            .replacen(
                "\"email\": \"[TO BE CONFIGURED]\"",
                "\"email\": \"tech@example.com\"",
                1,
            )
            .replacen(
                "\"email\": \"[TO BE CONFIGURED]\"",
                "\"email\": \"ops@example.com\"",
                1,
            )
    }

    fn receiver<'a>(cfg: &'a Value, name: &str) -> &'a Value {
        cfg["receivers"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .unwrap()
    }

    #[test]
    fn the_seed_directory_renders_by_priority_and_channel() {
        let out = render(&parse(&filled()).unwrap(), true).unwrap();
        let cfg: Value = serde_yaml_ng::from_str(&out).unwrap();
        let emergency = receiver(&cfg, "emergency-rollback");
        assert_eq!(
            emergency["email_configs"][0]["to"],
            "sysadmin@example.com, risk@example.com, tech@example.com, ops@example.com"
        );
        let phones: Vec<&str> = emergency["sns_configs"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|s| s["phone_number"].as_str().unwrap())
            .collect();
        assert_eq!(phones, ["+15550101", "+15550102"]);
        assert!(emergency["sns_configs"][0].get("topic_arn").is_none());
        assert_eq!(
            emergency["slack_configs"][0]["channel"],
            "#emergency-alerts"
        );
        // The shipped templates are kept.
        assert!(emergency["email_configs"][0]["headers"]["Subject"]
            .as_str()
            .unwrap()
            .contains("rollbackd.emergency.subject"));
        let critical = receiver(&cfg, "team-critical");
        assert_eq!(
            critical["email_configs"][0]["to"],
            "sysadmin@example.com, risk@example.com, tech@example.com"
        );
        // A critical condition during a freeze: the primary contacts on every channel.
        let primary = receiver(&cfg, "primary-contacts");
        assert_eq!(
            primary["email_configs"][0]["to"],
            "sysadmin@example.com, risk@example.com"
        );
        let phones: Vec<&str> = primary["sns_configs"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|s| s["phone_number"].as_str().unwrap())
            .collect();
        assert_eq!(phones, ["+15550101", "+15550102"]);
        assert_eq!(primary["slack_configs"][0]["channel"], "#emergency-alerts");
        assert!(out.contains("#   primary-contacts    email: sysadmin@example.com, risk@example.com | sms: +15550101, +15550102 | slack: #emergency-alerts"), "{out}");
        // Drills and tests: whoever acts in an emergency, on every channel, SMS included.
        let drills = receiver(&cfg, "drills-and-tests");
        assert_eq!(
            drills["email_configs"][0]["to"],
            "sysadmin@example.com, risk@example.com, tech@example.com"
        );
        let phones: Vec<&str> = drills["sns_configs"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|s| s["phone_number"].as_str().unwrap())
            .collect();
        assert_eq!(phones, ["+15550101", "+15550102"]);
        assert_eq!(drills["slack_configs"][0]["channel"], "#emergency-alerts");
        assert!(drills["email_configs"][0]["headers"]["Subject"]
            .as_str()
            .unwrap()
            .contains("rollbackd.drill.subject"));
        assert!(out.contains("#   drills-and-tests    email: sysadmin@example.com, risk@example.com, tech@example.com | sms: +15550101, +15550102 | slack: #emergency-alerts"), "{out}");
        let warning = receiver(&cfg, "team-warning");
        assert_eq!(warning["email_configs"][0]["to"], "tech@example.com");
        assert!(
            warning.get("sns_configs").is_none(),
            "warnings never go by SMS"
        );
        assert!(out.contains("#   team-warning        email: tech@example.com | sms: - | slack: #emergency-alerts"), "{out}");
        // The machine route is untouched.
        assert_eq!(
            receiver(&cfg, "rollbackd-webhook")["webhook_configs"][0]["url"],
            "http://rollbackd:9100/api/v1/alertmanager"
        );
    }

    #[test]
    fn mistakes_name_the_contact() {
        let bad = |from: &str, to: &str| {
            render(&parse(&filled().replacen(from, to, 1)).unwrap(), false).unwrap_err()
        };
        assert_eq!(bad("\"email\": \"sysadmin@example.com\",", ""), "emergency_contacts.primary_contacts[0] (System Administrator): channel \"email\" needs `email`, which is missing");
        assert!(bad(
            "\"channels\": [\"email\", \"sms\"]",
            "\"channels\": [\"email\", \"pager\"]"
        )
        .contains("primary_contacts[0] (System Administrator): unknown channel \"pager\""));
        assert!(bad("\"+15550102\"", "\"5550102\"").contains(
            "primary_contacts[1] (Risk Management Lead): phone \"5550102\" must be in E.164 form"
        ));
        assert!(bad("\"priority\": 3", "\"priority\": 7")
            .contains("management_contacts[0] (Operations Manager): priority 7"));
        let e = parse(&SEED.replacen("\"role\"", "\"rolle\"", 1)).unwrap_err();
        assert!(e.contains("unknown field `rolle`"), "{e}");
    }

    #[test]
    fn placeholders_pass_for_a_draft_and_are_refused_for_production() {
        let seed = parse(SEED).unwrap();
        assert!(render(&seed, false).is_ok());
        let e = render(&seed, true).unwrap_err();
        assert_eq!(e, "emergency_contacts.management_contacts[0] (Operations Manager): `email` is still the placeholder \"[TO BE CONFIGURED]\"; set it before production");
    }
}
