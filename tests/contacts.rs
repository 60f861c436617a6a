//! `rollbackd contacts render`: the real binary renders the seed's directory, and the real
//! amtool accepts the result; bad directories are refused with the contact named.

use std::path::Path;
use std::process::Command;

fn render(dir: &Path, json: &str, production: bool) -> std::process::Output {
    let file = dir.join("contacts.json");
    std::fs::write(&file, json).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rollbackd"));
    cmd.args(["contacts", "render"]);
    if production {
        cmd.arg("--production");
    }
    cmd.arg(&file).output().unwrap()
}

fn amtool_check(config: &Path) {
    let out = Command::new("amtool")
        .args(["check-config"])
        .arg(config)
        .output()
        .unwrap_or_else(|e| panic!("amtool is required (Debian package prometheus-alertmanager; scripts/test.sh installs it): {e}"));
    assert!(
        out.status.success(),
        "amtool refused the rendered config:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn seed() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/alerting/contacts.example.json"
    ))
    .unwrap()
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
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let yaml = String::from_utf8(out.stdout).unwrap();
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
    let config = dir.path().join("alertmanager.yml");
    std::fs::write(&config, &yaml).unwrap();
    let templates = dir.path().join("templates");
    std::fs::create_dir(&templates).unwrap();
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/alerting/templates/rollbackd.tmpl"
        ),
        templates.join("rollbackd.tmpl"),
    )
    .unwrap();
    amtool_check(&config);
}

#[test]
fn the_seed_template_renders_as_a_draft_but_not_for_production() {
    let dir = tempfile::tempdir().unwrap();
    let out = render(dir.path(), &seed(), false);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = render(dir.path(), &seed(), true);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("contacts.json: emergency_contacts.management_contacts[0] (Operations Manager): `email` is still the placeholder \"[TO BE CONFIGURED]\""), "{err}");
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
        assert_eq!(out.status.code(), Some(2), "{expect}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.contains(expect), "expected {expect:?} in {err}");
    }
}
