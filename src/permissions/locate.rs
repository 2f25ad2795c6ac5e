//! Finding the line of a problem in a permission file.
//!
//! Only used on the error path: loading a valid store never calls into this module.
//! A problem names a path into the document (`users` → `bob` → `roles` → item 1); for
//! TOML the path is walked in the spanned tree of the `toml` parser, for JSON a small
//! scanner walks the text once and records the lines of the requested keys and items.
//! When a path is only partly present, the line of its longest present prefix is used.

use std::collections::{HashMap, HashSet};

use toml::de::{DeTable, DeValue};

/// One step of a path into a document.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Seg {
    /// A key of a table / object.
    Key(String),
    /// An item of an array.
    Index(usize),
}

/// A path into a document.
pub(crate) type Path = Vec<Seg>;

/// Builds a path of keys.
pub(crate) fn keys(parts: &[&str]) -> Path {
    parts.iter().map(|p| Seg::Key((*p).to_owned())).collect()
}

/// Maps byte offsets to 1-based line numbers.
pub(crate) struct LineIndex(Vec<usize>);

impl LineIndex {
    pub(crate) fn new(text: &str) -> Self {
        Self(
            text.bytes()
                .enumerate()
                .filter_map(|(i, b)| (b == b'\n').then_some(i))
                .collect(),
        )
    }

    /// The 1-based line containing byte `offset`.
    pub(crate) fn line(&self, offset: usize) -> usize {
        self.0.partition_point(|&nl| nl < offset) + 1
    }
}

/// Lines of `paths` in a TOML document (1 where nothing of a path is found).
pub(crate) fn toml_lines(text: &str, paths: &[&[Seg]]) -> Vec<usize> {
    let Ok(root) = DeTable::parse(text) else {
        return vec![1; paths.len()];
    };
    let index = LineIndex::new(text);
    paths
        .iter()
        .map(|path| toml_line(root.get_ref(), &index, path))
        .collect()
}

