//! Structured-output schemas in strict mode: every object must close `additionalProperties` and
//! require all of its properties. Checked before sending, so the client gets a 400 naming the
//! offending path instead of an opaque upstream error.

use serde_json::Value;

/// Returns `(path, reason)` of the first violation; `path` is rooted at `root`.
pub fn check_strict(schema: &Value, root: &str) -> Result<(), (String, String)> {
    walk(schema, root)
}

fn walk(schema: &Value, path: &str) -> Result<(), (String, String)> {
    let Some(obj) = schema.as_object() else {
        return Ok(());
    };
    let declares_object = match obj.get("type") {
        Some(Value::String(t)) => t == "object",
        Some(Value::Array(types)) => types.iter().any(|t| t == "object"),
        _ => false,
    };
    if declares_object || obj.contains_key("properties") {
        if obj.get("additionalProperties") != Some(&Value::Bool(false)) {
            return Err((
                path.to_owned(),
                "strict schemas need \"additionalProperties\": false on every object".into(),
            ));
        }
        let required: Vec<&str> = obj
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if let Some(props) = obj.get("properties").and_then(Value::as_object) {
            if let Some(missing) = props.keys().find(|k| !required.contains(&k.as_str())) {
                return Err((
                    path.to_owned(),
                    format!(
                        "strict schemas must list every property in \"required\"; '{missing}' is missing (make it nullable instead of optional)"
                    ),
                ));
            }
            for (name, sub) in props {
                walk(sub, &format!("{path}.properties.{name}"))?;
            }
        }
    }
    if let Some(items) = obj.get("items") {
        walk(items, &format!("{path}.items"))?;
    }
    for keyword in ["anyOf", "allOf", "oneOf"] {
        if let Some(list) = obj.get(keyword).and_then(Value::as_array) {
            for (i, sub) in list.iter().enumerate() {
                walk(sub, &format!("{path}.{keyword}[{i}]"))?;
            }
        }
    }
    for keyword in ["$defs", "definitions"] {
        if let Some(defs) = obj.get(keyword).and_then(Value::as_object) {
            for (name, sub) in defs {
                walk(sub, &format!("{path}.{keyword}.{name}"))?;
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
}
