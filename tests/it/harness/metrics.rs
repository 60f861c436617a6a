//! One scrape of `/metrics` as tests read it: a series' value, a family's type, every sample.

use std::collections::BTreeMap;

/// The text of one scrape (Prometheus text format 0.0.4).
pub struct Metrics {
    pub text: String,
}

/// One sample line, parsed.
#[derive(Debug)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

impl Metrics {
    /// The value of `name{labels}`, the labels in the order the daemon writes them.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let series = series(name, labels);
        self.text.lines().find_map(|l| {
            let (s, value) = l.rsplit_once(' ')?;
            (s == series).then(|| value.parse().ok()).flatten()
        })
    }

    /// Fails unless `name{labels}` is `want`, showing the family's lines.
    #[track_caller]
    pub fn assert(&self, name: &str, labels: &[(&str, &str)], want: f64) {
        let family: Vec<&str> = self.text.lines().filter(|l| l.starts_with(name)).collect();
        assert_eq!(
            self.get(name, labels),
            Some(want),
            "{}; the scrape has:\n{}",
            series(name, labels),
            family.join("\n")
        );
    }

    /// The `# TYPE` of a family.
    pub fn type_of(&self, family: &str) -> Option<String> {
        let prefix = format!("# TYPE {family} ");
        self.text
            .lines()
            .find_map(|l| l.strip_prefix(&prefix).map(str::to_string))
    }

    /// Every sample, parsed strictly enough to hold the output to the text format.
    pub fn samples(&self) -> Vec<Sample> {
        self.text
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(parse_sample)
            .collect()
    }
}

fn series(name: &str, labels: &[(&str, &str)]) -> String {
    if labels.is_empty() {
        return name.to_string();
    }
    let l: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    format!("{name}{{{}}}", l.join(","))
}

fn parse_sample(line: &str) -> Sample {
    let (name, rest) = match line.find(['{', ' ']) {
        Some(i) => (&line[..i], &line[i..]),
        None => panic!("unparseable sample line {line:?}"),
    };
    let (labels, rest) = match rest.strip_prefix('{') {
        Some(body) => parse_labels(line, body),
        None => (BTreeMap::new(), rest),
    };
    let value = rest.split_whitespace().next().expect("a value");
    let value = match value {
        "NaN" => f64::NAN,
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}")),
    };
    Sample {
        name: name.to_string(),
        labels,
        value,
    }
}

/// The labels of `{...}` (given without its `{`) and what follows the closing brace.
fn parse_labels<'a>(line: &str, body: &'a str) -> (BTreeMap<String, String>, &'a str) {
    let mut labels = BTreeMap::new();
    let mut chars = body.char_indices().peekable();
    let mut key = String::new();
    while let Some((i, c)) = chars.next() {
        match c {
            '}' => return (labels, &body[i + 1..]),
            ',' => {}
            '=' => {
                assert_eq!(chars.next().map(|x| x.1), Some('"'), "{line}");
                let mut val = String::new();
                while let Some((_, c)) = chars.next() {
                    match c {
                        '\\' => val.push(chars.next().unwrap().1),
                        '"' => break,
                        c => val.push(c),
                    }
                }
                labels.insert(std::mem::take(&mut key), val);
            }
            c => key.push(c),
        }
    }
    panic!("no closing brace in {line:?}")
}
