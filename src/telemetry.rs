//! Logs and metrics: the tracing subscriber (text or JSON) and the Prometheus recorder.
//!
//! Log lines cannot be forged: client-controlled text (a CONNECT `user` field, a token
//! claim, an HTTP field) may hold newlines or terminal escapes, so the text format writes
//! every field with control characters escaped (JSON escapes them by itself).

use std::fmt::{self, Write as _};
use std::io::IsTerminal;
use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::field::MakeExt;
use tracing_subscriber::fmt::format::{Writer, debug_fn};

/// Set up logging: `RUST_LOG` filter (default info), text or JSON on stderr.
pub fn init_tracing(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "nats_callout=info,async_nats=warn".into());
    // Colours only for a terminal: log files and collectors get plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder
            .fmt_fields(debug_fn(write_field).delimited(" "))
            .try_init()
    };
}

/// One field of a text log line, `name=value` (the message bare), with every control
/// character (newline, carriage return, escape, ...) and Unicode line separator escaped.
pub fn write_field(w: &mut Writer<'_>, field: &tracing::field::Field, value: &dyn fmt::Debug) -> fmt::Result {
    if field.name() != "message" {
        write!(w, "{}=", field.name())?;
    }
    write!(EscapeControls(w), "{value:?}")
}

/// Passes text through, escaping what could end a log line or drive a terminal.
pub struct EscapeControls<W>(pub W);

impl<W: fmt::Write> fmt::Write for EscapeControls<W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let risky = |c: char| c.is_control() || c == '\u{2028}' || c == '\u{2029}';
        let mut rest = s;
        while let Some(i) = rest.find(risky) {
            self.0.write_str(&rest[..i])?;
            let c = rest[i..].chars().next().unwrap_or_default();
            match c {
                '\n' => self.0.write_str("\\n")?,
                '\r' => self.0.write_str("\\r")?,
                '\t' => self.0.write_str("\\t")?,
                c => write!(self.0, "\\u{{{:x}}}", c as u32)?,
            }
            rest = &rest[i + c.len_utf8()..];
        }
        self.0.write_str(rest)
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

    fn escaped(s: &str) -> String {
        let mut out = String::new();
        EscapeControls(&mut out).write_str(s).unwrap();
        out
    }

    #[test]
    fn control_characters_cannot_start_a_line_or_drive_a_terminal() {
        let cases = [
            ("all1;bob1", "all1;bob1"),
            ("a\nINFO forged", "a\\nINFO forged"),
            ("a\r\nb", "a\\r\\nb"),
            ("\u{1b}[31mred", "\\u{1b}[31mred"),
            ("x\u{2028}y\u{85}z", "x\\u{2028}y\\u{85}z"),
            ("tab\tstop", "tab\\tstop"),
            ("ünïcödé", "ünïcödé"),
        ];
        for (input, want) in cases {
            let out = escaped(input);
            assert_eq!(out, want, "{input:?}");
            assert!(!out.contains('\n') && !out.contains('\r'));
        }
    }
}
