//! The backend seam ([`ResponsesApi`]) and its async-openai implementation.

use std::time::Duration;

use async_openai::Client;
use async_openai::config::OpenAIConfig;
use async_openai::types::responses::{CreateResponse, Response, ResponseStreamEvent};
use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::BoxStream;

use crate::error::Error;

/// The events of a streamed response.
pub type EventStream = BoxStream<'static, Result<ResponseStreamEvent, Error>>;

/// The three Responses API calls this crate needs; implement it to swap the backend.
pub trait ResponsesApi: Send + Sync {
    /// `POST /responses`.
    fn create(&self, request: CreateResponse) -> BoxFuture<'_, Result<Response, Error>>;

    /// `POST /responses` with `stream: true`.
    fn create_stream(&self, request: CreateResponse) -> BoxFuture<'_, Result<EventStream, Error>>;

    /// `GET /responses/{id}`.
    fn retrieve<'a>(&'a self, response_id: &'a str) -> BoxFuture<'a, Result<Response, Error>>;
}

/// [`ResponsesApi`] over async-openai's client.
#[derive(Clone)]
pub struct OpenAiResponses {
    client: Client<OpenAIConfig>,
    timeout: Duration,
}

impl std::fmt::Debug for OpenAiResponses {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiResponses")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Configures an [`OpenAiResponses`].
#[derive(Debug, Clone)]
pub struct OpenAiResponsesBuilder {
    base_url: Option<String>,
    api_key: Option<String>,
    timeout: Duration,
}

impl Default for OpenAiResponsesBuilder {
    fn default() -> Self {
        Self {
            base_url: None,
            api_key: None,
            timeout: Duration::from_secs(120),
        }
    }
}

impl OpenAiResponsesBuilder {
    /// The API base URL including `/v1` (default: `OPENAI_BASE_URL`, else
    /// `https://api.openai.com/v1`).
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = Some(url.into());
        self
    }

    /// The API key (default: `OPENAI_API_KEY`).
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(key.into());
        self
    }

    /// The limit for one call, and for the wait between two stream events (default 120 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Builds the client.
    pub fn build(self) -> OpenAiResponses {
        // `OpenAIConfig::new` reads OPENAI_BASE_URL and OPENAI_API_KEY.
        let mut config = OpenAIConfig::new();
        if let Some(url) = self.base_url {
            config = config.with_api_base(url);
        }
        if let Some(key) = self.api_key {
            config = config.with_api_key(key);
        }
        OpenAiResponses {
            client: Client::with_config(config),
            timeout: self.timeout,
        }
    }
}

impl OpenAiResponses {
    /// Starts configuring a client.
    pub fn builder() -> OpenAiResponsesBuilder {
        OpenAiResponsesBuilder::default()
    }

    /// A client configured from `OPENAI_BASE_URL` and `OPENAI_API_KEY`.
    pub fn from_env() -> Self {
        Self::builder().build()
    }

    /// The underlying async-openai client, for calls this crate does not wrap.
    pub fn client(&self) -> &Client<OpenAIConfig> {
        &self.client
    }

    async fn limited<T>(
        &self,
        future: impl Future<Output = Result<T, async_openai::error::OpenAIError>>,
    ) -> Result<T, Error> {
        match tokio::time::timeout(self.timeout, future).await {
            Ok(result) => result.map_err(Error::from),
            Err(_) => Err(Error::Timeout(self.timeout)),
        }
    }
}

impl ResponsesApi for OpenAiResponses {
    fn create(&self, request: CreateResponse) -> BoxFuture<'_, Result<Response, Error>> {
        Box::pin(async move { self.limited(self.client.responses().create(request)).await })
    }

    fn create_stream(&self, request: CreateResponse) -> BoxFuture<'_, Result<EventStream, Error>> {
        Box::pin(async move {
            let inner = self
                .limited(self.client.responses().create_stream(request))
                .await?;
            let idle = self.timeout;
            let events = futures::stream::unfold(Some(inner), move |state| async move {
                let mut inner = state?;
                match tokio::time::timeout(idle, inner.next()).await {
                    Ok(Some(item)) => Some((item.map_err(Error::from), Some(inner))),
                    Ok(None) => None,
                    Err(_) => Some((Err(Error::Timeout(idle)), None)),
                }
            });
            Ok(events.boxed())
        })
    }

    fn retrieve<'a>(&'a self, response_id: &'a str) -> BoxFuture<'a, Result<Response, Error>> {
        Box::pin(async move {
            self.limited(self.client.responses().retrieve(response_id))
                .await
        })
    }
}
