//! Writes a Prometheus rule file as a person would: comments above what they explain, a PromQL
//! expression as a literal block, descriptions folded at a readable width. serde_yaml cannot keep
//! comments, so the text is written here, in the one shape these files have.

/// Past this column a description line is folded (a template `{{ ... }}` is never split).
const WIDTH: usize = 100;

pub struct RuleFile {
    /// The file's opening comment, one line per `\n`.
    pub header: String,
    pub groups: Vec<Group>,
}

pub struct Group {
    pub comment: Option<String>,
    pub name: &'static str,
    pub rules: Vec<Rule>,
}

pub struct Rule {
    pub comment: String,
    pub kind: Kind,
    /// PromQL, one line or several (written as they are).
    pub expr: String,
}

pub enum Kind {
    Record(String),
    Alert(Alert),
}

pub struct Alert {
    pub name: &'static str,
    pub hold: String,
    pub severity: &'static str,
    pub summary: String,
    /// One paragraph, folded by the writer; a `\n` is where a line must start.
    pub description: String,
    pub runbook_url: String,
}

impl RuleFile {
    pub fn render(&self) -> String {
        let mut out = comment(&self.header, 0);
        out += "groups:\n";
        for (i, group) in self.groups.iter().enumerate() {
            if i > 0 {
                out += "\n";
            }
            if let Some(text) = &group.comment {
                out += &comment(text, 2);
            }
            out += &format!("  - name: {}\n    rules:\n", group.name);
            for (j, rule) in group.rules.iter().enumerate() {
                if j > 0 {
                    out += "\n";
                }
                out += &rule.render();
            }
        }
        out
    }
}

impl Rule {
    fn render(&self) -> String {
        let mut out = comment(&self.comment, 6);
        match &self.kind {
            Kind::Record(name) => out += &format!("      - record: {name}\n"),
            Kind::Alert(alert) => out += &format!("      - alert: {}\n", alert.name),
        }
        out += &scalar("expr", &self.expr, 8);
        if let Kind::Alert(alert) = &self.kind {
            out += &format!("        for: {}\n", alert.hold);
            out += &format!("        labels:\n          severity: {}\n", alert.severity);
            out += "        annotations:\n";
            out += &scalar("summary", &alert.summary, 10);
            out += &folded("description", &alert.description, 10);
            out += &format!("          runbook_url: {}\n", alert.runbook_url);
        }
        out
    }
}

fn comment(text: &str, indent: usize) -> String {
    let pad = " ".repeat(indent);
    text.lines()
        .map(|line| match line {
            "" => format!("{pad}#\n"),
            _ => format!("{pad}# {line}\n"),
        })
        .collect()
}

/// `key: value` when the value reads the same as a plain YAML scalar, else a quoted one (one
/// line) or a literal block (several lines, kept as written).
fn scalar(key: &str, value: &str, indent: usize) -> String {
    let pad = " ".repeat(indent);
    if value.contains('\n') {
        let body: String = value.lines().map(|l| format!("{pad}  {l}\n")).collect();
        return format!("{pad}{key}: |\n{body}");
    }
    if plain(value) {
        format!("{pad}{key}: {value}\n")
    } else {
        format!("{pad}{key}: '{}'\n", value.replace('\'', "''"))
    }
}

/// Whether `value` is read back unchanged as a plain scalar in block context.
fn plain(value: &str) -> bool {
    const INDICATORS: &[char] = &[
        '-', '?', ':', ',', '[', ']', '{', '}', '#', '&', '*', '!', '|', '>', '\'', '"', '%', '@',
        '`',
    ];
    !value.is_empty()
        && !value.starts_with(INDICATORS)
        && !value.starts_with(' ')
        && !value.ends_with(' ')
        && !value.ends_with(':')
        && !value.contains(": ")
        && !value.contains(" #")
}

