//! What a response inherits along a `previous_response_id` chain, kept as shared links.
//!
//! A stored response holds a [`Link`]: the items it added (input messages, tool lists, calls,
//! approval requests and answers, its answer) and an `Arc` to its parent's link. A chain of `n`
//! responses therefore costs the sum of their own items, not `n` copies of the growing history.
//! A request continuing a chain replays the links, oldest first, into a [`ChainState`], changes it
//! through methods that also record each change, and stores only those recorded items.
//!
//! Every link's size is charged to the store's [`ByteMeter`] while the link is alive, also when
//! only a descendant still refers to it, so the meter always tells the memory the store holds.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::connector::ListedTool;
use crate::model::{ActivityResult, ChatMessage, ToolActivity};

/// Fixed cost counted for each item and link besides its text (pointers, lengths, map slots).
const OVERHEAD_BYTES: usize = 64;

/// An approval request the caller has not answered yet.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PendingApproval {
    pub server_label: String,
    pub name: String,
    pub arguments: String,
}

/// One change a response made to the inherited state.
#[derive(Debug, Clone)]
pub(crate) enum HistoryItem {
    /// A message; a user message also starts a new turn (clears the tool activity).
    Message(ChatMessage),
    /// A tool call (or denial) of the current turn.
    Activity(ToolActivity),
    /// The full tool list of a server, listed for the first time in this chain.
    Listed {
        server_label: String,
        tools: Vec<ListedTool>,
    },
    /// An approval request was made.
    ApprovalRequested {
        id: String,
        pending: PendingApproval,
    },
    /// An approval request was answered.
    ApprovalAnswered { id: String },
}

impl HistoryItem {
    /// The bytes this item is charged for: its text and JSON, plus a fixed overhead.
    fn bytes(&self) -> usize {
        OVERHEAD_BYTES
            + match self {
                HistoryItem::Message(m) => m.role.len() + m.text.len(),
                HistoryItem::Activity(a) => activity_bytes(a),
                HistoryItem::Listed {
                    server_label,
                    tools,
                } => server_label.len() + tools.iter().map(tool_bytes).sum::<usize>(),
                HistoryItem::ApprovalRequested { id, pending } => {
                    id.len()
                        + pending.server_label.len()
                        + pending.name.len()
                        + pending.arguments.len()
                }
                HistoryItem::ApprovalAnswered { id } => id.len(),
            }
    }
}

fn activity_bytes(activity: &ToolActivity) -> usize {
    let result = match &activity.result {
        ActivityResult::Output(text) | ActivityResult::Failed(text) => text.len(),
        ActivityResult::Denied { reason } => reason.as_ref().map_or(0, String::len),
    };
    activity.server_label.len()
        + activity.name.len()
        + activity.arguments.to_string().len()
        + result
}

fn tool_bytes(tool: &ListedTool) -> usize {
    OVERHEAD_BYTES
        + tool.name.len()
        + tool.description.as_ref().map_or(0, String::len)
        + tool.input_schema.to_string().len()
        + tool.annotations.as_ref().map_or(0, |a| a.to_string().len())
}

/// Counts the bytes held by the store: stored bodies and every live [`Link`].
#[derive(Debug, Default)]
pub(crate) struct ByteMeter(AtomicUsize);

