//! The `json` profile's fields, and reading their values from a record.
//!
//! A field is a top-level key (`stream`) or, when it starts with `/`, a
//! JSON Pointer (`/meta/seq`). With a schema the whole record is parsed
//! into a [`Value`] (the schema needs it) and the fields are looked up in
//! it. Without one, [`Keys::read`] goes through the record once and keeps
//! only the values of the top-level keys the fields begin with; a pointer
//! then follows its other segments inside its key's value.
//!
//! Both readings find the same values and refuse the same texts with the
//! same errors. The values not kept are read by the same serde_json calls
//! as a `Value`'s (so numbers out of range, lone surrogates in escapes and
//! nesting deeper than serde_json's limit still make a record not JSON),
//! only not stored; of duplicate keys the last one counts, as in a
//! `Value`'s map. An object whose first key is serde_json's raw-value
//! token, which a `Value` reads in its own way, makes [`Keys::read`] leave
//! the record to a whole `Value`.

use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

/// The most distinct top-level keys [`Keys::read`] keeps: one per field.
const MAX_KEYS: usize = 4;

/// serde_json's (private) `serde_json::raw::TOKEN`: a `Value` reads an
/// object whose first key this is as the JSON text in that key's string.
const RAW_VALUE_TOKEN: &str = "$serde_json::private::RawValue";

/// A configured field.
#[derive(Debug)]
pub(super) struct Field {
    /// As configured, e.g. `/meta/seq`.
    spec: String,
    /// Where in `spec` the pointer inside its top-level key's value begins
    /// (`spec.len()` for a top-level key: the value itself).
    rest: usize,
    /// The index of its top-level key in its [`Keys`].
    slot: usize,
}

impl Field {
    /// As configured.
    pub(super) fn spec(&self) -> &str {
        &self.spec
    }
}

/// The distinct top-level keys that fields begin with.
#[derive(Debug, Default)]
pub(super) struct Keys(Vec<String>);

impl Keys {
    /// The field `spec` (not empty), its top-level key added to these.
    ///
    /// A pointer's first segment is unescaped as [`Value::pointer`] does:
    /// `~1` to `/`, then `~0` to `~`.
    pub(super) fn field(&mut self, spec: String) -> Field {
        let (key, rest) = match spec.strip_prefix('/') {
            Some(pointer) => {
                let first = pointer.split('/').next().unwrap_or_default();
                (first.replace("~1", "/").replace("~0", "~"), 1 + first.len())
            }
            None => (spec.clone(), spec.len()),
        };
        let slot = match self.0.iter().position(|known| *known == key) {
            Some(slot) => slot,
            None => {
                self.0.push(key);
                self.0.len() - 1
            }
        };
        Field { spec, rest, slot }
    }

    /// Whether no field was added.
    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The values of these keys in `text`, a JSON object, read in one pass
    /// that checks the rest as parsing it into a [`Value`] would; `None`
    /// when only a whole `Value` reads `text` right (see the module).
    ///
    /// # Errors
    /// The error parsing `text` into a `Value` gives.
    pub(super) fn read(&self, text: &str) -> Result<Option<Kept>, serde_json::Error> {
        if self.0.len() > MAX_KEYS {
            return Ok(None);
        }
        let token = Cell::new(false);
        let mut deserializer = serde_json::Deserializer::from_str(text);
        let top_level = TopLevel {
            keys: &self.0,
            token: &token,
        };
        match top_level
            .deserialize(&mut deserializer)
            .and_then(|kept| deserializer.end().map(|()| kept))
        {
            Ok(kept) => Ok(Some(kept)),
            Err(_) if token.get() => Ok(None),
            Err(error) => Err(error),
        }
    }
}

/// The values of a record's top-level [`Keys`], by [`Field::slot`].
#[derive(Debug, Default)]
pub(super) struct Kept([Option<Value>; MAX_KEYS]);

