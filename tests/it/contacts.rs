//! `rollbackd contacts render`: the real binary renders the seed's directory, and the real
//! amtool accepts the result; bad directories are refused with the contact named.

use crate::harness::binary::{run_rollbackd, Out};
use crate::harness::files::{read, repo};
use crate::harness::tools::run_tool;
use std::ffi::OsStr;
use std::path::Path;

/// Renders `json` written to `dir/contacts.json`, for production or as a draft.
fn render(dir: &Path, json: &str, production: bool) -> Out {
    let file = dir.join("contacts.json");
    std::fs::write(&file, json).unwrap();
    let mut args = vec![OsStr::new("contacts"), OsStr::new("render")];
    if production {
        args.push(OsStr::new("--production"));
    }
    args.push(file.as_os_str());
    run_rollbackd(&args)
}

fn seed() -> String {
    read("alerting/contacts.example.json")
}

fn filled() -> String {
    let mut s = seed().replace("\"name\": \"[TO BE CONFIGURED]\"", "\"name\": \"On call\"");
    for (field, value) in [
        ("email", "sysadmin@example.com"),
        ("phone", "+15550101"),
        ("email", "risk@example.com"),
        ("phone", "+15550102"),
        ("email", "tech@example.com"),
        ("email", "ops@example.com"),
    ] {
        s = s.replacen(
            &format!("\"{field}\": \"[TO BE CONFIGURED]\""),
            &format!("\"{field}\": \"{value}\""),
            1,
        );
    }
    s
}

#[test]
fn a_filled_directory_renders_for_production_and_amtool_accepts_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = render(dir.path(), &filled(), true);
    assert!(out.ok(), "{}", out.stderr);
    let yaml = out.stdout;
    assert!(
        yaml.contains("phone_number: '+15550101'") || yaml.contains("phone_number: \"+15550101\""),
        "{yaml}"
    );
    assert!(
        yaml.contains(
            "to: sysadmin@example.com, risk@example.com, tech@example.com, ops@example.com"
        ),
        "{yaml}"
    );
    // A critical condition during a freeze: the primary contacts on every channel.
    assert!(
        yaml.contains("#   primary-contacts    email: sysadmin@example.com, risk@example.com | sms: +15550101, +15550102 | slack: #emergency-alerts"),
        "{yaml}"
    );
    // Drills and notification tests: whoever acts in an emergency, on every channel.
    assert!(
        yaml.contains("#   drills-and-tests    email: sysadmin@example.com, risk@example.com, tech@example.com | sms: +15550101, +15550102 | slack: #emergency-alerts"),
        "{yaml}"
    );
    let config = dir.path().join("alertmanager.yml");
    std::fs::write(&config, &yaml).unwrap();
    let templates = dir.path().join("templates");
    std::fs::create_dir(&templates).unwrap();
    std::fs::copy(
        repo().join("alerting/templates/rollbackd.tmpl"),
        templates.join("rollbackd.tmpl"),
    )
    .unwrap();
    run_tool("amtool", &["check-config", config.to_str().unwrap()], None);
}

#[test]
fn the_seed_template_renders_as_a_draft_but_not_for_production() {
    let dir = tempfile::tempdir().unwrap();
    let out = render(dir.path(), &seed(), false);
    assert!(out.ok(), "{}", out.stderr);
    let out = render(dir.path(), &seed(), true);
    assert_eq!(out.code, Some(2));
    assert!(out.stderr.contains("contacts.json: emergency_contacts.management_contacts[0] (Operations Manager): `email` is still the placeholder \"[TO BE CONFIGURED]\""), "{}", out.stderr);
}

#[test]
fn bad_directories_are_refused_naming_the_contact() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (filled().replacen("\"email\": \"tech@example.com\",", "", 1), "technical_contacts[0] (Technical Lead): channel \"email\" needs `email`, which is missing"),
        (filled().replacen("[\"email\", \"slack\"]", "[\"email\", \"carrier-pigeon\"]", 1), "technical_contacts[0] (Technical Lead): unknown channel \"carrier-pigeon\""),
        (filled().replacen("\"slack_channel\": \"#emergency-alerts\",", "", 1), "technical_contacts[0] (Technical Lead): channel \"slack\" needs `slack_channel`"),
        (filled().replacen("\"sysadmin@example.com\"", "\"sysadmin\"", 1), "primary_contacts[0] (System Administrator): email \"sysadmin\" is not an address"),
        ("{\"emergency_contacts\": {}}".to_string(), "emergency_contacts has no contacts"),
        ("not json".to_string(), "contacts.json: "),
    ];
    for (json, expect) in cases {
        let out = render(dir.path(), &json, false);
        assert_eq!(out.code, Some(2), "{expect}");
        assert!(
            out.stderr.contains(expect),
            "expected {expect:?} in {}",
            out.stderr
        );
    }
}
