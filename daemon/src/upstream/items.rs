//! Output items (`response.output_item.added` / `.done`) and their content parts: enums
//! tagged by their `type` field.
//!
//! serde's derive for an internally tagged enum first copies every field of the object into a
//! buffer (each string allocated and copied), then reads the variant from that buffer: for the
//! `done` item of a message, the whole answer twice. The upstream writes `type` first (§3.2),
//! so these read the tag and then the rest of the object straight into that variant's fields.
//! An object whose tag comes later is buffered, as serde would. Either way the outcome is
//! serde's (tested against the derive): unknown types are `Other`, unknown fields ignored, a
//! missing tag or required field, a repeated field or a repeated tag refused.

use std::borrow::Cow;
use std::marker::PhantomData;

use serde::de::{self, Deserialize, DeserializeSeed, Deserializer, MapAccess, Visitor};

/// An output item as `output_item.added` / `.done` carry it.
#[derive(Debug, Clone, PartialEq)]
pub enum OutputItem {
    Message {
        id: Option<String>,
        content: Vec<OutputContent>,
    },
    Reasoning {
        id: Option<String>,
        summary: Vec<SummaryPart>,
        /// The reasoning itself, encrypted for the account that made it (`include:
        /// ["reasoning.encrypted_content"]`); the done item carries the final one.
        encrypted_content: Option<String>,
    },
    FunctionCall {
        id: Option<String>,
        call_id: String,
        name: String,
        arguments: String,
    },
    CustomToolCall {
        id: Option<String>,
        call_id: String,
        name: String,
        input: String,
    },
    Other,
}

#[derive(Debug, Clone, PartialEq)]
pub enum OutputContent {
    OutputText { text: String },
    Refusal { refusal: String },
    Other,
}

#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct SummaryPart {
    #[serde(default)]
    pub text: String,
}

/// A second `type` in an object whose tag was read already: always refused, as serde refuses a
/// repeated tag.
#[derive(Debug, Default)]
struct NoRepeatedTag;

impl<'de> Deserialize<'de> for NoRepeatedTag {
    fn deserialize<D: Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        Err(de::Error::duplicate_field("type"))
    }
}

// The fields of each kind, read after the tag.

#[derive(serde::Deserialize)]
struct MessageFields {
    #[serde(default, rename = "type")]
    _tag: NoRepeatedTag,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    content: Vec<OutputContent>,
}

#[derive(serde::Deserialize)]
struct ReasoningFields {
    #[serde(default, rename = "type")]
    _tag: NoRepeatedTag,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    summary: Vec<SummaryPart>,
    #[serde(default)]
    encrypted_content: Option<String>,
}

#[derive(serde::Deserialize)]
struct FunctionCallFields {
    #[serde(default, rename = "type")]
    _tag: NoRepeatedTag,
    #[serde(default)]
    id: Option<String>,
    call_id: String,
    name: String,
    #[serde(default)]
    arguments: String,
}

#[derive(serde::Deserialize)]
struct CustomToolCallFields {
    #[serde(default, rename = "type")]
    _tag: NoRepeatedTag,
    #[serde(default)]
    id: Option<String>,
    call_id: String,
    name: String,
    #[serde(default)]
    input: String,
}

#[derive(serde::Deserialize)]
struct OutputTextFields {
    #[serde(default, rename = "type")]
    _tag: NoRepeatedTag,
    text: String,
}

#[derive(serde::Deserialize)]
struct RefusalFields {
    #[serde(default, rename = "type")]
    _tag: NoRepeatedTag,
    refusal: String,
}

#[derive(serde::Deserialize)]
struct OtherFields {
    #[serde(default, rename = "type")]
    _tag: NoRepeatedTag,
}

/// An enum tagged by `type`: reads its variant from the object's other fields.
trait Tagged: Sized {
    fn variant<'de, D: Deserializer<'de>>(tag: &str, rest: D) -> Result<Self, D::Error>;
}

impl Tagged for OutputItem {
    fn variant<'de, D: Deserializer<'de>>(tag: &str, rest: D) -> Result<Self, D::Error> {
        Ok(match tag {
            "message" => {
                let f = MessageFields::deserialize(rest)?;
                Self::Message {
                    id: f.id,
                    content: f.content,
                }
            }
            "reasoning" => {
                let f = ReasoningFields::deserialize(rest)?;
                Self::Reasoning {
                    id: f.id,
                    summary: f.summary,
                    encrypted_content: f.encrypted_content,
                }
            }
            "function_call" => {
                let f = FunctionCallFields::deserialize(rest)?;
                Self::FunctionCall {
                    id: f.id,
                    call_id: f.call_id,
                    name: f.name,
                    arguments: f.arguments,
                }
            }
            "custom_tool_call" => {
                let f = CustomToolCallFields::deserialize(rest)?;
                Self::CustomToolCall {
                    id: f.id,
                    call_id: f.call_id,
                    name: f.name,
                    input: f.input,
                }
            }
            _ => {
                OtherFields::deserialize(rest)?;
                Self::Other
            }
        })
    }
}