/// What a record's fields are read from.
#[derive(Debug)]
pub(super) enum Record {
    /// Nothing: no field is configured.
    Nothing,
    /// The whole record.
    Whole(Value),
    /// Its values of the fields' top-level keys.
    TopLevel(Kept),
}

impl Record {
    /// The whole record, when it was parsed.
    pub(super) fn whole(&self) -> Option<&Value> {
        match self {
            Record::Whole(record) => Some(record),
            Record::Nothing | Record::TopLevel(_) => None,
        }
    }

    /// The value of `field`, or why there is none.
    pub(super) fn find(&self, field: &Field) -> Result<&Value, String> {
        let found = match self {
            Record::Nothing => None,
            Record::Whole(record) if field.spec.starts_with('/') => record.pointer(&field.spec),
            Record::Whole(record) => record.get(&field.spec),
            Record::TopLevel(Kept(kept)) => kept
                .get(field.slot)
                .and_then(Option::as_ref)
                .zip(field.spec.get(field.rest..))
                .and_then(|(value, rest)| value.pointer(rest)),
        };
        found.ok_or_else(|| format!("field `{}` is missing", field.spec))
    }

    /// The integer in `field`, when it fits a `T`.
    pub(super) fn integer<T: TryFrom<u64>>(
        &self,
        field: &Field,
        expected: &str,
    ) -> Result<T, String> {
        let value = self.find(field)?;
        value
            .as_u64()
            .and_then(|n| T::try_from(n).ok())
            .ok_or_else(|| mistyped(field, expected, value))
    }
}

/// Says that `field` holds `found` where `expected` was expected.
pub(super) fn mistyped(field: &Field, expected: &str, found: &Value) -> String {
    let found = match found {
        Value::Null => "null".to_owned(),
        Value::Bool(_) => "a boolean".to_owned(),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) if s.is_empty() => "an empty string".to_owned(),
        Value::String(_) => "a string".to_owned(),
        Value::Array(_) => "an array".to_owned(),
        Value::Object(_) => "an object".to_owned(),
    };
    format!("field `{}` must be {expected}, found {found}", field.spec)
}

/// Reads a record's top-level object into [`Kept`].
struct TopLevel<'a> {
    keys: &'a [String],
    /// Set on meeting [`RAW_VALUE_TOKEN`] as a first key.
    token: &'a Cell<bool>,
}

impl<'de> DeserializeSeed<'de> for TopLevel<'_> {
    type Value = Kept;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Kept, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for TopLevel<'_> {
    type Value = Kept;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Kept, A::Error> {
        let mut kept = Kept::default();
        let mut first = true;
        while let Some(key) = map.next_key_seed(Key {
            keys: self.keys,
            first,
        })? {
            first = false;
            match key {
                KeyIs::Kept(slot) => {
                    let value: Value = map.next_value()?;
                    if let Some(kept) = kept.0.get_mut(slot) {
                        *kept = Some(value);
                    }
                }
                KeyIs::Other => map.next_value_seed(Skip { token: self.token })?,
                KeyIs::Token => return Err(token(self.token)),
            }
        }
        Ok(kept)
    }
}

/// Notes that [`RAW_VALUE_TOKEN`] was met, and stops the reading.
fn token<E: de::Error>(met: &Cell<bool>) -> E {
    met.set(true);
    E::custom("serde_json's raw-value token, left to a whole Value")
}

/// What an object's key is.
enum KeyIs {
    /// The key of this slot of [`Kept`].
    Kept(usize),
    /// [`RAW_VALUE_TOKEN`], as an object's first key.
    Token,
    /// Any other key.
    Other,
}

/// Reads an object's key, read as a `Value` reads its keys.
struct Key<'a> {
    keys: &'a [String],
    first: bool,
}

impl<'de> DeserializeSeed<'de> for Key<'_> {
    type Value = KeyIs;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<KeyIs, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key<'_> {
    type Value = KeyIs;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<KeyIs, E> {
        if self.first && key == RAW_VALUE_TOKEN {
            return Ok(KeyIs::Token);
        }
        Ok(match self.keys.iter().position(|known| known == key) {
            Some(slot) => KeyIs::Kept(slot),
            None => KeyIs::Other,
        })
    }
}

