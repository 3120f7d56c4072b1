//! Strict JSON reading: every JSON text the tool reads goes through [`parse`]. Pure.
//!
//! serde_json keeps the last of two equal keys in an object and drops the first without a word:
//! an `ami_ids.json` with a region twice would lose the first copy's AMIs at the next merge.
//! [`parse`] refuses such input, naming the key, the object it sits in, and the line.

use serde::de::{self, DeserializeOwned, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt;

/// Why a JSON text was refused, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub line: usize,
    pub column: usize,
    pub kind: ErrorKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorKind {
    /// The same key twice in one object. `path` names the object, like `settings` or
    /// `images[3]`; it is empty for the top-level object.
    DuplicateKey { path: String, key: String },
    /// Not JSON at all. serde_json's syntax messages never quote the input.
    Syntax(String),
    /// JSON, but not the shape the reader expects. serde_json's message may quote a value: never
    /// show it for a file that holds secrets.
    Shape(String),
}

/// Parses `text` into `T`, refusing duplicate keys anywhere in it.
pub fn parse<T: DeserializeOwned>(text: &str) -> Result<T, Error> {
    check_duplicate_keys(text)?;
    serde_json::from_str(text).map_err(Error::from_serde)
}

/// Walks the whole text once without building anything; refuses the first duplicate key.
pub fn check_duplicate_keys(text: &str) -> Result<(), Error> {
    let found = RefCell::new(None);
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let walk = Walk {
        path: String::new(),
        found: &found,
    };
    let result = walk
        .deserialize(&mut deserializer)
        .and_then(|()| deserializer.end());
    match result {
        Ok(()) => Ok(()),
        Err(e) => Err(match found.into_inner() {
            Some((path, key)) => Error {
                line: e.line(),
                column: e.column(),
                kind: ErrorKind::DuplicateKey { path, key },
            },
            None => Error::from_serde(e),
        }),
    }
}

impl Error {
    fn from_serde(e: serde_json::Error) -> Error {
        // serde_json appends the position to its message; it is kept apart here.
        let text = e.to_string();
        let position = format!(" at line {} column {}", e.line(), e.column());
        let message = text.strip_suffix(&position).unwrap_or(&text).to_string();
        let kind = match e.classify() {
            serde_json::error::Category::Data => ErrorKind::Shape(message),
            _ => ErrorKind::Syntax(message),
        };
        Error {
            line: e.line(),
            column: e.column(),
            kind,
        }
    }

    /// The message without the parts that may hold a value of the input: for files with secrets.
    /// Duplicate keys are named only when `known_key` accepts them.
    pub fn without_values(&self, known_key: impl Fn(&str) -> bool) -> String {
        let at = self.position();
        match &self.kind {
            ErrorKind::DuplicateKey { key, .. } if known_key(key) => self.to_string(),
            ErrorKind::DuplicateKey { .. } => format!(
                "{at}: a key appears twice in one object (a JSON reader would silently keep only \
                 the last): remove one"
            ),
            ErrorKind::Syntax(_) => self.to_string(),
            ErrorKind::Shape(_) => format!("{at}: not the expected kind of JSON value"),
        }
    }

    fn position(&self) -> String {
        format!("line {}, column {}", self.line, self.column)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = self.position();
        match &self.kind {
            ErrorKind::DuplicateKey { path, key } => {
                let place = if path.is_empty() {
                    "the top-level object".to_string()
                } else {
                    format!("`{path}`")
                };
                write!(
                    f,
                    "{at}: duplicate key `{key}` in {place} (a JSON reader would silently keep \
                     only the last one and drop the first): remove one, or merge the two"
                )
            }
            ErrorKind::Syntax(message) => write!(f, "{at}: {message}"),
            ErrorKind::Shape(message) => write!(f, "{at}: {message}"),
        }
    }
}

/// A deserializer visitor that checks every object for duplicate keys and keeps nothing.
struct Walk<'a> {
    /// Where in the document this value sits, for the message.
    path: String,
    /// The object path and key of the first duplicate, set just before the walk fails.
    found: &'a RefCell<Option<(String, String)>>,
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut index = 0;
        loop {
            let element = Walk {
                path: format!("{}[{index}]", self.path),
                found: self.found,
            };
            if seq.next_element_seed(element)?.is_none() {
                return Ok(());
            }
            index += 1;
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut keys = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            let path = match self.path.as_str() {
                "" => key.clone(),
                parent => format!("{parent}.{key}"),
            };
            if !keys.insert(key.clone()) {
                *self.found.borrow_mut() = Some((self.path, key));
                return Err(de::Error::custom("duplicate key"));
            }
            map.next_value_seed(Walk {
                path,
                found: self.found,
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn duplicate(text: &str) -> (usize, String, String) {
        match parse::<Value>(text).unwrap_err() {
            Error {
                line,
                kind: ErrorKind::DuplicateKey { path, key },
                ..
            } => (line, path, key),
            other => panic!("not a duplicate: {other:?}"),
        }
    }

    #[test]
    fn accepts_what_serde_json_accepts_without_duplicates() {
        let value: Value =
            parse(r#"{"a": [1, -2, 3.5, true, null, "x"], "b": {"a": {}}}"#).unwrap();
        assert_eq!(value["b"], serde_json::json!({"a": {}}));
        // The same key in different objects is fine.
        parse::<Value>(r#"[{"id": 1}, {"id": 2}]"#).unwrap();
    }

    #[test]
    fn refuses_a_duplicate_naming_key_object_and_line() {
        let text = "{\n  \"us-east-1\": [],\n  \"eu-west-1\": [],\n  \"us-east-1\": []\n}\n";
        assert_eq!(duplicate(text), (4, String::new(), "us-east-1".into()));
        let nested = "{\"settings\": {\"regions\": [], \"regions\": []}}";
        assert_eq!(duplicate(nested), (1, "settings".into(), "regions".into()));
        let deep = r#"{"builds": [{"name": "a"}, {"name": "b", "name": "c"}]}"#;
        assert_eq!(duplicate(deep).1, "builds[1]");
        // Escapes do not hide a duplicate.
        assert_eq!(duplicate(r#"{"a": 1, "\u0061": 2}"#).2, "a");
        let message = parse::<Value>(text).unwrap_err().to_string();
        assert!(
            message.contains("line 4") && message.contains("`us-east-1`"),
            "{message}"
        );
        assert!(message.contains("the top-level object"), "{message}");
    }

    #[test]
    fn typed_targets_are_checked_too() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Row {
            id: String,
        }
        let err = parse::<Vec<Row>>(r#"[{"id": "a", "id": "b"}]"#).unwrap_err();
        assert!(
            matches!(err.kind, ErrorKind::DuplicateKey { .. }),
            "{err:?}"
        );
    }

    #[test]
    fn syntax_and_shape_errors_keep_their_position() {
        let err = parse::<Value>("{\n  \"a\": 1,\n}").unwrap_err();
        assert!(
            matches!(err.kind, ErrorKind::Syntax(_)) && err.line == 3,
            "{err:?}"
        );
        assert_eq!(err.to_string(), "line 3, column 1: trailing comma");
        let err = parse::<Vec<String>>("\"AKIDSECRET\"").unwrap_err();
        assert!(matches!(err.kind, ErrorKind::Shape(_)), "{err:?}");
        assert!(err.to_string().contains("AKIDSECRET"));
        assert!(!err.without_values(|_| true).contains("AKIDSECRET"));
    }

    #[test]
    fn without_values_names_only_known_keys() {
        let err = parse::<Value>(r#"{"AKIDSECRET": 1, "AKIDSECRET": 2}"#).unwrap_err();
        assert!(!err.without_values(|_| false).contains("AKIDSECRET"));
        let err = parse::<Value>(r#"{"aws_secret_key": "S3CR3T1", "aws_secret_key": "S3CR3T2"}"#)
            .unwrap_err();
        let message = err.without_values(|k| k == "aws_secret_key");
        assert!(
            message.contains("`aws_secret_key`") && !message.contains("S3CR3T"),
            "{message}"
        );
    }

    #[test]
    fn trailing_text_is_refused() {
        assert!(matches!(
            parse::<Value>("{} {}").unwrap_err().kind,
            ErrorKind::Syntax(_)
        ));
    }
}
