//! What is wrong with a request and where: raised inside serde as an error message, turned into
//! OpenAI's 400 body at one place ([`body_error`], [`Fault::into_api_error`]).
//!
//! serde errors carry only text, so a [`Fault`] travels through them as a marker followed by its
//! JSON; `serde_path_to_error` adds where it happened. A fault raised inside a value that was
//! read into a [`Value`] first (to look at its `type`) keeps its path relative to that value
//! ([`nested`]), and the outer path is put in front when it surfaces.

use std::fmt::{self, Write as _};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::ApiError;

/// Starts the text of a serde error that carries a [`Fault`].
const MARKER: &str = "request fault: ";

/// A JSON value's kind, as OpenAI's messages name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Kind {
    Null,
    Boolean,
    Integer,
    Decimal,
    String,
    Array,
    Object,
}

impl Kind {
    /// The kind of a buffered value.
    pub fn of(value: &Value) -> Self {
        match value {
            Value::Null => Kind::Null,
            Value::Bool(_) => Kind::Boolean,
            Value::Number(n) if n.is_f64() => Kind::Decimal,
            Value::Number(_) => Kind::Integer,
            Value::String(_) => Kind::String,
            Value::Array(_) => Kind::Array,
            Value::Object(_) => Kind::Object,
        }
    }

    /// "an integer", "a string"...
    fn phrase(self) -> &'static str {
        match self {
            Kind::Null => "null",
            Kind::Boolean => "a boolean",
            Kind::Integer => "an integer",
            Kind::Decimal => "a decimal",
            Kind::String => "a string",
            Kind::Array => "an array",
            Kind::Object => "an object",
        }
    }
}

/// One step of a parameter's path: an object key or an array index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
enum Step {
    Key(String),
    Index(usize),
}

/// What is wrong.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Problem {
    /// Absent or `null`.
    Missing,
    InvalidType {
        expected: String,
        got: Kind,
    },
    InvalidValue {
        value: String,
        supported: Vec<String>,
    },
    /// Valid for OpenAI, not supported here: `unsupported_value` with this message.
    Unsupported(String),
    /// `invalid_value` with this message.
    Invalid(String),
    UnknownParameter,
    TooLong {
        max: usize,
        got: usize,
    },
    /// An error serde raised by itself (e.g. a duplicate field), with its text.
    Other(String),
}

/// A problem and where it is, relative to the value being read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Fault {
    at: Vec<Step>,
    problem: Problem,
}

impl Fault {
    fn new(problem: Problem) -> Self {
        Self {
            at: Vec::new(),
            problem,
        }
    }

    /// The field `field` of the value is absent or `null`.
    pub fn missing(field: &str) -> Self {
        Self::new(Problem::Missing).in_field(field)
    }

    /// The value is `got` where `expected` ("a string") was.
    pub fn invalid_type(expected: &str, got: Kind) -> Self {
        Self::new(Problem::InvalidType {
            expected: expected.to_owned(),
            got,
        })
    }

    /// The value is not one of `supported`.
    pub fn invalid_value(value: &str, supported: &[&str]) -> Self {
        Self::new(Problem::InvalidValue {
            value: value.to_owned(),
            supported: supported.iter().map(|s| (*s).to_owned()).collect(),
        })
    }

    /// Valid for OpenAI but not supported by this endpoint.
    pub fn unsupported(message: String) -> Self {
        Self::new(Problem::Unsupported(message))
    }

    /// Invalid, in these words.
    pub fn invalid(message: String) -> Self {
        Self::new(Problem::Invalid(message))
    }

    /// The key itself is not allowed here.
    pub fn unknown_parameter() -> Self {
        Self::new(Problem::UnknownParameter)
    }

    /// An array longer than `max`.
    pub fn too_long(max: usize, got: usize) -> Self {
        Self::new(Problem::TooLong { max, got })
    }

    /// The same fault, inside field `field`.
    pub fn in_field(mut self, field: &str) -> Self {
        self.at.insert(0, Step::Key(field.to_owned()));
        self
    }

    /// The same fault, inside item `index` of an array.
    pub fn in_item(mut self, index: usize) -> Self {
        self.at.insert(0, Step::Index(index));
        self
    }

