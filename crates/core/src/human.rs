//! Text for people: server-sent text made safe to print, durations a person reads.
//!
//! Anything a server sends (a close reason, an event name in an envelope, an error body) can hold
//! newlines, ANSI escape sequences or OSC sequences that would forge log lines or retitle a
//! terminal. [`escaped`] shows such characters as escapes (`\n`, `\u{1b}`) instead. Durations
//! print as `4.2s`, `500ms` or `2m 30s`, never as `Duration`'s `Debug` form.

use std::fmt;
use std::time::Duration;

/// `text` with every control, bidirectional-override and other invisible formatting character
/// shown as an escape: safe to print on a terminal or in a log line.
pub fn escaped(text: &str) -> Escaped<'_> {
    Escaped(text)
}

/// See [`escaped`].
#[derive(Debug, Clone, Copy)]
pub struct Escaped<'a>(&'a str);

/// Whether `c` changes how a terminal shows the text around it: what [`escaped`] escapes.
pub fn is_unsafe(c: char) -> bool {
    c.is_control()
        // Bidirectional embeddings, overrides and isolates (the "Trojan Source" characters),
        // zero-width and line/paragraph separators.
        || matches!(c, '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
}

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        while let Some(i) = rest.find(is_unsafe) {
            f.write_str(&rest[..i])?;
            let c = rest[i..].chars().next().unwrap_or_default();
            match c {
                '\n' => f.write_str("\\n")?,
                '\r' => f.write_str("\\r")?,
                '\t' => f.write_str("\\t")?,
                c => write!(f, "\\u{{{:x}}}", c as u32)?,
            }
            rest = &rest[i + c.len_utf8()..];
        }
        f.write_str(rest)
    }
}

/// The first `max_chars` characters of `text`, escaped as [`escaped`] does, with `…` where it
/// was cut: a piece of a frame for an error message.
pub fn excerpt(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((i, _)) => format!("{}…", escaped(&text[..i])),
        None => escaped(text).to_string(),
    }
}

/// A serialized JSON document with every character [`is_unsafe`] finds written as a `\uXXXX`
/// escape: the same JSON value, safe to print. (serde_json escapes only the C0 controls; C1
/// controls such as U+009B, a CSI, and bidirectional overrides stay raw.) Such characters can
/// only stand inside JSON strings, where the escape means the same character.
pub fn json_safe(json: &str) -> std::borrow::Cow<'_, str> {
    if !json.contains(is_unsafe) {
        return std::borrow::Cow::Borrowed(json);
    }
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        if is_unsafe(c) {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// `d` as a person reads it: `850ms`, `4.2s`, `30s`, `2m 30s`, `1h 5m`.
pub fn duration(d: Duration) -> HumanDuration {
    HumanDuration(d)
}

/// See [`duration`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(Duration);

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        let secs = d.as_secs();
        if d < Duration::from_millis(1) && !d.is_zero() {
            return write!(f, "{}µs", d.as_micros());
        }
        if d < Duration::from_secs(1) {
            return write!(f, "{}ms", d.as_millis());
        }
        if d < Duration::from_secs(10) {
            // One decimal, without a trailing `.0`.
            let tenths = (d.as_millis() + 50) / 100;
            return match tenths % 10 {
                0 => write!(f, "{}s", tenths / 10),
                t => write!(f, "{}.{t}s", tenths / 10),
            };
        }
        if secs < 60 {
            return write!(f, "{}s", (d.as_millis() + 500) / 1000);
        }
        let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
        match (h, m, s) {
            (0, m, 0) => write!(f, "{m}m"),
            (0, m, s) => write!(f, "{m}m {s}s"),
            (h, 0, _) => write!(f, "{h}h"),
            (h, m, _) => write!(f, "{h}h {m}m"),
        }
    }
}

/// A size as a person reads it: `512 B`, `4.0 KiB`, `5.0 MiB`, `1.2 GiB`.
pub fn bytes(n: u64) -> HumanBytes {
    HumanBytes(n)
}

/// See [`bytes`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanBytes(u64);

impl fmt::Display for HumanBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
        if self.0 < 1024 {
            return write!(f, "{} B", self.0);
        }
        let mut size = self.0 as f64 / 1024.0;
        let mut unit = 0;
        while size >= 1024.0 && unit < UNITS.len() - 1 {
            size /= 1024.0;
            unit += 1;
        }
        write!(f, "{size:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        let shown: Vec<String> = [0, 1023, 1024, 5 * 1024 * 1024, 1536 * 1024 * 1024]
            .into_iter()
            .map(|n| bytes(n).to_string())
            .collect();
        assert_eq!(shown, ["0 B", "1023 B", "1.0 KiB", "5.0 MiB", "1.5 GiB"]);
    }

    #[test]
    fn escapes_what_a_terminal_would_obey() {
        let hostile = "bye\n2026 eventsock: connected\x1b[2J\x1b]0;pwned\x07\u{202e}txt";
        let shown = escaped(hostile).to_string();
        assert_eq!(
            shown,
            "bye\\n2026 eventsock: connected\\u{1b}[2J\\u{1b}]0;pwned\\u{7}\\u{202e}txt"
        );
        assert!(!shown.chars().any(is_unsafe));
        assert_eq!(escaped("Olá, tudo bem?").to_string(), "Olá, tudo bem?");
        assert_eq!(escaped("\u{9b}31m").to_string(), "\\u{9b}31m");
    }

    #[test]
    fn json_stays_the_same_value_and_turns_safe() {
        let value = serde_json::json!({"text": "a\u{9b}31mb\u{202e}c\u{1b}"});
        let json = serde_json::to_string(&value).unwrap();
        assert!(json.contains('\u{9b}'), "serde_json leaves C1 raw");
        let safe = json_safe(&json);
        assert!(!safe.contains(is_unsafe), "{safe}");
        let back: serde_json::Value = serde_json::from_str(&safe).unwrap();
        assert_eq!(back, value);
        assert!(matches!(
            json_safe("{\"a\":1}"),
            std::borrow::Cow::Borrowed(_)
        ));
    }

    #[test]
    fn excerpts_are_cut_and_escaped() {
        assert_eq!(excerpt("{\"a\":\n1}", 80), "{\"a\":\\n1}");
        assert_eq!(excerpt("ééééé", 3), "ééé…");
    }

    #[test]
    fn durations_read_like_a_person_writes_them() {
        let ms = Duration::from_millis;
        let cases = [
            (ms(0), "0ms"),
            (Duration::from_micros(250), "250µs"),
            (ms(850), "850ms"),
            (ms(1000), "1s"),
            (ms(4210), "4.2s"),
            (ms(9990), "10s"),
            (ms(30_000), "30s"),
            (ms(59_600), "60s"),
            (ms(150_000), "2m 30s"),
            (ms(120_000), "2m"),
            (Duration::from_secs(3900), "1h 5m"),
            (Duration::from_secs(7200), "2h"),
        ];
        for (d, want) in cases {
            assert_eq!(duration(d).to_string(), want, "{d:?}");
        }
    }
}
