//! Tool calls of clients that keep neither call ids nor the arguments' text (Ollama's, Gemini's
//! SDKs): they send a call back with no id, or an id of their own making, and its arguments
//! re-serialised from the object they were given. The daemon remembers each call the backend
//! made in a conversation ([`engine::KnownCall`]) and gives a call sent back its id and exact
//! arguments again (its results follow the id), so the history is the backend's own: the turn
//! can go incrementally, and reasoning kept for the call is put back before it.

use std::collections::{HashMap, HashSet};

use serde_json::Value;

use super::AppState;
use crate::engine::{self, ConversationId};
use crate::translate::chat::{ChatMessage, ChatRequest, ToolCall as ChatToolCall};

/// What restoring a conversation's calls so far leaves for its next messages: the remembered
/// calls given out, and the ids made up that became the backend's (a result among the next
/// messages may answer one).
#[derive(Debug, Clone, Default)]
pub struct Restored {
    used: HashSet<String>,
    renamed: HashMap<String, String>,
}

/// Gives the calls in `chat` the ids and arguments the backend made them with. `made_up` are
/// the ids the surface invented for calls that came without one; `restored` is what restoring
/// the conversation's earlier messages left (the default for a whole conversation), and goes
/// on past these.
pub fn restore(
    state: &AppState,
    conversation: ConversationId,
    chat: &mut ChatRequest,
    made_up: &[String],
    restored: &mut Restored,
) {
    let known = if has_calls(chat) {
        state.conversations().known_calls(conversation)
    } else {
        Vec::new()
    };
    restore_calls(chat, made_up, &known, restored);
}

/// Remembers an answer's calls (id, name, arguments) for the conversation.
pub fn remember<'a>(
    state: &AppState,
    conversation: ConversationId,
    calls: impl Iterator<Item = (&'a str, &'a str, &'a str)>,
) {
    let calls = calls.map(|(id, name, arguments)| engine::KnownCall {
        id: id.to_owned(),
        name: name.to_owned(),
        arguments: arguments.to_owned(),
    });
    state.conversations().remember_calls(conversation, calls);
}

fn has_calls(chat: &ChatRequest) -> bool {
    chat.messages.iter().any(|m| {
        matches!(
            m,
            ChatMessage::Assistant {
                tool_calls: Some(_),
                ..
            }
        )
    })
}

/// The same arguments, whatever their spacing and key order.
fn canonical(arguments: &str) -> Option<String> {
    serde_json::from_str::<Value>(arguments)
        .ok()
        .map(|v| v.to_string())
}