    fn under(mut self, path: &serde_path_to_error::Path) -> Self {
        let outer = path.iter().filter_map(|segment| match segment {
            serde_path_to_error::Segment::Seq { index } => Some(Step::Index(*index)),
            serde_path_to_error::Segment::Map { key } => Some(Step::Key(key.clone())),
            // Requests are read without serde enums, and JSON keys are strings.
            serde_path_to_error::Segment::Enum { .. } | serde_path_to_error::Segment::Unknown => {
                None
            }
        });
        self.at.splice(0..0, outer);
        self
    }

    /// The fault a serde error carries, or [`Problem::Other`] for serde's own errors.
    fn from_serde(error: &serde_json::Error) -> Self {
        let text = error.to_string();
        let position = format!(" at line {} column {}", error.line(), error.column());
        let message = text.strip_suffix(position.as_str()).unwrap_or(&text);
        message
            .strip_prefix(MARKER)
            .and_then(|json| serde_json::from_str(json).ok())
            .unwrap_or_else(|| Self::new(Problem::Other(message.to_owned())))
    }

    /// The 400 for this fault, its path read from the top of the body.
    pub fn into_api_error(self) -> ApiError {
        let param = param(&self.at);
        match self.problem {
            Problem::Missing => ApiError::missing(&param),
            Problem::InvalidType { expected, got } => {
                ApiError::invalid_type(&param, &expected, got.phrase())
            }
            Problem::InvalidValue { value, supported } => {
                ApiError::invalid_value(&param, &value, &supported)
            }
            Problem::Unsupported(message) => {
                ApiError::invalid(message, Some(&param), Some("unsupported_value"))
            }
            Problem::Invalid(message) => {
                ApiError::invalid(message, Some(&param), Some("invalid_value"))
            }
            Problem::UnknownParameter => ApiError::invalid(
                format!("Unknown parameter: '{param}'."),
                Some(&param),
                Some("unknown_parameter"),
            ),
            Problem::TooLong { max, got } => ApiError::array_too_long(&param, max, got),
            Problem::Other(message) => {
                ApiError::invalid(format!("Invalid '{param}': {message}."), Some(&param), None)
            }
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let json = serde_json::to_string(self).map_err(|_| fmt::Error)?;
        write!(f, "{MARKER}{json}")
    }
}

/// `tools[0].headers.X` for a path; `body` for the body itself.
fn param(at: &[Step]) -> String {
    if at.is_empty() {
        return "body".to_owned();
    }
    let mut param = String::new();
    for step in at {
        match step {
            Step::Key(key) if param.is_empty() => param.push_str(key),
            Step::Key(key) => {
                param.push('.');
                param.push_str(key);
            }
            Step::Index(index) => {
                let _ = write!(param, "[{index}]");
            }
        }
    }
    param
}

/// The 400 for a body serde could not read: OpenAI's "could not parse" for broken JSON, else the
/// fault with its path.
pub(crate) fn body_error(error: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    if error.inner().is_syntax() || error.inner().is_eof() {
        return ApiError::unparsable();
    }
    Fault::from_serde(error.inner())
        .under(error.path())
        .into_api_error()
}

/// Reads `T` from a buffered value; a fault inside keeps its path relative to the value.
pub(crate) fn nested<T: DeserializeOwned>(value: Value) -> Result<T, Fault> {
    serde_path_to_error::deserialize(value)
        .map_err(|error| Fault::from_serde(error.inner()).under(error.path()))
}

/// The value of a required field (`None` when absent or `null`).
pub(crate) fn required<T>(value: Option<T>, field: &str) -> Result<T, Fault> {
    value.ok_or_else(|| Fault::missing(field))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fault_survives_a_serde_error_with_its_position() {
        let fault = Fault::invalid_type("a string", Kind::Integer).in_field("model");
        let error: serde_json::Error = serde::de::Error::custom(&fault);
        assert_eq!(Fault::from_serde(&error), fault);
        let positioned = serde_json::from_str::<Value>("[").unwrap_err();
        assert!(matches!(
            Fault::from_serde(&positioned).problem,
            Problem::Other(m) if m == "EOF while parsing a list"
        ));
    }

    #[test]
    fn params_join_keys_and_indexes() {
        let fault = Fault::missing("name").in_item(0).in_field("tools");
        assert_eq!(param(&fault.at), "tools[0].name");
        assert_eq!(param(&[]), "body");
    }
}
