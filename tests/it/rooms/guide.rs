//! The guide "Rooms from your app" (`docs/src/guides/rooms.md`) runs as written: every `curl`
//! and `nats req` line is sent to a real service, and its answer must be the one shown
//! beneath it (`# STATUS JSON` for HTTP, `# JSON` for NATS). In a documented answer, `"..."`
//! stands for any value, `...` in a list for entries not shown, and `createdAt` for a time.

use reqwest::Method;
use serde_json::Value;

use super::token_of;
use crate::support::{EnvOptions, TestEnv};

/// Split a shell line into words: single and double quotes, `\"` inside double quotes, and
/// `$NAME` expanded by `var`.
fn words(line: &str, var: &dyn Fn(&str) -> String) -> Vec<String> {
    let (mut out, mut word, mut quote, mut started) = (Vec::new(), String::new(), None, false);
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, ' ') => {
                if started {
                    out.push(std::mem::take(&mut word));
                }
                started = false;
                continue;
            }
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (Some('"'), '\\') if chars.peek() == Some(&'"') => word.push(chars.next().unwrap()),
            (Some('\''), c) => word.push(c),
            (_, '$') => {
                let name: String =
                    std::iter::from_fn(|| chars.next_if(|c| c.is_ascii_alphanumeric() || *c == '_'))
                        .collect();
                word.push_str(&var(&name));
            }
            (_, c) => word.push(c),
        }
        started = true;
    }
    if started {
        out.push(word);
    }
    out
}

/// Whether `actual` is what the guide shows: equal, with `"..."` any value, a list's `...`
/// (already dropped from `shown`) any further entries, and `createdAt` any time.
fn matches(shown: &Value, actual: &Value, partial_list: bool) -> bool {
    match (shown, actual) {
        (Value::String(s), _) if s == "..." => true,
        (Value::Object(s), Value::Object(a)) => {
            s.len() == a.len()
                && s.iter().all(|(k, v)| {
                    a.get(k)
                        .is_some_and(|x| k == "createdAt" && x.is_i64() || matches(v, x, false))
                })
        }
        (Value::Array(s), Value::Array(a)) => {
            if partial_list {
                s.iter().all(|v| a.iter().any(|x| matches(v, x, false)))
            } else {
                s.len() == a.len() && s.iter().zip(a).all(|(v, x)| matches(v, x, false))
            }
        }
        _ => shown == actual,
    }
}

/// A documented answer: `[a, b, ...]` lists only some entries.
fn shown(text: &str) -> (Value, bool) {
    let partial = text.ends_with(", ...]");
    let text = if partial {
        format!("{}]", text.trim_end_matches(", ...]"))
    } else {
        text.to_string()
    };
    let v = serde_json::from_str(&text).unwrap_or_else(|e| panic!("the guide shows bad JSON {text}: {e}"));
    (v, partial)
}

struct Curl {
    method: Method,
    path: String,
    token: Option<String>,
    body: Option<Value>,
}

fn curl(words: &[String]) -> Curl {
    let (mut method, mut path, mut token, mut body) = (None, None, None, None);
    let mut it = words.iter().skip(1);
    while let Some(w) = it.next() {
        match w.as_str() {
            "-s" => {}
            "-X" => method = Some(Method::from_bytes(it.next().unwrap().as_bytes()).unwrap()),
            "-H" => {
                let h = it.next().unwrap();
                if let Some(t) = h.strip_prefix("Authorization: Bearer ") {
                    token = Some(t.to_string());
                }
            }
            "-d" => body = Some(serde_json::from_str(it.next().unwrap()).unwrap()),
            w if w.starts_with("localhost:8080/") => path = Some(w["localhost:8080".len()..].to_string()),
            w => panic!("the guide's curl has an option this test does not know: {w}"),
        }
    }
    Curl {
        method: method.unwrap_or(if body.is_some() { Method::POST } else { Method::GET }),
        path: path.expect("a URL"),
        token,
        body,
    }
}

#[tokio::test]
async fn the_rooms_guide_runs_as_written() {
    let guide =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/src/guides/rooms.md")).unwrap();
    let env = TestEnv::start(EnvOptions::default()).await;
    env.add_service_user("helpdesk");
    let svc = env.start_callout().await;
    let tokens = [
        ("ALICE", token_of(&svc, "alice").await),
        ("BOB", token_of(&svc, "bob").await),
    ];
    let var = |name: &str| -> String {
        tokens
            .iter()
            .find(|(n, _)| *n == name)
            .map_or_else(|| panic!("the guide uses ${name}"), |(_, t)| t.clone())
    };
    let app = env.endpoint_caller("helpdesk").await;
    let http = reqwest::Client::new();
    let lines: Vec<&str> = guide.lines().collect();
    let (mut http_calls, mut nats_calls) = (0, 0);
    for (i, line) in lines.iter().enumerate() {
        let Some(answer) = lines.get(i + 1).and_then(|l| l.strip_prefix("# ")) else {
            continue;
        };
        let w = words(line, &var);
        let actual = match w.first().map(String::as_str) {
            Some("curl") => {
                let c = curl(&w);
                let mut req = http.request(c.method, format!("{}{}", svc.http_url(), c.path));
                if let Some(t) = c.token {
                    req = req.bearer_auth(t);
                }
                if let Some(b) = c.body {
                    req = req.json(&b);
                }
                let resp = req.send().await.unwrap();
                let status = resp.status().as_u16();
                let (want, rest) = answer.split_once(' ').unwrap();
                assert_eq!(want.parse::<u16>().unwrap(), status, "{line}");
                http_calls += 1;
                let body: Value = resp.json().await.unwrap();
                (rest.to_string(), body)
            }
            Some("nats") if w.get(1).is_some_and(|s| s == "req") => {
                let reply = app
                    .client
                    .request(w[2].clone(), w[3].clone().into())
                    .await
                    .unwrap();
                nats_calls += 1;
                (
                    answer.to_string(),
                    serde_json::from_slice(&reply.payload).unwrap(),
                )
            }
            _ => continue,
        };
        let (want, partial) = shown(&actual.0);
        assert!(
            matches(&want, &actual.1, partial),
            "{line}\n shown: {}\n  got: {}",
            actual.0,
            actual.1
        );
    }
    assert!(
        http_calls >= 12 && nats_calls >= 7,
        "the guide's examples ran: {http_calls} HTTP, {nats_calls} NATS"
    );
}

#[test]
fn a_guide_answer_that_differs_is_caught() {
    let (v, partial) = shown(r#"[{"name":"a","n":"..."}, ...]"#);
    assert!(partial);
    let got: Value = serde_json::json!([{"name": "b", "n": 1}, {"name": "a", "n": 2}]);
    assert!(matches(&v, &got, partial));
    let (v, partial) = shown(r#"{"name":"a","createdAt":1}"#);
    assert!(matches(
        &v,
        &serde_json::json!({"name": "a", "createdAt": 7}),
        partial
    ));
    assert!(!matches(
        &v,
        &serde_json::json!({"name": "b", "createdAt": 7}),
        partial
    ));
    assert!(!matches(
        &v,
        &serde_json::json!({"name": "a", "createdAt": 7, "x": 1}),
        partial
    ));
    let w = words(r#"curl -H "a: $X" -d '{"k":"v w"}' "q\"x""#, &|_| "T".into());
    assert_eq!(w, ["curl", "-H", "a: T", "-d", r#"{"k":"v w"}"#, r#"q"x"#]);
}
