//! JSON kept as the client wrote it: an object's keys in their order, its values unparsed. A
//! pass-through surface changes the few fields it must and forwards the rest byte for byte.

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::value::RawValue;

/// A JSON object: its members in order, each value as raw JSON text.
#[derive(Debug, Default, Clone)]
pub struct RawObject(pub Vec<(String, Box<RawValue>)>);

impl RawObject {
    pub fn get(&self, key: &str) -> Option<&RawValue> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_ref())
    }

    /// Replaces the member's value where it is, or appends the member.
    pub fn set(&mut self, key: &str, value: Box<RawValue>) {
        match self.0.iter_mut().find(|(k, _)| k == key) {
            Some((_, slot)) => *slot = value,
            None => self.0.push((key.to_owned(), value)),
        }
    }

    pub fn remove(&mut self, key: &str) -> Option<Box<RawValue>> {
        let at = self.0.iter().position(|(k, _)| k == key)?;
        Some(self.0.remove(at).1)
    }

    /// The member as a string, if it is one.
    pub fn str(&self, key: &str) -> Option<String> {
        self.get(key)
            .and_then(|v| serde_json::from_str::<String>(v.get()).ok())
    }

    pub fn to_raw(&self) -> Box<RawValue> {
        let text = serde_json::to_string(self).unwrap_or_else(|_| "{}".into());
        RawValue::from_string(text).unwrap_or_else(|_| raw("{}"))
    }
}

/// Raw JSON for a value of ours (serialising it cannot fail; `null` if it somehow did).
pub fn to_raw<T: Serialize + ?Sized>(value: &T) -> Box<RawValue> {
    serde_json::value::to_raw_value(value).unwrap_or_else(|_| raw("null"))
}

/// Raw JSON from text known to be valid.
pub fn raw(text: &str) -> Box<RawValue> {
    RawValue::from_string(text.to_owned())
        .unwrap_or_else(|_| serde_json::value::to_raw_value(&()).unwrap_or_default())
}

impl<'de> Deserialize<'de> for RawObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Members;
        impl<'de> Visitor<'de> for Members {
            type Value = RawObject;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawObject, A::Error> {
                let mut members = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some((key, value)) = map.next_entry::<String, Box<RawValue>>()? {
                    // A repeated key: the last one wins, as serde_json's own maps have it.
                    members.retain(|(k, _): &(String, Box<RawValue>)| *k != key);
                    members.push((key, value));
                }
                Ok(RawObject(members))
            }
        }
        deserializer.deserialize_map(Members)
    }
}

impl Serialize for RawObject {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (key, value) in &self.0 {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_keep_their_order_and_their_bytes() {
        let text = r#"{"z":1,"a":{"b" : [1, 2.50, "\u00e9"]},"m":null}"#;
        let mut object: RawObject = serde_json::from_str(text).unwrap();
        assert_eq!(
            object.0.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
            ["z", "a", "m"]
        );
        assert_eq!(
            serde_json::to_string(&object).unwrap(),
            r#"{"z":1,"a":{"b" : [1, 2.50, "\u00e9"]},"m":null}"#
        );
        object.set("a", raw("true"));
        object.set("new", to_raw("x"));
        assert_eq!(object.remove("z").unwrap().get(), "1");
        assert_eq!(
            serde_json::to_string(&object).unwrap(),
            r#"{"a":true,"m":null,"new":"x"}"#
        );
        assert_eq!(object.str("new").as_deref(), Some("x"));
        assert!(serde_json::from_str::<RawObject>("[1]").is_err());
    }
}
