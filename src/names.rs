//! Validated NATS subject-token names (users, rooms, groups).
//!
//! A name is used as one token of a NATS subject (`chat.<room>.<user>`), so it
//! must never contain a separator (`.`), a wildcard (`*`, `>`) or whitespace.
//! Only ASCII letters, digits, `_` and `-` are allowed.

/// The longest name accepted, in bytes (all accepted characters are ASCII).
pub const MAX_NAME_LEN: usize = 64;

/// Guests' user ids start with this (any case); no user of the permission files or of an
/// identity provider may have such a name.
pub const GUEST_PREFIX: &str = "guest-";

/// Whether `s` is a name reserved for guests (`guest-…`, in any case).
#[must_use]
pub fn is_guest_name(s: &str) -> bool {
    s.len() >= GUEST_PREFIX.len()
        && s.as_bytes()[..GUEST_PREFIX.len()].eq_ignore_ascii_case(GUEST_PREFIX.as_bytes())
}

/// Why a string is not a valid name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The name is empty.
    #[error("empty name")]
    Empty,
    /// The name is longer than [`MAX_NAME_LEN`].
    #[error("longer than {max} characters")]
    TooLong {
        /// Length of the rejected name, in bytes.
        len: usize,
        /// The maximum length.
        max: usize,
    },
    /// The name contains a character outside `[A-Za-z0-9_-]`.
    #[error("invalid character {ch:?}")]
    BadChar {
        /// The first offending character.
        ch: char,
    },
}

/// Whether `c` may appear in a name.
#[must_use]
pub const fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

/// Checks that `s` is a valid name: 1..=[`MAX_NAME_LEN`] characters of `[A-Za-z0-9_-]`.
///
/// # Errors
/// The first reason the name is invalid (a bad character is reported before the length,
/// so the message names the actual problem of e.g. `"a.b"` even when it is also too long).
pub fn validate_name(s: &str) -> Result<(), NameError> {
    if s.is_empty() {
        return Err(NameError::Empty);
    }
    if let Some(ch) = s.chars().find(|&c| !is_name_char(c)) {
        return Err(NameError::BadChar { ch });
    }
    if s.len() > MAX_NAME_LEN {
        return Err(NameError::TooLong {
            len: s.len(),
            max: MAX_NAME_LEN,
        });
    }
    Ok(())
}

/// Whether `s` is a valid name (see [`validate_name`]).
#[must_use]
pub fn is_valid_name(s: &str) -> bool {
    validate_name(s).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_valid_names() {
        let long = "a".repeat(MAX_NAME_LEN);
        for name in ["a", "Z", "0", "_", "-", "bob", "all1", "team-red_2", &long] {
            assert_eq!(validate_name(name), Ok(()), "{name:?}");
            assert!(is_valid_name(name));
        }
    }

    #[test]
    fn rejects_invalid_names() {
        let too_long = "a".repeat(MAX_NAME_LEN + 1);
        let cases: &[(&str, NameError)] = &[
            ("", NameError::Empty),
            ("a.b", NameError::BadChar { ch: '.' }),
            ("*", NameError::BadChar { ch: '*' }),
            (">", NameError::BadChar { ch: '>' }),
            ("a b", NameError::BadChar { ch: ' ' }),
            (" a", NameError::BadChar { ch: ' ' }),
            ("a\t", NameError::BadChar { ch: '\t' }),
            ("a\n", NameError::BadChar { ch: '\n' }),
            ("a;b", NameError::BadChar { ch: ';' }),
            ("a,b", NameError::BadChar { ch: ',' }),
            ("@g", NameError::BadChar { ch: '@' }),
            ("$SYS", NameError::BadChar { ch: '$' }),
            ("é", NameError::BadChar { ch: 'é' }),
            ("a\0", NameError::BadChar { ch: '\0' }),
            (
                &too_long,
                NameError::TooLong {
                    len: MAX_NAME_LEN + 1,
                    max: MAX_NAME_LEN,
                },
            ),
        ];
        for (name, want) in cases {
            assert_eq!(validate_name(name).as_ref(), Err(want), "{name:?}");
            assert!(!is_valid_name(name));
        }
    }

    #[test]
    fn bad_char_wins_over_length() {
        let s = format!("{}.", "a".repeat(MAX_NAME_LEN + 5));
        assert_eq!(validate_name(&s), Err(NameError::BadChar { ch: '.' }));
    }

    #[test]
    fn messages() {
        let cases: &[(NameError, &str)] = &[
            (NameError::Empty, "empty name"),
            (NameError::BadChar { ch: '.' }, "invalid character '.'"),
            (NameError::BadChar { ch: '\n' }, "invalid character '\\n'"),
            (
                NameError::TooLong { len: 65, max: 64 },
                "longer than 64 characters",
            ),
        ];
        for (err, want) in cases {
            assert_eq!(err.to_string(), *want);
        }
    }
}