impl Tagged for OutputContent {
    fn variant<'de, D: Deserializer<'de>>(tag: &str, rest: D) -> Result<Self, D::Error> {
        Ok(match tag {
            "output_text" => Self::OutputText {
                text: OutputTextFields::deserialize(rest)?.text,
            },
            "refusal" => Self::Refusal {
                refusal: RefusalFields::deserialize(rest)?.refusal,
            },
            _ => {
                OtherFields::deserialize(rest)?;
                Self::Other
            }
        })
    }
}

impl<'de> Deserialize<'de> for OutputItem {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(TaggedVisitor(PhantomData))
    }
}

impl<'de> Deserialize<'de> for OutputContent {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(TaggedVisitor(PhantomData))
    }
}

struct TaggedVisitor<T>(PhantomData<T>);

impl<'de, T: Tagged> Visitor<'de> for TaggedVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an object with a `type`")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<T, A::Error> {
        let Some(first) = map.next_key::<Key<'de>>()? else {
            return Err(de::Error::missing_field("type"));
        };
        if first.0 == "type" {
            let tag = map.next_value_seed(Tag)?;
            return T::variant(&tag, de::value::MapAccessDeserializer::new(map));
        }
        // The tag comes later: buffer the object, take the (first) tag out, read the rest.
        let mut fields = vec![(first.0.into_owned(), map.next_value::<serde_json::Value>()?)];
        while let Some((key, value)) = map.next_entry::<String, serde_json::Value>()? {
            fields.push((key, value));
        }
        let at = fields
            .iter()
            .position(|(key, _)| key == "type")
            .ok_or_else(|| de::Error::missing_field("type"))?;
        let tag = Tag
            .deserialize(fields.remove(at).1)
            .map_err(de::Error::custom)?;
        let rest = de::value::MapDeserializer::<_, serde_json::Error>::new(fields.into_iter());
        T::variant(&tag, rest).map_err(de::Error::custom)
    }
}

/// A key, borrowed when it has no escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_identifier(TextVisitor).map(Key)
    }
}

/// A tag: a string, borrowed when it has no escapes. (serde's derive also takes a variant's
/// index, but only from its own buffer, when the enum sits inside another tagged one; read
/// straight from JSON it refuses numbers, as this does.)
struct Tag;

impl<'de> DeserializeSeed<'de> for Tag {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(TextVisitor)
    }
}

/// A string as a `Cow`: borrowed from the input when it has no escapes (serde's own impl for
/// `Cow<str>` always copies).
pub(super) struct TextVisitor;

impl<'de> Visitor<'de> for TextVisitor {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a string")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
}

