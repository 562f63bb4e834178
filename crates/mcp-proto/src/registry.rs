//! Resources, resource templates, prompts and completion, registered like tools.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::service::BoxFuture;
use crate::tool::{ToolContext, ToolError, schema_object};
use crate::types::{
    CompleteParams, Completion, GetPromptResult, Prompt, PromptArgument, PromptMessage, Resource,
    ResourceContents, ResourceTemplate,
};

type ReadFn = dyn Fn(
        ToolContext,
        String,
        HashMap<String, String>,
    ) -> BoxFuture<'static, Result<Vec<ResourceContents>, ToolError>>
    + Send
    + Sync;
type PromptFn = dyn Fn(ToolContext, Value) -> BoxFuture<'static, Result<GetPromptResult, PromptFailure>>
    + Send
    + Sync;
pub(crate) type CompleteFn =
    dyn Fn(CompleteParams) -> BoxFuture<'static, Result<Completion, ToolError>> + Send + Sync;

pub(crate) enum PromptFailure {
    InvalidArguments(String),
    Failed(ToolError),
}

/// A static resource and the function that reads it.
pub(crate) struct RegisteredResource {
    pub(crate) resource: Resource,
    pub(crate) read: Box<ReadFn>,
}

/// A URI template and the function that reads matching URIs.
pub(crate) struct RegisteredTemplate {
    pub(crate) template: ResourceTemplate,
    pattern: UriTemplate,
    pub(crate) read: Box<ReadFn>,
}

/// A prompt and the function that renders it.
pub(crate) struct RegisteredPrompt {
    pub(crate) prompt: Prompt,
    pub(crate) get: Box<PromptFn>,
}

impl std::fmt::Debug for RegisteredResource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegisteredResource")
            .field("uri", &self.resource.uri)
            .finish()
    }
}
impl std::fmt::Debug for RegisteredTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegisteredTemplate")
            .field("uri", &self.template.uri_template)
            .finish()
    }
}
impl std::fmt::Debug for RegisteredPrompt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegisteredPrompt")
            .field("name", &self.prompt.name)
            .finish()
    }
}

