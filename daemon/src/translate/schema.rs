//! Structured-output schemas in strict mode: every object must close `additionalProperties` and
//! require all of its properties, within the size limits OpenAI documents for strict schemas.
//! Checked before sending, so the client gets a 400 naming the offending path instead of an
//! opaque upstream error. One pass, linear in the schema's size, and it stops at the first
//! limit exceeded: a hostile schema costs no more than reading it.

use std::collections::HashSet;

use serde_json::Value;

/// OpenAI's limits for a strict schema (Structured Outputs, "supported schemas").
const MAX_PROPERTIES: usize = 5000;
const MAX_OBJECT_DEPTH: usize = 10;
/// Property names, definition names, enum and const values together.
const MAX_CHARS: usize = 120_000;
const MAX_ENUM_VALUES: usize = 1000;

#[derive(Default)]
struct Totals {
    properties: usize,
    chars: usize,
    enum_values: usize,
}

/// Returns `(path, reason)` of the first violation; `path` is rooted at `root`.
pub fn check_strict(schema: &Value, root: &str) -> Result<(), (String, String)> {
    let mut path = root.to_owned();
    walk(schema, &mut path, 0, &mut Totals::default())
}

fn fail<T>(path: &str, reason: impl Into<String>) -> Result<T, (String, String)> {
    Err((path.to_owned(), reason.into()))
}

/// Visits `sub` at `path` + `suffix`, restoring `path` afterwards.
fn visit(
    sub: &Value,
    path: &mut String,
    suffix: std::fmt::Arguments<'_>,
    depth: usize,
    totals: &mut Totals,
) -> Result<(), (String, String)> {
    let len = path.len();
    std::fmt::Write::write_fmt(path, suffix).map_err(|_| (path.clone(), "path".into()))?;
    let result = walk(sub, path, depth, totals);
    path.truncate(len);
    result
}

fn count_chars(path: &str, totals: &mut Totals, text: &str) -> Result<(), (String, String)> {
    totals.chars += text.chars().count();
    if totals.chars > MAX_CHARS {
        return fail(
            path,
            format!(
                "strict schemas may hold at most {MAX_CHARS} characters of property names, \
                 definition names, enum and const values"
            ),
        );
    }
    Ok(())
}

