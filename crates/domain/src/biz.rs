//! Reading `biz_content` fields with the rules every method shares: absent, `null` and `""` mean
//! "not given"; integers are accepted where strings are documented (the Python SDK's models send
//! them); any other JSON type, or a value over the field's length, is `INVALID_PARAMETER`.

use serde_json::{Map, Value};

use crate::error::BizError;

/// A view of `biz_content` with typed accessors.
#[derive(Debug, Clone, Copy)]
pub struct Fields<'a>(pub &'a Map<String, Value>);

impl<'a> Fields<'a> {
    /// An optional string field of at most `max_chars` characters.
    pub fn text(&self, name: &str, max_chars: usize) -> Result<Option<String>, BizError> {
        let value = match self.0.get(name) {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::String(s)) if s.is_empty() => return Ok(None),
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) if n.is_i64() || n.is_u64() => n.to_string(),
            Some(_) => {
                return Err(BizError::InvalidParameter(format!(
                    "{name} must be a string"
                )));
            }
        };
        if value.chars().count() > max_chars {
            return Err(BizError::InvalidParameter(format!(
                "{name} is longer than {max_chars} characters"
            )));
        }
        Ok(Some(value))
    }

    /// An optional field parsed by `parse`, whose error is reported against `name`.
    pub fn parsed<T, E: std::fmt::Display>(
        &self,
        name: &str,
        max_chars: usize,
        parse: impl FnOnce(String) -> Result<T, E>,
    ) -> Result<Option<T>, BizError> {
        self.text(name, max_chars)?
            .map(|v| parse(v).map_err(|e| BizError::InvalidParameter(format!("{name} {e}"))))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(json: &str) -> Map<String, Value> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn absent_null_and_empty_are_not_given() {
        let m = map(r#"{"a":null,"b":""}"#);
        let f = Fields(&m);
        assert_eq!(f.text("a", 5), Ok(None));
        assert_eq!(f.text("b", 5), Ok(None));
        assert_eq!(f.text("c", 5), Ok(None));
    }

    #[test]
    fn integers_are_read_as_text_and_other_types_are_invalid() {
        let m = map(r#"{"n":2088101122675263,"f":1.5,"o":{},"a":[],"t":true}"#);
        let f = Fields(&m);
        assert_eq!(f.text("n", 32), Ok(Some("2088101122675263".into())));
        for name in ["f", "o", "a", "t"] {
            assert_eq!(
                f.text(name, 32),
                Err(BizError::InvalidParameter(format!(
                    "{name} must be a string"
                )))
            );
        }
    }

    #[test]
    fn length_is_counted_in_characters() {
        let m = map(r#"{"s":"用户用户"}"#);
        assert_eq!(Fields(&m).text("s", 4), Ok(Some("用户用户".into())));
        assert!(Fields(&m).text("s", 3).is_err());
    }
}