fn toml_line(root: &DeTable<'_>, index: &LineIndex, path: &[Seg]) -> usize {
    let mut line = 1;
    let mut table: Option<&DeTable<'_>> = Some(root);
    let mut array: Option<&[toml::Spanned<DeValue<'_>>]> = None;
    for seg in path {
        let (offset, value) = match (seg, table, array) {
            (Seg::Key(k), Some(t), _) => match t.get_key_value(k.as_str()) {
                Some((key, value)) => (key.span().start, value),
                None => break,
            },
            (Seg::Index(i), _, Some(a)) => match a.get(*i) {
                Some(value) => (value.span().start, value),
                None => break,
            },
            _ => break,
        };
        line = index.line(offset);
        (table, array) = match value.get_ref() {
            DeValue::Table(t) => (Some(t), None),
            DeValue::Array(a) => (None, Some(&a[..])),
            _ => (None, None),
        };
    }
    line
}

/// Lines of `paths` in a JSON document (1 where nothing of a path is found).
pub(crate) fn json_lines(text: &str, paths: &[&[Seg]]) -> Vec<usize> {
    let mut wanted: HashSet<&[Seg]> = HashSet::new();
    for path in paths {
        for len in 1..=path.len() {
            wanted.insert(&path[..len]);
        }
    }
    let mut scanner = Scanner {
        text,
        b: text.as_bytes(),
        pos: 0,
        line: 1,
        wanted,
        found: HashMap::new(),
    };
    let _ = scanner.walk(&mut Vec::new());
    paths
        .iter()
        .map(|path| {
            (1..=path.len())
                .rev()
                .find_map(|len| scanner.found.get(&path[..len]).copied())
                .unwrap_or(1)
        })
        .collect()
}

/// A lenient JSON walker: it only follows the wanted paths, skips everything else, never
/// panics, and gives up (keeping what it found) on anything unexpected.
struct Scanner<'a, 'p> {
    text: &'a str,
    b: &'a [u8],
    pos: usize,
    line: usize,
    wanted: HashSet<&'p [Seg]>,
    found: HashMap<Path, usize>,
}

impl Scanner<'_, '_> {
    fn ws(&mut self) {
        while let Some(&c) = self.b.get(self.pos) {
            match c {
                b'\n' => self.line += 1,
                b' ' | b'\t' | b'\r' => {}
                _ => break,
            }
            self.pos += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    /// At a `"`: skips the string, returns the byte range of its raw contents.
    fn string(&mut self) -> Option<(usize, usize)> {
        self.pos += 1;
        let start = self.pos;
        loop {
            match *self.b.get(self.pos)? {
                b'"' => {
                    self.pos += 1;
                    return Some((start, self.pos - 1));
                }
                b'\\' => self.pos += 2,
                b'\n' => {
                    self.line += 1;
                    self.pos += 1;
                }
                _ => self.pos += 1,
            }
        }
    }

    fn key(&mut self) -> Option<String> {
        let (start, end) = self.string()?;
        let raw = self.text.get(start..end)?;
        if raw.contains('\\') {
            serde_json::from_str(self.text.get(start - 1..=end)?).ok()
        } else {
            Some(raw.to_owned())
        }
    }

    /// Skips one value, without recursion. Fails if it cannot make progress.
    fn skip_value(&mut self) -> Option<()> {
        self.ws();
        match self.peek()? {
            b'"' => self.string().map(drop),
            b'{' | b'[' => {
                let mut depth = 0usize;
                loop {
                    match self.peek()? {
                        b'"' => {
                            self.string()?;
                            continue;
                        }
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => {
                            depth = depth.checked_sub(1)?;
                            if depth == 0 {
                                self.pos += 1;
                                return Some(());
                            }
                        }
                        b'\n' => self.line += 1,
                        _ => {}
                    }
                    self.pos += 1;
                }
            }
            _ => {
                let start = self.pos;
                while let Some(c) = self.peek() {
                    if matches!(c, b',' | b'}' | b']' | b' ' | b'\t' | b'\r' | b'\n') {
                        break;
                    }
                    self.pos += 1;
                }
                (self.pos > start).then_some(())
            }
        }
    }

    /// Walks the value at the current position; `path` is where it sits.
    fn walk(&mut self, path: &mut Path) -> Option<()> {
        self.ws();
        match self.peek()? {
            b'{' => {
                self.pos += 1;
                loop {
                    self.ws();
                    match self.peek()? {
                        b'}' => {
                            self.pos += 1;
                            return Some(());
                        }
                        b',' => self.pos += 1,
                        b'"' => {
                            let line = self.line;
                            let key = self.key()?;
                            self.ws();
                            if self.peek()? != b':' {
                                return None;
                            }
                            self.pos += 1;
                            path.push(Seg::Key(key));
                            self.visit(path, line)?;
                            path.pop();
                        }
                        _ => return None,
                    }
                }
            }
            b'[' => {
                self.pos += 1;
                let mut index = 0;
                loop {
                    self.ws();
                    match self.peek()? {
                        b']' => {
                            self.pos += 1;
                            return Some(());
                        }
                        b',' => self.pos += 1,
                        _ => {
                            path.push(Seg::Index(index));
                            let line = self.line;
                            self.visit(path, line)?;
                            path.pop();
                            index += 1;
                        }
                    }
                }
            }
            _ => self.skip_value(),
        }
    }

    /// Records `path` if it is wanted and walks into it, or skips its value.
    fn visit(&mut self, path: &mut Path, line: usize) -> Option<()> {
        if self.wanted.contains(path.as_slice()) {
            self.found.entry(path.clone()).or_insert(line);
            self.walk(path)
        } else {
            self.skip_value()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(parts: &[&str]) -> Path {
        parts
            .iter()
            .map(|s| match s.parse::<usize>() {
                Ok(i) => Seg::Index(i),
                Err(_) => Seg::Key((*s).to_owned()),
            })
            .collect()
    }

    #[test]
    fn line_index() {
        let idx = LineIndex::new("a\nbc\n\nd");
        let cases = [(0, 1), (1, 1), (2, 2), (4, 2), (5, 3), (6, 4), (100, 4)];
        for (offset, line) in cases {
            assert_eq!(idx.line(offset), line, "offset {offset}");
        }
    }

    #[test]
    fn toml_paths() {
        let text = "\
# comment
[users.bob]
roles = [
  \"user\",
  \"root\",
]

[users.bob.rooms]
bob1 = \"readwrite\"

[rooms.\"team-*\"]
members = [\"@devs\"]
";
        let cases: &[(&[&str], usize)] = &[
            (&["users"], 2),
            (&["users", "bob"], 2),
            (&["users", "bob", "roles"], 3),
            (&["users", "bob", "roles", "1"], 5),
            (&["users", "bob", "roles", "9"], 3),
            (&["users", "bob", "rooms", "bob1"], 9),
            (&["rooms", "team-*", "members", "0"], 12),
            (&["users", "carol"], 2),
            (&["nothing"], 1),
        ];
        let paths: Vec<Path> = cases.iter().map(|(parts, _)| p(parts)).collect();
        let refs: Vec<&[Seg]> = paths.iter().map(Vec::as_slice).collect();
        let lines = toml_lines(text, &refs);
        for ((parts, want), got) in cases.iter().zip(lines) {
            assert_eq!(got, *want, "{parts:?}");
        }
    }

    #[test]
    fn json_paths() {
        let text = r#"{
  "groups": {"x": {"members": ["a", "b"]}},
  "users": {
    "alice": {"roles": ["user"], "rooms": {"a\"b": "read", "bob": "read"}},
    "bob": {
      "roles": [
        "user",
        "root"
      ],
      "groups": [{"nested": [1, 2, {"k": "}"}]}, "devs"],
      "password": null
    },
    "we\u0069rd": {}
  }
}"#;
        let cases: &[(&[&str], usize)] = &[
            (&["users"], 3),
            (&["users", "bob"], 5),
            (&["users", "bob", "roles"], 6),
            (&["users", "bob", "roles", "1"], 8),
            (&["users", "bob", "groups", "1"], 10),
            (&["users", "bob", "password"], 11),
            (&["users", "weird"], 13),
            (&["users", "alice", "rooms", "a\"b"], 4),
            (&["users", "carol", "roles"], 3),
            (&["groups", "x", "members", "1"], 2),
            (&["nothing"], 1),
        ];
        let paths: Vec<Path> = cases.iter().map(|(parts, _)| p(parts)).collect();
        let refs: Vec<&[Seg]> = paths.iter().map(Vec::as_slice).collect();
        let lines = json_lines(text, &refs);
        for ((parts, want), got) in cases.iter().zip(lines) {
            assert_eq!(got, *want, "{parts:?}");
        }
    }

    #[test]
    fn json_garbage_does_not_panic() {
        let paths = [p(&["users", "bob"])];
        let refs: Vec<&[Seg]> = paths.iter().map(Vec::as_slice).collect();
        for text in [
            "",
            "{",
            "{\"users\"",
            "{\"users\": {\"bob\": [",
            "]]]",
            "\"\\",
            "{\"a\":}",
            "{\"users\": [}",
            "{\"users\": {\"bob\": [}}",
            "{\"users\": {\"bob\" 1}}",
            "{\"users\": {\"bob\": 1 2}}",
        ] {
            assert_eq!(json_lines(text, &refs).len(), 1, "{text:?}");
        }
    }
}
