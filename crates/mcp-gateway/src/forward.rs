//! The message dispatch the gateway's two services share: [`crate::Gateway`] (clients to a
//! stdio child) and [`crate::RemoteServer`] (a stdio client to a remote HTTP server).

use std::future::Future;

use mcp_proto::{BoxFuture, Message, MessageContext, Notification, Request, Response, Session};

/// A service that forwards its client's requests and notifications to another MCP server.
pub(crate) trait Forward: Clone + Send + Sync + 'static {
    /// Answers a request of the client (`None`: no answer, e.g. it was cancelled).
    fn request(
        &self,
        request: Request,
        ctx: MessageContext,
    ) -> impl Future<Output = Option<Response>> + Send;

    /// Takes a notification of the client.
    fn notification(
        &self,
        notification: Notification,
        session: &Session,
    ) -> impl Future<Output = ()> + Send;
}

/// `McpService::handle` of a [`Forward`] service: requests and notifications go to the
/// service; a response answers one of the other server's requests to the client.
pub(crate) fn handle<F: Forward>(
    service: &F,
    message: Message,
    ctx: MessageContext,
) -> BoxFuture<'static, Option<Message>> {
    let service = service.clone();
    Box::pin(async move {
        match message {
            Message::Request(r) => service.request(r, ctx).await.map(Message::Response),
            Message::Notification(n) => {
                service.notification(n, &ctx.session).await;
                None
            }
            Message::Response(r) => {
                if let Some(id) = &r.id
                    && !ctx.session.complete_server_request(id, r.outcome)
                {
                    tracing::debug!(%id, "answer to no request of the MCP server");
                }
                None
            }
        }
    })
}
