//! Logs and metrics: the tracing subscriber (text or JSON) and the Prometheus recorder.
//!
//! Log lines cannot be forged: client-controlled text (a CONNECT `user` field, a token
//! claim, an HTTP field) may hold newlines, terminal escapes, spaces or `key=value` pairs,
//! so the text format writes every value that holds whitespace, a control character, `=`,
//! `"` or `\` quoted and escaped: `user=bob`, `requested="x result=allow"`. It can never
//! end a line or read as another field. JSON escapes by itself.

use std::fmt;
use std::io::IsTerminal;
use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing::field::{Field, Visit};
use tracing_subscriber::field::{MakeExt, MakeVisitor, VisitFmt, VisitOutput};
use tracing_subscriber::fmt::format::Writer;

use crate::config::LogFormat;

/// Set up logging: `RUST_LOG` filter (default info), text or JSON on stderr.
pub fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "nats_callout=info,async_nats=warn".into());
    // Colours only for a terminal: log files and collectors get plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.fmt_fields(TextFields.delimited(" ")).try_init(),
    };
}

/// The fields of a text log line (see the module doc).
#[derive(Debug, Clone, Copy, Default)]
pub struct TextFields;

impl<'w> MakeVisitor<Writer<'w>> for TextFields {
    type Visitor = TextVisitor<'w>;
    fn make_visitor(&self, writer: Writer<'w>) -> TextVisitor<'w> {
        TextVisitor {
            writer,
            result: Ok(()),
        }
    }
}

/// Writes one field at a time: `name=value`, the message bare.
pub struct TextVisitor<'w> {
    writer: Writer<'w>,
    result: fmt::Result,
}

impl TextVisitor<'_> {
    fn field(&mut self, field: &Field, value: &str) {
        if self.result.is_err() {
            return;
        }
        self.result = if field.name() == "message" {
            write_escaped(&mut self.writer, value)
        } else {
            write!(self.writer, "{}=", field.name()).and_then(|()| write_value(&mut self.writer, value))
        };
    }
}

impl Visit for TextVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.field(field, value);
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.field(field, &format!("{value:?}"));
    }
}

impl VisitOutput<fmt::Result> for TextVisitor<'_> {
    fn finish(self) -> fmt::Result {
        self.result
    }
}

impl VisitFmt for TextVisitor<'_> {
    fn writer(&mut self) -> &mut dyn fmt::Write {
        &mut self.writer
    }
}

/// What could end a line, drive a terminal, or read as another field.
fn risky(c: char) -> bool {
    c.is_control() || c == '\u{2028}' || c == '\u{2029}'
}

/// One value: as it is when plain, else quoted with `\`, `"` and every risky character
/// escaped.
pub fn write_value(w: &mut impl fmt::Write, value: &str) -> fmt::Result {
    let plain = !value
        .chars()
        .any(|c| risky(c) || c.is_whitespace() || matches!(c, '=' | '"' | '\\'));
    if plain {
        return w.write_str(value);
    }
    w.write_char('"')?;
    let mut rest = value;
    while let Some(i) = rest.find(|c: char| risky(c) || matches!(c, '"' | '\\')) {
        w.write_str(&rest[..i])?;
        let c = rest[i..].chars().next().unwrap_or_default();
        escape(w, c)?;
        rest = &rest[i + c.len_utf8()..];
    }
    w.write_str(rest)?;
    w.write_char('"')
}

/// Text with every risky character escaped (the message, which is ours).
fn write_escaped(w: &mut impl fmt::Write, text: &str) -> fmt::Result {
    let mut rest = text;
    while let Some(i) = rest.find(risky) {
        w.write_str(&rest[..i])?;
        let c = rest[i..].chars().next().unwrap_or_default();
        escape(w, c)?;
        rest = &rest[i + c.len_utf8()..];
    }
    w.write_str(rest)
}

fn escape(w: &mut impl fmt::Write, c: char) -> fmt::Result {
    match c {
        '\n' => w.write_str("\\n"),
        '\r' => w.write_str("\\r"),
        '\t' => w.write_str("\\t"),
        '"' => w.write_str("\\\""),
        '\\' => w.write_str("\\\\"),
        c => write!(w, "\\u{{{:x}}}", c as u32),
    }
}

/// The process-wide Prometheus recorder (installed on first use).
pub fn metrics() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(&[
                    0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0,
                ])
                .expect("static buckets are valid")
                .build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (tests): then ours only renders empty.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(s: &str) -> String {
        let mut out = String::new();
        write_value(&mut out, s).unwrap();
        out
    }

    #[test]
    fn control_characters_cannot_start_a_line_or_drive_a_terminal() {
        let cases = [
            ("all1;bob1", "all1;bob1"),
            ("a\nINFO forged", r#""a\nINFO forged""#),
            ("a\r\nb", r#""a\r\nb""#),
            ("\u{1b}[31mred", r#""\u{1b}[31mred""#),
            ("x\u{2028}y\u{85}z", r#""x\u{2028}y\u{85}z""#),
            ("tab\tstop", r#""tab\tstop""#),
            ("ünïcödé", "ünïcödé"),
        ];
        for (input, want) in cases {
            let out = value(input);
            assert_eq!(out, want, "{input:?}");
            assert!(!out.contains('\n') && !out.contains('\r'));
        }
    }

    #[test]
    fn client_text_cannot_read_as_another_field() {
        let cases = [
            ("x result=allow user=admin", r#""x result=allow user=admin""#),
            ("a=b", r#""a=b""#),
            (r#"say "hi""#, r#""say \"hi\"""#),
            (r"back\slash", r#""back\\slash""#),
            (r#"x\" user=admin"#, r#""x\\\" user=admin""#),
            ("", ""),
            ("bob", "bob"),
        ];
        for (input, want) in cases {
            assert_eq!(value(input), want, "{input:?}");
        }
        // Whatever the text, a quoted value ends at its closing quote and nowhere before.
        for input in [r#"a" b="c"#, r#"\""#, r#"\\" x=y"#] {
            let out = value(input);
            let inner = &out[1..out.len() - 1];
            let mut chars = inner.chars();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => assert!(chars.next().is_some(), "{out}"),
                    '"' => panic!("an unescaped quote inside {out}"),
                    _ => {}
                }
            }
        }
    }
}