/// Output items as fields, read in every rotation by the tests here: real items, missing,
/// repeated and unknown fields, odd tags, an escaped key.
#[cfg(test)]
pub(super) const SAMPLE_ITEMS: &[&[&str]] = &[
    &[
        r#""type":"message""#,
        r#""id":"msg_1""#,
        r#""status":"completed""#,
        r#""role":"assistant""#,
        r#""content":[{"type":"output_text","text":"Hi \"there\"\n","annotations":[]},{"annotations":[],"type":"refusal","refusal":"no"},{"type":"image","url":"x"}]"#,
    ],
    &[r#""type":"message""#],
    &[
        r#""type":"message""#,
        r#""content":[{"type":"output_text"}]"#,
    ],
    &[r#""type":"message""#, r#""content":[{"text":"no tag"}]"#],
    &[
        r#""type":"message""#,
        r#""content":[{"type":"output_text","type":"refusal","text":"x"}]"#,
    ],
    &[r#""type":"message""#, r#""content":"not a list""#],
    &[r#""type":"message""#, r#""id":null"#],
    &[r#""type":"message""#, r#""id":"a""#, r#""id":"b""#],
    &[r#""type":"message""#, r#""extra":1"#, r#""extra":2"#],
    &[r#""type":"message""#, r#""type":"reasoning""#],
    &[
        r#""type":"reasoning""#,
        r#""id":"rs_1""#,
        r#""summary":[{"type":"summary_text","text":"Thinking"}]"#,
        r#""encrypted_content":"gAAA""#,
    ],
    &[
        r#""type":"function_call""#,
        r#""id":"fc_1""#,
        r#""call_id":"call_1""#,
        r#""name":"get_weather""#,
        r#""arguments":"{\"city\":\"Paris\"}""#,
        r#""status":"completed""#,
    ],
    &[r#""type":"function_call""#, r#""name":"f""#],
    &[
        r#""type":"function_call""#,
        r#""call_id":"c""#,
        r#""name":5"#,
    ],
    &[
        r#""type":"custom_tool_call""#,
        r#""call_id":"c""#,
        r#""name":"apply_patch""#,
        r#""input":"*** Begin Patch""#,
    ],
    &[
        r#""type":"web_search_call""#,
        r#""id":"ws_1""#,
        r#""action":{"type":"search","query":"q"}"#,
        r#""content":"anything""#,
    ],
    &[r#""type":"future_kind""#, r#""type":"again""#],
    &[r#""id":"x""#],
    &[r#""type":null"#, r#""id":"x""#],
    &[r#""type":1"#, r#""id":"rs_9""#],
    &[r#""type":99"#, r#""id":"x""#],
    &[r#""type":-1"#],
    &[r#""type":true"#],
    &[r#""typ\u0065":"message""#, r#""id":"escaped key""#],
    &[],
];

#[cfg(test)]
mod tests {
    use super::*;

    /// What serde's derive makes of the same objects: the reference these must agree with.
    #[derive(Debug, PartialEq, serde::Deserialize)]
    #[serde(tag = "type", rename_all = "snake_case")]
    enum RefItem {
        Message {
            #[serde(default)]
            id: Option<String>,
            #[serde(default)]
            content: Vec<RefContent>,
        },
        Reasoning {
            #[serde(default)]
            id: Option<String>,
            #[serde(default)]
            summary: Vec<SummaryPart>,
            #[serde(default)]
            encrypted_content: Option<String>,
        },
        FunctionCall {
            #[serde(default)]
            id: Option<String>,
            call_id: String,
            name: String,
            #[serde(default)]
            arguments: String,
        },
        CustomToolCall {
            #[serde(default)]
            id: Option<String>,
            call_id: String,
            name: String,
            #[serde(default)]
            input: String,
        },
        #[serde(other)]
        Other,
    }

    #[derive(Debug, PartialEq, serde::Deserialize)]
    #[serde(tag = "type", rename_all = "snake_case")]
    enum RefContent {
        OutputText {
            text: String,
        },
        Refusal {
            refusal: String,
        },
        #[serde(other)]
        Other,
    }

    impl From<RefContent> for OutputContent {
        fn from(c: RefContent) -> Self {
            match c {
                RefContent::OutputText { text } => Self::OutputText { text },
                RefContent::Refusal { refusal } => Self::Refusal { refusal },
                RefContent::Other => Self::Other,
            }
        }
    }

    impl From<RefItem> for OutputItem {
        fn from(item: RefItem) -> Self {
            match item {
                RefItem::Message { id, content } => Self::Message {
                    id,
                    content: content.into_iter().map(Into::into).collect(),
                },
                RefItem::Reasoning {
                    id,
                    summary,
                    encrypted_content,
                } => Self::Reasoning {
                    id,
                    summary,
                    encrypted_content,
                },
                RefItem::FunctionCall {
                    id,
                    call_id,
                    name,
                    arguments,
                } => Self::FunctionCall {
                    id,
                    call_id,
                    name,
                    arguments,
                },
                RefItem::CustomToolCall {
                    id,
                    call_id,
                    name,
                    input,
                } => Self::CustomToolCall {
                    id,
                    call_id,
                    name,
                    input,
                },
                RefItem::Other => Self::Other,
            }
        }
    }

    /// Every object's fields in every rotation (so the tag is first, last and between), each
    /// read by both: the same item, or both refuse.
    #[test]
    fn items_agree_with_serdes_derive() {
        let objects = SAMPLE_ITEMS;
        for fields in objects {
            for turn in 0..fields.len().max(1) {
                let mut rotated = fields.to_vec();
                rotated.rotate_left(turn.min(fields.len()));
                let json = format!("{{{}}}", rotated.join(","));
                let ours = serde_json::from_str::<OutputItem>(&json);
                let theirs = serde_json::from_str::<RefItem>(&json).map(OutputItem::from);
                match (&ours, &theirs) {
                    (Ok(a), Ok(b)) => assert_eq!(a, b, "{json}"),
                    (Err(_), Err(_)) => {}
                    _ => panic!("{json}: ours {ours:?}, serde's {theirs:?}"),
                }
            }
        }
    }

    /// serde's derive reads a nested content part from its buffer of the item, where a number
    /// tag picks a variant by index; read straight from JSON, numbers are refused. These refuse
    /// them in both places.
    #[test]
    fn number_tags_are_refused() {
        for json in [
            r#"{"type":1,"id":"rs_1"}"#,
            r#"{"type":"message","content":[{"type":0,"text":"x"}]}"#,
            r#"{"type":"message","content":[{"text":"x","type":7}]}"#,
        ] {
            assert!(serde_json::from_str::<OutputItem>(json).is_err(), "{json}");
        }
    }

    #[test]
    fn a_message_item_is_read_without_copying_its_text_twice() {
        let json = r#"{"type":"message","id":"msg_1","content":[{"type":"output_text","text":"whole answer"}]}"#;
        let item: OutputItem = serde_json::from_str(json).unwrap();
        assert_eq!(
            item,
            OutputItem::Message {
                id: Some("msg_1".into()),
                content: vec![OutputContent::OutputText {
                    text: "whole answer".into()
                }],
            }
        );
        assert!(serde_json::from_str::<OutputItem>("[]").is_err());
        assert!(serde_json::from_str::<OutputItem>("\"message\"").is_err());
    }
}
