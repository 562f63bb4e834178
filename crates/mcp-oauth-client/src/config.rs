//! [`OAuthConfig`]: who the client is and how it obtains tokens.

use std::sync::Arc;
use std::time::Duration;

use crate::Error;
use crate::http::HttpLimits;
use crate::redirect::{AuthorizationHandler, HeadlessRedirect};
use crate::store::{ClientRegistration, CredentialStore, InMemoryCredentialStore};

/// Default margin before expiry at which an access token is refreshed.
pub const DEFAULT_REFRESH_MARGIN: Duration = Duration::from_secs(30);
/// Default number of re-authorizations one request may trigger on `insufficient_scope`.
pub const DEFAULT_MAX_STEP_UPS: u32 = 2;

/// How the client obtains tokens.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub enum Grant {
    /// Authorization code with PKCE, through the [`AuthorizationHandler`] (a user, or a
    /// server that approves by itself).
    #[default]
    AuthorizationCode,
    /// Client credentials (machine to machine): needs a pre-registered client with a secret
    /// or a [`ClientAssertionKey`].
    ClientCredentials,
    /// The JWT bearer grant (RFC 7523 section 2.1): an assertion becomes an access token.
    JwtBearer(AssertionSource),
}

/// Where the assertion of a [`Grant::JwtBearer`] comes from.
#[derive(Clone)]
#[non_exhaustive]
pub enum AssertionSource {
    /// A JWT the workload already holds (workload identity federation).
    Jwt(String),
    /// An identity assertion authorization grant from the enterprise identity provider,
    /// obtained by token exchange (RFC 8693) for the authorization server and resource.
    IdentityProvider(IdentityProviderExchange),
}

impl std::fmt::Debug for AssertionSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Jwt(_) => f.write_str("Jwt(<redacted>)"),
            Self::IdentityProvider(x) => f.debug_tuple("IdentityProvider").field(x).finish(),
        }
    }
}

/// A token exchange at an enterprise identity provider: its ID token for the user becomes an
/// ID-JAG for the MCP server's authorization server (enterprise-managed authorization).
#[derive(Clone)]
pub struct IdentityProviderExchange {
    /// The identity provider's token endpoint.
    pub token_endpoint: String,
    /// The client's `client_id` at the identity provider.
    pub client_id: String,
    /// The client's secret at the identity provider, if it has one.
    pub client_secret: Option<String>,
    /// The user's ID token from the identity provider.
    pub id_token: String,
}

impl std::fmt::Debug for IdentityProviderExchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityProviderExchange")
            .field("token_endpoint", &self.token_endpoint)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// A private key for `private_key_jwt` client authentication (RFC 7523 section 2.2).
#[derive(Clone)]
pub struct ClientAssertionKey {
    pub(crate) algorithm: jsonwebtoken::Algorithm,
    pub(crate) encoding_key: jsonwebtoken::EncodingKey,
}

impl std::fmt::Debug for ClientAssertionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientAssertionKey")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl ClientAssertionKey {
    /// A PEM private key (PKCS#8 for EC and Ed25519, PKCS#1 or PKCS#8 for RSA) for
    /// `algorithm` (`ES256`, `RS256`, `PS256`, `EdDSA`, ...).
    pub fn from_pem(pem: &str, algorithm: &str) -> Result<Self, Error> {
        use jsonwebtoken::Algorithm;
        let algorithm: Algorithm = algorithm.parse().map_err(Error::ClientAssertion)?;
        let bytes = pem.as_bytes();
        let encoding_key = match algorithm {
            Algorithm::ES256 | Algorithm::ES384 => jsonwebtoken::EncodingKey::from_ec_pem(bytes),
            Algorithm::EdDSA => jsonwebtoken::EncodingKey::from_ed_pem(bytes),
            _ => jsonwebtoken::EncodingKey::from_rsa_pem(bytes),
        }
        .map_err(Error::ClientAssertion)?;
        Ok(Self {
            algorithm,
            encoding_key,
        })
    }
}

/// How an [`crate::OAuthClient`] authorizes. Build it with a struct literal over
/// `..Default::default()` or with the `with_*` methods.
#[derive(Debug, Clone)]
pub struct OAuthConfig {
    /// `client_name` in dynamic registration.
    pub client_name: String,
    /// Credentials registered out of band; used at every authorization server when set.
    pub client: Option<ClientRegistration>,
    /// The URL of this client's metadata document, used as `client_id` where the
    /// authorization server supports client ID metadata documents.
    pub client_metadata_url: Option<String>,
    /// A key for `private_key_jwt` client authentication.
    pub client_assertion_key: Option<ClientAssertionKey>,
    /// How tokens are obtained.
    pub grant: Grant,
    /// Whether to ask for `offline_access` (a refresh token) where the authorization server
    /// lists it.
    pub request_offline_access: bool,
    /// `application_type` in dynamic registration: `native` or `web`.
    pub application_type: String,
    /// Takes the user through the authorization endpoint.
    pub authorization_handler: Arc<dyn AuthorizationHandler>,
    /// Where tokens and registrations are kept.
    pub store: Arc<dyn CredentialStore>,
    /// Timeouts and size bounds of the OAuth HTTP requests.
    pub http: HttpLimits,
    /// Tokens expiring within this margin are refreshed before use.
    pub refresh_margin: Duration,
    /// Re-authorizations one request may trigger on `insufficient_scope`.
    pub max_step_ups: u32,
}

impl Default for OAuthConfig {
    fn default() -> Self {
        Self {
            client_name: "mcp-rs client".to_owned(),
            client: None,
            client_metadata_url: None,
            client_assertion_key: None,
            grant: Grant::AuthorizationCode,
            request_offline_access: true,
            application_type: "native".to_owned(),
            authorization_handler: Arc::new(HeadlessRedirect::default()),
            store: Arc::new(InMemoryCredentialStore::new()),
            http: HttpLimits::default(),
            refresh_margin: DEFAULT_REFRESH_MARGIN,
            max_step_ups: DEFAULT_MAX_STEP_UPS,
        }
    }
}

impl OAuthConfig {
    /// The defaults, with `client_name`.
    pub fn new(client_name: impl Into<String>) -> Self {
        Self {
            client_name: client_name.into(),
            ..Self::default()
        }
    }

    /// Uses pre-registered credentials.
    pub fn with_client(
        mut self,
        client_id: impl Into<String>,
        client_secret: Option<String>,
    ) -> Self {
        self.client = Some(ClientRegistration {
            client_id: client_id.into(),
            client_secret,
            token_endpoint_auth_method: None,
        });
        self
    }

    /// Uses `url` as `client_id` where client ID metadata documents are supported.
    pub fn with_client_metadata_url(mut self, url: impl Into<String>) -> Self {
        self.client_metadata_url = Some(url.into());
        self
    }

    /// Authenticates with `private_key_jwt`.
    pub fn with_client_assertion_key(mut self, key: ClientAssertionKey) -> Self {
        self.client_assertion_key = Some(key);
        self
    }

    /// Obtains tokens with `grant`.
    pub fn with_grant(mut self, grant: Grant) -> Self {
        self.grant = grant;
        self
    }

    /// Takes the user through authorization with `handler`.
    pub fn with_authorization_handler(mut self, handler: Arc<dyn AuthorizationHandler>) -> Self {
        self.authorization_handler = handler;
        self
    }

    /// Keeps tokens and registrations in `store`.
    pub fn with_store(mut self, store: Arc<dyn CredentialStore>) -> Self {
        self.store = store;
        self
    }
}