fn walk(
    schema: &Value,
    path: &mut String,
    depth: usize,
    totals: &mut Totals,
) -> Result<(), (String, String)> {
    let Some(obj) = schema.as_object() else {
        return Ok(());
    };
    if let Some(values) = obj.get("enum").and_then(Value::as_array) {
        totals.enum_values += values.len();
        if totals.enum_values > MAX_ENUM_VALUES {
            return fail(
                path,
                format!("strict schemas may have at most {MAX_ENUM_VALUES} enum values in all"),
            );
        }
        for value in values.iter().filter_map(Value::as_str) {
            count_chars(path, totals, value)?;
        }
    }
    if let Some(value) = obj.get("const").and_then(Value::as_str) {
        count_chars(path, totals, value)?;
    }
    let declares_object = match obj.get("type") {
        Some(Value::String(t)) => t == "object",
        Some(Value::Array(types)) => types.iter().any(|t| t == "object"),
        _ => false,
    };
    let mut depth = depth;
    if declares_object || obj.contains_key("properties") {
        depth += 1;
        if depth > MAX_OBJECT_DEPTH {
            return fail(
                path,
                format!("strict schemas may nest objects at most {MAX_OBJECT_DEPTH} levels deep"),
            );
        }
        if obj.get("additionalProperties") != Some(&Value::Bool(false)) {
            return fail(
                path,
                "strict schemas need \"additionalProperties\": false on every object",
            );
        }
        if let Some(props) = obj.get("properties").and_then(Value::as_object) {
            totals.properties += props.len();
            if totals.properties > MAX_PROPERTIES {
                return fail(
                    path,
                    format!("strict schemas may have at most {MAX_PROPERTIES} properties in all"),
                );
            }
            let required: HashSet<&str> = obj
                .get("required")
                .and_then(Value::as_array)
                .map(|r| r.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            if let Some(missing) = props.keys().find(|k| !required.contains(k.as_str())) {
                return fail(
                    path,
                    format!(
                        "strict schemas must list every property in \"required\"; '{missing}' is missing (make it nullable instead of optional)"
                    ),
                );
            }
            for (name, sub) in props {
                count_chars(path, totals, name)?;
                visit(sub, path, format_args!(".properties.{name}"), depth, totals)?;
            }
        }
    }
    if let Some(items) = obj.get("items") {
        visit(items, path, format_args!(".items"), depth, totals)?;
    }
    for keyword in ["anyOf", "allOf", "oneOf"] {
        if let Some(list) = obj.get(keyword).and_then(Value::as_array) {
            for (i, sub) in list.iter().enumerate() {
                visit(sub, path, format_args!(".{keyword}[{i}]"), depth, totals)?;
            }
        }
    }
    for keyword in ["$defs", "definitions"] {
        if let Some(defs) = obj.get(keyword).and_then(Value::as_object) {
            for (name, sub) in defs {
                count_chars(path, totals, name)?;
                visit(sub, path, format_args!(".{keyword}.{name}"), depth, totals)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn accepts_a_closed_schema() {
        let schema = json!({"type": "object", "additionalProperties": false, "required": ["a", "list"],
            "properties": {"a": {"type": ["string", "null"]},
                "list": {"type": "array", "items": {"type": "object", "additionalProperties": false, "required": ["x"], "properties": {"x": {"type": "integer"}}}}}});
        assert!(check_strict(&schema, "s").is_ok());
    }

    #[test]
    fn names_the_offending_path() {
        let schema = json!({"type": "object", "additionalProperties": false, "required": ["user"],
            "properties": {"user": {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}}});
        let (path, reason) =
            check_strict(&schema, "response_format.json_schema.schema").unwrap_err();
        assert_eq!(path, "response_format.json_schema.schema.properties.user");
        assert!(reason.contains("additionalProperties"));

        let schema = json!({"type": "object", "additionalProperties": false, "properties": {"a": {}, "b": {}}, "required": ["a"]});
        let (path, reason) = check_strict(&schema, "p").unwrap_err();
        assert_eq!(path, "p");
        assert!(reason.contains("'b'"));

        let schema = json!({"$defs": {"node": {"type": "object", "properties": {}}}, "type": "object",
            "additionalProperties": false, "properties": {}, "required": []});
        assert_eq!(check_strict(&schema, "p").unwrap_err().0, "p.$defs.node");
    }

    #[test]
    fn limits_are_enforced_in_linear_time() {
        let object = |n: usize| {
            let names: Vec<String> = (0..n).map(|i| format!("p{i}")).collect();
            let props: serde_json::Map<String, Value> = names
                .iter()
                .map(|n| (n.clone(), json!({"type": "string"})))
                .collect();
            json!({"type": "object", "additionalProperties": false, "required": names, "properties": props})
        };
        assert!(check_strict(&object(MAX_PROPERTIES), "s").is_ok());
        // The schema bomb: 100 000 properties, answered at once (quadratic before).
        let bomb = object(100_000);
        let started = std::time::Instant::now();
        let (path, reason) = check_strict(&bomb, "s").unwrap_err();
        assert_eq!(path, "s");
        assert!(reason.contains("5000 properties"), "{reason}");
        println!("100 000-property schema refused in {:?}", started.elapsed());

        let mut deep = json!({"type": "string"});
        for _ in 0..11 {
            deep = json!({"type": "object", "additionalProperties": false, "required": ["x"], "properties": {"x": deep}});
        }
        let (_, reason) = check_strict(&deep, "s").unwrap_err();
        assert!(reason.contains("10 levels"), "{reason}");

        let many: Vec<String> = (0..1001).map(|i| i.to_string()).collect();
        let (_, reason) = check_strict(&json!({"type": "string", "enum": many}), "s").unwrap_err();
        assert!(reason.contains("1000 enum values"), "{reason}");
        let long = "x".repeat(MAX_CHARS + 1);
        let (_, reason) = check_strict(&json!({"const": long}), "s").unwrap_err();
        assert!(reason.contains("characters"), "{reason}");
    }
}