/// A call matches a remembered one by its id when the client kept it, else by name and
/// arguments, in order; either way the arguments must be the same JSON.
fn restore_calls(
    chat: &mut ChatRequest,
    made_up: &[String],
    known: &[engine::KnownCall],
    restored: &mut Restored,
) {
    let Restored { used, renamed } = restored;
    // Nothing remembered (or no calls here): only results answering earlier calls may change.
    let assistants = if known.is_empty() {
        &mut [][..]
    } else {
        &mut chat.messages[..]
    };
    for message in assistants {
        let ChatMessage::Assistant {
            tool_calls: Some(calls),
            ..
        } = message
        else {
            continue;
        };
        for call in calls {
            let ChatToolCall::Function { id, function } = call else {
                continue;
            };
            let Some(wanted) = canonical(&function.arguments) else {
                continue;
            };
            let invented = made_up.contains(id);
            let found = known.iter().position(|k| {
                !used.contains(&k.id)
                    && k.name == function.name
                    && (invented || k.id == *id)
                    && canonical(&k.arguments).as_deref() == Some(wanted.as_str())
            });
            let Some(at) = found else { continue };
            let known = &known[at];
            used.insert(known.id.clone());
            function.arguments.clone_from(&known.arguments);
            if invented {
                renamed.insert(std::mem::replace(id, known.id.clone()), known.id.clone());
            }
        }
    }
    if renamed.is_empty() {
        return;
    }
    for message in &mut chat.messages {
        if let ChatMessage::Tool { tool_call_id, .. } = message
            && let Some(new) = renamed.get(tool_call_id)
        {
            tool_call_id.clone_from(new);
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn assistant(calls: &[(&str, &str, &str)]) -> ChatMessage {
        ChatMessage::Assistant {
            content: None,
            tool_calls: Some(
                calls
                    .iter()
                    .map(|(id, name, arguments)| ChatToolCall::Function {
                        id: (*id).into(),
                        function: crate::translate::chat::FunctionCallMsg {
                            name: (*name).into(),
                            arguments: (*arguments).into(),
                        },
                    })
                    .collect(),
            ),
            function_call: None,
            refusal: None,
        }
    }

    fn tool(id: &str) -> ChatMessage {
        ChatMessage::Tool {
            content: None,
            tool_call_id: id.into(),
        }
    }

    fn known(id: &str, name: &str, arguments: &str) -> engine::KnownCall {
        engine::KnownCall {
            id: id.into(),
            name: name.into(),
            arguments: arguments.into(),
        }
    }

    #[test]
    fn calls_get_back_the_backends_ids_and_arguments() {
        let mut chat: ChatRequest = serde_json::from_value(json!({"messages": []})).unwrap();
        chat.messages = vec![
            assistant(&[
                ("call_0_0", "f", r#"{"b":2,"a":1}"#),
                ("call_0_1", "f", r#"{"a":1,"b":2}"#),
                ("kept_id", "g", r#"{"x":true}"#),
                ("call_0_3", "h", r#"{"q":"unknown"}"#),
            ]),
            tool("call_0_1"),
            tool("call_0_0"),
            tool("kept_id"),
            tool("call_0_3"),
        ];
        let made_up: Vec<String> = ["call_0_0", "call_0_1", "call_0_3"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        let remembered = [
            known("call_AAA", "f", r#"{"a": 1, "b": 2}"#),
            known("call_BBB", "f", r#"{"a": 1, "b": 2}"#),
            known("kept_id", "g", r#"{"x": true}"#),
            known("call_CCC", "h", r#"{"q": "other"}"#),
        ];
        restore_calls(&mut chat, &made_up, &remembered, &mut Restored::default());
        let ChatMessage::Assistant {
            tool_calls: Some(calls),
            ..
        } = &chat.messages[0]
        else {
            panic!("not an assistant message");
        };
        let seen: Vec<(String, String)> = calls
            .iter()
            .map(|c| match c {
                ChatToolCall::Function { id, function } => (id.clone(), function.arguments.clone()),
                ChatToolCall::Custom { id, .. } => (id.clone(), String::new()),
            })
            .collect();
        assert_eq!(
            seen,
            [
                ("call_AAA".into(), r#"{"a": 1, "b": 2}"#.into()),
                ("call_BBB".into(), r#"{"a": 1, "b": 2}"#.into()),
                ("kept_id".into(), r#"{"x": true}"#.into()),
                // Different arguments: not the remembered call, left as it came.
                ("call_0_3".into(), r#"{"q":"unknown"}"#.into()),
            ]
        );
        let results: Vec<&str> = chat.messages[1..]
            .iter()
            .map(|m| match m {
                ChatMessage::Tool { tool_call_id, .. } => tool_call_id.as_str(),
                _ => "",
            })
            .collect();
        assert_eq!(results, ["call_BBB", "call_AAA", "kept_id", "call_0_3"]);
    }

    /// The ids and arguments of each message's calls and results, in order.
    fn calls_of(messages: &[ChatMessage]) -> Vec<String> {
        messages
            .iter()
            .flat_map(|m| match m {
                ChatMessage::Assistant {
                    tool_calls: Some(calls),
                    ..
                } => calls
                    .iter()
                    .map(|c| match c {
                        ChatToolCall::Function { id, function } => {
                            format!("{id} {}", function.arguments)
                        }
                        ChatToolCall::Custom { id, .. } => id.clone(),
                    })
                    .collect(),
                ChatMessage::Tool { tool_call_id, .. } => vec![format!("-> {tool_call_id}")],
                _ => Vec::new(),
            })
            .collect()
    }

    /// A conversation's messages restored in two parts — the second continuing from what the
    /// first left — come out as restoring them all at once does, at every split: a result
    /// after the split answering a call before it included.
    #[test]
    fn messages_restored_in_parts_are_restored_as_a_whole() {
        let messages = vec![
            assistant(&[("call_0_0", "f", r#"{"a":1}"#)]),
            tool("call_0_0"),
            assistant(&[
                ("call_2_0", "f", r#"{"a":1}"#),
                ("call_2_1", "g", r#"{"x":true}"#),
            ]),
            tool("call_2_1"),
            tool("call_2_0"),
            assistant(&[("kept_id", "g", r#"{"x":true}"#)]),
            tool("kept_id"),
            assistant(&[("call_7_0", "h", r#"{"q":1}"#)]),
            tool("call_7_0"),
        ];
        let made_up: Vec<String> = ["call_0_0", "call_2_0", "call_2_1", "call_7_0"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        let remembered = [
            known("call_AAA", "f", r#"{"a": 1}"#),
            known("call_BBB", "f", r#"{"a": 1}"#),
            known("call_CCC", "g", r#"{"x": true}"#),
            known("kept_id", "g", r#"{"x": true}"#),
        ];
        let chat = |messages: &[ChatMessage]| -> ChatRequest {
            let mut chat: ChatRequest = serde_json::from_value(json!({"messages": []})).unwrap();
            chat.messages = messages.to_vec();
            chat
        };
        let mut whole = chat(&messages);
        restore_calls(&mut whole, &made_up, &remembered, &mut Restored::default());
        let expected = calls_of(&whole.messages);
        assert_eq!(
            expected[..4],
            [
                r#"call_AAA {"a": 1}"#,
                "-> call_AAA",
                r#"call_BBB {"a": 1}"#,
                r#"call_CCC {"x": true}"#
            ]
        );
        for k in 0..=messages.len() {
            let mut restored = Restored::default();
            let mut first = chat(&messages[..k]);
            restore_calls(&mut first, &made_up, &remembered, &mut restored);
            let mut rest = chat(&messages[k..]);
            restore_calls(&mut rest, &made_up, &remembered, &mut restored);
            let mut both = calls_of(&first.messages);
            both.extend(calls_of(&rest.messages));
            assert_eq!(both, expected, "split at {k}");
        }
    }
}