/// `key: >-` and `text` folded at `WIDTH`, each `\n` of `text` starting a line (a place the
/// source chose to break). A folded scalar reads each line break as one space, so the words must
/// be separated by single spaces for the text to read back as `text` with its `\n`s made spaces.
/// A word too long for any line (a template block) joins the line before it and ends it.
fn folded(key: &str, text: &str, indent: usize) -> String {
    let pad = " ".repeat(indent + 2);
    let room = WIDTH - pad.len();
    let mut out = format!("{}{key}: >-\n", " ".repeat(indent));
    for segment in text.split('\n') {
        assert!(
            !segment.is_empty() && !segment.contains("  ") && segment.trim() == segment,
            "a description is words separated by single spaces: {text:?}"
        );
        let mut line = String::new();
        for word in words(segment) {
            let long = word.len() > room;
            if !line.is_empty() && !long && line.len() + 1 + word.len() > room {
                out += &format!("{pad}{line}\n");
                line.clear();
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line += word;
            if long {
                out += &format!("{pad}{line}\n");
                line.clear();
            }
        }
        if !line.is_empty() {
            out += &format!("{pad}{line}\n");
        }
    }
    out
}

/// The space-separated words of `text`; a template action `{{ ... }}`, and a block from
/// `{{ range }}`, `{{ with }}` or `{{ if }}` to its `{{ end }}`, with what touches them, count as
/// one word, so a template is never split across lines; so does a number with the word after it.
fn words(text: &str) -> Vec<&str> {
    let mut words = Vec::new();
    let mut start = 0;
    let mut blocks = 0usize;
    let mut rest = text;
    let mut at = 0;
    while let Some(c) = rest.chars().next() {
        if let Some(action) = rest.strip_prefix("{{") {
            let end = action.find("}}").map_or(rest.len(), |e| e + 4);
            match action.trim_start().split([' ', '}']).next() {
                Some("range" | "with" | "if") => blocks += 1,
                Some("end") => blocks = blocks.saturating_sub(1),
                _ => {}
            }
            at += end;
            rest = &text[at..];
            continue;
        }
        // A number stays with its unit ("100 ms", "5 minutes").
        let after_digit = text[..at].ends_with(|p: char| p.is_ascii_digit());
        if c == ' ' && blocks == 0 && !after_digit {
            words.push(&text[start..at]);
            start = at + 1;
        }
        at += c.len_utf8();
        rest = &text[at..];
    }
    words.push(&text[start..]);
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_are_plain_only_where_yaml_reads_them_back_unchanged() {
        assert_eq!(scalar("a", "up == 0", 0), "a: up == 0\n");
        assert_eq!(scalar("a", "Decision: grow", 0), "a: 'Decision: grow'\n");
        assert_eq!(scalar("a", "{{ x }} it's", 0), "a: '{{ x }} it''s'\n");
        assert_eq!(scalar("a", "x\ny\n", 2), "  a: |\n    x\n    y\n");
    }

    #[test]
    fn descriptions_fold_between_templates_and_read_back_as_written() {
        assert_eq!(
            words("a {{ with x }}b c{{ end }}. d {{ .V }} e"),
            ["a", "{{ with x }}b c{{ end }}.", "d", "{{ .V }}", "e"]
        );
        assert_eq!(words("under 100 ms."), ["under", "100 ms."]);
        let template = format!(
            "{{{{ range printf \"{}{{job=%q}} > 0.01\" $labels.job | query }}}} {{{{ .Value }}}}{{{{ end }}}}",
            "m".repeat(WIDTH)
        );
        let text = format!("{} {template} end.", "word ".repeat(30).trim());
        let yaml = folded("description", &text, 0);
        assert!(yaml.lines().all(|l| l.len() <= WIDTH || l.contains("{{")));
        // The block is not split, joins the short line before it, and ends its line.
        assert!(
            yaml.contains(&format!(" word {template}\n  end.\n")),
            "{yaml}"
        );
        let parsed: serde_yaml::Value = serde_yaml::from_str(&yaml).unwrap();
        assert_eq!(parsed["description"].as_str(), Some(text.as_str()));

        let broken = folded("description", "one\ntwo three", 0);
        assert_eq!(broken, "description: >-\n  one\n  two three\n");
        let parsed: serde_yaml::Value = serde_yaml::from_str(&broken).unwrap();
        assert_eq!(parsed["description"].as_str(), Some("one two three"));
    }
}