impl ByteMeter {
    /// The bytes charged now.
    pub fn bytes(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

/// Bytes charged to a [`ByteMeter`] for as long as this value lives.
#[derive(Debug)]
pub(crate) struct Charge {
    bytes: usize,
    meter: Arc<ByteMeter>,
}

impl Charge {
    /// Charges `bytes` to `meter` until the returned value is dropped.
    pub fn new(meter: &Arc<ByteMeter>, bytes: usize) -> Self {
        meter.0.fetch_add(bytes, Ordering::Relaxed);
        Self {
            bytes,
            meter: meter.clone(),
        }
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.meter.0.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

/// The items one stored response added, and its parent's link.
#[derive(Debug)]
pub(crate) struct Link {
    parent: Option<Arc<Link>>,
    items: Vec<HistoryItem>,
    _charge: Charge,
}

impl Link {
    /// A link holding `items` after `parent`, charged to `meter`.
    pub fn new(parent: Option<Arc<Link>>, items: Vec<HistoryItem>, meter: &Arc<ByteMeter>) -> Self {
        let bytes = OVERHEAD_BYTES + items.iter().map(HistoryItem::bytes).sum::<usize>();
        Self {
            parent,
            items,
            _charge: Charge::new(meter, bytes),
        }
    }

    /// This link and its ancestors, oldest first.
    fn chain(&self) -> Vec<&Link> {
        let mut links = vec![self];
        let mut next = self.parent.as_deref();
        while let Some(link) = next {
            links.push(link);
            next = link.parent.as_deref();
        }
        links.reverse();
        links
    }
}

impl Drop for Link {
    /// Unlinks ancestors one at a time: dropping a long chain must not recurse once per link.
    fn drop(&mut self) {
        let mut next = self.parent.take();
        while let Some(link) = next {
            next = match Arc::try_unwrap(link) {
                Ok(mut only_owner) => only_owner.parent.take(),
                Err(_) => None,
            };
        }
    }
}

/// The state a response works on: the chain replayed, plus the changes made so far.
#[derive(Debug, Default)]
pub(crate) struct ChainState {
    messages: Vec<ChatMessage>,
    activity: Vec<ToolActivity>,
    /// Full (unfiltered) tool lists by server label.
    listed: HashMap<String, Vec<ListedTool>>,
    approvals: HashMap<String, PendingApproval>,
    parent: Option<Arc<Link>>,
    new_items: Vec<HistoryItem>,
}

impl ChainState {
    /// The state after `parent`'s chain (empty without a parent).
    pub fn continue_from(parent: Option<Arc<Link>>) -> Self {
        let mut state = Self::default();
        if let Some(link) = &parent {
            for item in link.chain().into_iter().flat_map(|l| &l.items) {
                state.apply(item.clone());
            }
        }
        state.parent = parent;
        state
    }

    fn apply(&mut self, item: HistoryItem) {
        match item {
            HistoryItem::Message(message) => {
                if message.role == "user" {
                    self.activity.clear();
                }
                self.messages.push(message);
            }
            HistoryItem::Activity(activity) => self.activity.push(activity),
            HistoryItem::Listed {
                server_label,
                tools,
            } => {
                self.listed.entry(server_label).or_insert(tools);
            }
            HistoryItem::ApprovalRequested { id, pending } => {
                self.approvals.insert(id, pending);
            }
            HistoryItem::ApprovalAnswered { id } => {
                self.approvals.remove(&id);
            }
        }
    }

    fn record(&mut self, item: HistoryItem) {
        self.apply(item.clone());
        self.new_items.push(item);
    }

    /// Adds a message (a user message starts a new turn).
    pub fn push_message(&mut self, message: ChatMessage) {
        self.record(HistoryItem::Message(message));
    }

    /// Adds a tool call (or denial) to the current turn.
    pub fn push_activity(&mut self, activity: ToolActivity) {
        self.record(HistoryItem::Activity(activity));
    }

    /// Keeps `tools` as the server's list unless the chain already has one; true when kept.
    pub fn list_if_absent(&mut self, server_label: &str, tools: &[ListedTool]) -> bool {
        if self.listed.contains_key(server_label) {
            return false;
        }
        self.record(HistoryItem::Listed {
            server_label: server_label.to_owned(),
            tools: tools.to_vec(),
        });
        true
    }

    /// Records a pending approval request.
    pub fn request_approval(&mut self, id: String, pending: PendingApproval) {
        self.record(HistoryItem::ApprovalRequested { id, pending });
    }

    /// Answers (removes) a pending approval request.
    pub fn take_approval(&mut self, id: &str) -> Option<PendingApproval> {
        let pending = self.approvals.get(id).cloned()?;
        self.record(HistoryItem::ApprovalAnswered { id: id.to_owned() });
        Some(pending)
    }

    /// The conversation, oldest first.
    pub fn messages(&self) -> &[ChatMessage] {
        &self.messages
    }

    /// The tool calls of the current turn.
    pub fn activity(&self) -> &[ToolActivity] {
        &self.activity
    }

    /// The full tool list of a server, when the chain has one.
    pub fn listed(&self, server_label: &str) -> Option<&[ListedTool]> {
        self.listed.get(server_label).map(Vec::as_slice)
    }

    /// Every listed tool of every server.
    pub fn all_listed(&self) -> impl Iterator<Item = &ListedTool> {
        self.listed.values().flatten()
    }

    /// The parent link and the items this response added, to store.
    pub fn into_link_parts(self) -> (Option<Arc<Link>>, Vec<HistoryItem>) {
        (self.parent, self.new_items)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn message(role: &str, text: &str) -> ChatMessage {
        ChatMessage {
            role: role.to_owned(),
            text: text.to_owned(),
        }
    }

    fn store_link(state: ChainState, meter: &Arc<ByteMeter>) -> Arc<Link> {
        let (parent, items) = state.into_link_parts();
        Arc::new(Link::new(parent, items, meter))
    }

    #[test]
    fn a_chain_replays_to_the_state_it_was_built_from() {
        let meter = Arc::new(ByteMeter::default());
        let mut first = ChainState::continue_from(None);
        first.push_message(message("user", "Roll a few dice!"));
        assert!(first.list_if_absent("dice", &[]));
        first.request_approval(
            "mcpr_1".to_owned(),
            PendingApproval {
                server_label: "dice".to_owned(),
                name: "roll_dice".to_owned(),
                arguments: "{}".to_owned(),
            },
        );
        let first = store_link(first, &meter);

        let mut second = ChainState::continue_from(Some(first.clone()));
        assert!(!second.list_if_absent("dice", &[]), "listed once per chain");
        assert!(second.take_approval("mcpr_1").is_some());
        assert!(second.take_approval("mcpr_1").is_none());
        second.push_activity(ToolActivity {
            server_label: "dice".to_owned(),
            name: "roll_dice".to_owned(),
            arguments: json!({"n_dice": 3}),
            result: ActivityResult::Output("[6,4,2]".to_owned()),
        });
        second.push_message(message("assistant", "You rolled..."));
        let second = store_link(second, &meter);

        let third = ChainState::continue_from(Some(second));
        assert_eq!(
            third.messages(),
            [
                message("user", "Roll a few dice!"),
                message("assistant", "You rolled...")
            ]
        );
        assert_eq!(third.activity().len(), 1);
        assert!(third.listed("dice").is_some());
        assert!(third.approvals.is_empty());
        assert!(third.new_items.is_empty());
        assert_eq!(
            first.items.len(),
            3,
            "the first link keeps only its own items"
        );
    }

    #[test]
    fn links_are_charged_while_alive_and_long_chains_drop_without_recursion() {
        let meter = Arc::new(ByteMeter::default());
        let mut tip: Option<Arc<Link>> = None;
        for _ in 0..200_000 {
            let items = vec![HistoryItem::Message(message("user", "hi"))];
            tip = Some(Arc::new(Link::new(tip.take(), items, &meter)));
        }
        let per_link = OVERHEAD_BYTES + OVERHEAD_BYTES + "user".len() + "hi".len();
        assert_eq!(meter.bytes(), 200_000 * per_link);
        drop(tip);
        assert_eq!(meter.bytes(), 0);
    }
}
