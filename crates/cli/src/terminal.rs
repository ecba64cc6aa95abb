//! Text from callers and files made safe for an operator's terminal: escape sequences, cursor
//! movements and bidirectional overrides in a notify URL, a history reason or a file name are
//! shown escaped instead of acted on, and a value cannot forge a line of a table.

use std::borrow::Cow;
use std::fmt::{self, Write as _};

/// Whether a terminal may act on `c` instead of showing it: control characters (C0, DEL, C1)
/// and the bidirectional controls that reorder the text shown around them.
fn acts(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
        )
}

/// Writes `c` as its JSON escape (`\n`, `\u001b`), which means the same inside a JSON string.
fn escape(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c => {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                let _ = write!(out, "\\u{unit:04x}");
            }
        }
    }
}

fn escaped(text: &str, keep: impl Fn(char) -> bool) -> Cow<'_, str> {
    if !text.chars().any(|c| acts(c) && !keep(c)) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if acts(c) && !keep(c) {
            escape(&mut out, c);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Output as a whole (tables, JSON, messages): escapes what a terminal would act on but line
/// feeds and tabs. JSON stays valid JSON with the same meaning: JSON allows those characters
/// only inside strings, where the escape stands for the character.
pub fn output(text: &str) -> Cow<'_, str> {
    escaped(text, |c| c == '\n' || c == '\t')
}

/// One value of caller data inside a line of text: line feeds, carriage returns and tabs are
/// escaped too.
#[derive(Debug, Clone, Copy)]
pub struct Field<'a>(pub &'a str);

impl fmt::Display for Field<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&escaped(self.0, |_| false))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_and_bidi_controls_are_shown_not_acted_on() {
        assert_eq!(output("plain 中文\n\tok"), "plain 中文\n\tok");
        assert_eq!(
            output("a\u{1b}[2Jb\u{7}c\u{9b}31md\re"),
            "a\\u001b[2Jb\\u0007c\\u009b31md\\re"
        );
        assert_eq!(output("x\u{202E}gpj.exe"), "x\\u202egpj.exe");
        assert_eq!(Field("a\nseq 9 forged").to_string(), "a\\nseq 9 forged");
        assert_eq!(format!("[{:<6}]", Field("a\tb")), "[a\\tb  ]");
    }

    #[test]
    fn escaped_json_means_the_same() {
        let value = serde_json::json!({"reason": "x\u{1b}]0;title\u{7}\u{85}\u{2066}y\nz"});
        let text = serde_json::to_string_pretty(&value).unwrap();
        let safe = output(&text);
        assert!(!safe.chars().any(|c| acts(c) && c != '\n'), "{safe}");
        let back: serde_json::Value = serde_json::from_str(&safe).unwrap();
        assert_eq!(back, value);
    }
}