/// Reads a value as a `Value` would be read, keeping nothing.
#[derive(Clone, Copy)]
struct Skip<'a> {
    /// Set on meeting [`RAW_VALUE_TOKEN`] as a first key.
    token: &'a Cell<bool>,
}

impl<'de> DeserializeSeed<'de> for Skip<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Skip<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any valid JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(self)?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut first = true;
        while let Some(key) = map.next_key_seed(Key { keys: &[], first })? {
            if let KeyIs::Token = key {
                return Err(token(self.token));
            }
            first = false;
            map.next_value_seed(self)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;

    fn top_level(keys: &mut Keys, spec: &str) -> (String, String) {
        let field = keys.field(spec.to_owned());
        let key = keys.0[field.slot].clone();
        (key, field.spec[field.rest..].to_owned())
    }

    #[test]
    fn a_field_is_its_top_level_key_and_the_pointer_inside_it() {
        let mut keys = Keys::default();
        let mut split = |spec| top_level(&mut keys, spec);
        assert_eq!(split("seq"), ("seq".into(), "".into()));
        assert_eq!(split("a/b"), ("a/b".into(), "".into()));
        assert_eq!(split("/meta/seq"), ("meta".into(), "/seq".into()));
        assert_eq!(split("/meta/a~1b"), ("meta".into(), "/a~1b".into()));
        assert_eq!(split("/a~1b/c"), ("a/b".into(), "/c".into()));
        assert_eq!(split("/~01"), ("~1".into(), "".into()));
        assert_eq!(split("/m~0n~1/0/x"), ("m~n/".into(), "/0/x".into()));
        assert_eq!(split("/"), ("".into(), "".into()));
        assert_eq!(split("//x"), ("".into(), "/x".into()));
        // One slot per distinct key: seq, a/b, meta, ~1, m~n/, "".
        assert_eq!(keys.0.len(), 6);
    }

    #[test]
    fn only_the_fields_keys_are_kept_the_last_of_duplicates() {
        let mut keys = Keys::default();
        let seq = keys.field("/meta/seq".to_owned());
        let stream = keys.field("stream".to_owned());
        let text = r#"{"meta":{"seq":1},"x":[1,{"y":2}],"stream":"s","meta":{"seq":2}}"#;
        let record = Record::TopLevel(keys.read(text).unwrap().unwrap());
        assert_eq!(record.find(&seq), Ok(&json!(2)));
        assert_eq!(record.find(&stream), Ok(&json!("s")));
        let Record::TopLevel(Kept(kept)) = &record else {
            unreachable!()
        };
        assert_eq!(kept[0], Some(json!({"seq": 2})));
        assert_eq!(kept[1], Some(json!("s")));
        assert_eq!(kept[2..], [None, None]);
    }

    #[test]
    fn the_raw_value_token_as_a_first_key_leaves_the_record_to_a_value() {
        let mut keys = Keys::default();
        keys.field("seq".to_owned());
        let token = RAW_VALUE_TOKEN;
        for text in [
            format!(r#"{{"{token}":"{{}}"}}"#),
            format!(r#"{{"a":[{{"{token}":1}}],"seq":1}}"#),
        ] {
            assert!(keys.read(&text).unwrap().is_none(), "{text}");
        }
        let later = format!(r#"{{"a":{{"b":1,"{token}":1}},"seq":1}}"#);
        assert!(keys.read(&later).unwrap().is_some());
        // A kept value holding it is read by `Value` itself.
        let kept = format!(r#"{{"seq":{{"{token}":"7"}}}}"#);
        let Some(Kept(kept)) = keys.read(&kept).unwrap() else {
            unreachable!()
        };
        assert_eq!(kept[0], Some(json!(7)));
    }
}