/// A reader of one resource: `async fn(ToolContext) -> Result<Vec<ResourceContents>, ToolError>`.
pub(crate) fn resource<F, Fut>(resource: Resource, read: F) -> RegisteredResource
where
    F: Fn(ToolContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Vec<ResourceContents>, ToolError>> + Send + 'static,
{
    let read = Arc::new(read);
    RegisteredResource {
        resource,
        read: Box::new(move |ctx, _uri, _vars| {
            let read = Arc::clone(&read);
            Box::pin(async move { read(ctx).await })
        }),
    }
}

/// A reader of a URI template: `async fn(ToolContext, uri, Params)` where `Params`
/// deserializes from the template's variables.
pub(crate) fn template<F, Fut, P>(
    template: ResourceTemplate,
    read: F,
) -> Result<RegisteredTemplate, String>
where
    F: Fn(ToolContext, String, P) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Vec<ResourceContents>, ToolError>> + Send + 'static,
    P: DeserializeOwned + Send + 'static,
{
    let pattern = UriTemplate::parse(&template.uri_template)?;
    let read = Arc::new(read);
    Ok(RegisteredTemplate {
        template,
        pattern,
        read: Box::new(move |ctx, uri, vars| {
            let read = Arc::clone(&read);
            Box::pin(async move {
                let params: P = serde_json::to_value(vars)
                    .and_then(serde_json::from_value)
                    .map_err(|e| ToolError::new(format!("invalid URI parameters: {e}")))?;
                read(ctx, uri, params).await
            })
        }),
    })
}

impl RegisteredTemplate {
    pub(crate) fn matches(&self, uri: &str) -> Option<HashMap<String, String>> {
        self.pattern.matches(uri)
    }
}

/// A prompt whose arguments come from a `Deserialize + JsonSchema` type: each property is an
/// argument (required when the schema requires it, described by its doc comment).
pub(crate) fn prompt<F, Fut, A, R>(
    name: String,
    description: String,
    get: F,
) -> Result<RegisteredPrompt, String>
where
    F: Fn(ToolContext, A) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<R, ToolError>> + Send + 'static,
    A: DeserializeOwned + JsonSchema + Send + 'static,
    R: IntoPromptResult,
{
    let schema = schema_object::<A>()?;
    let required: Vec<String> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| {
            r.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let arguments: Vec<PromptArgument> = schema
        .get("properties")
        .and_then(Value::as_object)
        .map(|props| {
            props
                .iter()
                .map(|(k, v)| PromptArgument {
                    name: k.clone(),
                    title: None,
                    description: v
                        .get("description")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                    required: Some(required.contains(k)),
                })
                .collect()
        })
        .unwrap_or_default();
    let get = Arc::new(get);
    let required_check = required.clone();
    Ok(RegisteredPrompt {
        prompt: Prompt {
            name,
            title: None,
            description: Some(description),
            arguments: (!arguments.is_empty()).then_some(arguments),
            icons: None,
        },
        get: Box::new(move |ctx, args| {
            let get = Arc::clone(&get);
            let missing: Vec<String> = required_check
                .iter()
                .filter(|k| args.get(k.as_str()).is_none())
                .cloned()
                .collect();
            Box::pin(async move {
                if !missing.is_empty() {
                    return Err(PromptFailure::InvalidArguments(format!(
                        "missing required arguments: {}",
                        missing.join(", ")
                    )));
                }
                let args: A = serde_json::from_value(args)
                    .map_err(|e| PromptFailure::InvalidArguments(e.to_string()))?;
                let r = get(ctx, args).await.map_err(PromptFailure::Failed)?;
                Ok(r.into_prompt_result())
            })
        }),
    })
}

/// What a prompt function may return.
pub trait IntoPromptResult: Send + 'static {
    /// Converts it.
    fn into_prompt_result(self) -> GetPromptResult;
}

impl IntoPromptResult for GetPromptResult {
    fn into_prompt_result(self) -> GetPromptResult {
        self
    }
}

impl IntoPromptResult for Vec<PromptMessage> {
    fn into_prompt_result(self) -> GetPromptResult {
        GetPromptResult {
            description: None,
            messages: self,
        }
    }
}

/// A level-1 RFC 6570 template: literal text and `{var}` expressions, each matching one or
/// more characters other than `/`.
#[derive(Debug, Clone)]
struct UriTemplate {
    parts: Vec<TemplatePart>,
}

#[derive(Debug, Clone)]
enum TemplatePart {
    Literal(String),
    Var(String),
}

impl UriTemplate {
    fn parse(template: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(TemplatePart::Literal(rest[..open].to_owned()));
            }
            let close = rest[open..]
                .find('}')
                .ok_or_else(|| format!("unclosed '{{' in URI template {template:?}"))?;
            let name = &rest[open + 1..open + close];
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!(
                    "unsupported expression {{{name}}} in URI template {template:?}"
                ));
            }
            if matches!(parts.last(), Some(TemplatePart::Var(_))) {
                return Err(format!("adjacent expressions in URI template {template:?}"));
            }
            parts.push(TemplatePart::Var(name.to_owned()));
            rest = &rest[open + close + 1..];
        }
        if !rest.is_empty() {
            parts.push(TemplatePart::Literal(rest.to_owned()));
        }
        Ok(Self { parts })
    }

    fn matches(&self, uri: &str) -> Option<HashMap<String, String>> {
        let mut vars = HashMap::new();
        let mut rest = uri;
        let mut i = 0;
        while i < self.parts.len() {
            match &self.parts[i] {
                TemplatePart::Literal(l) => rest = rest.strip_prefix(l.as_str())?,
                TemplatePart::Var(name) => {
                    let end = match self.parts.get(i + 1) {
                        Some(TemplatePart::Literal(next)) => rest.find(next.as_str())?,
                        _ => rest.len(),
                    };
                    let value = &rest[..end];
                    if value.is_empty() || value.contains('/') {
                        return None;
                    }
                    vars.insert(name.clone(), value.to_owned());
                    rest = &rest[end..];
                }
            }
            i += 1;
        }
        rest.is_empty().then_some(vars)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_match_one_segment_per_variable() {
        let t = UriTemplate::parse("test://template/{id}/data").unwrap();
        assert_eq!(t.matches("test://template/123/data").unwrap()["id"], "123");
        assert!(t.matches("test://template/1/2/data").is_none());
        assert!(t.matches("test://template//data").is_none());
        assert!(t.matches("test://template/123/datax").is_none());
        let t = UriTemplate::parse("file:///{a}.{b}").unwrap();
        let m = t.matches("file:///x.json").unwrap();
        assert_eq!((m["a"].as_str(), m["b"].as_str()), ("x", "json"));
        assert!(UriTemplate::parse("x://{").is_err());
        assert!(UriTemplate::parse("x://{a}{b}").is_err());
    }
}
